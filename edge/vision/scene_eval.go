package vision

// Evaluation of the video pipeline on rendered scenes.

import (
	"context"
	"fmt"
	"time"
)

// SceneScore counts how the tracker did on one scene. A truth vehicle is
// matched to the track that crossed the trigger line in its lane closest
// to its true crossing time, within half a second.
type SceneScore struct {
	Case         string  `json:"case"`
	Seconds      float64 `json:"seconds"`
	Vehicles     int     `json:"vehicles"`
	Tracked      int     `json:"tracked"`       // vehicles matched to a crossing track
	SmokyPasses  int     `json:"smoky_passes"`  // vehicles with black smoke ≥ min grade
	Caught       int     `json:"caught"`        // of those, judged smoky
	FalseAlarms  int     `json:"false_alarms"`  // smoky verdicts on tracks of clean vehicles or on no vehicle
	GradeWithin1 int     `json:"grade_within1"` // caught plumes graded within ±1 of the truth
	Frames       int     `json:"frames"`
}

// EvaluateScene renders spec and runs a SmokeTracker over it.
func EvaluateScene(ctx context.Context, spec SceneSpec, minGrade int) (SceneScore, error) {
	sc, err := NewScene(spec)
	if err != nil {
		return SceneScore{}, err
	}
	tr := NewSmokeTracker(TrackerConfig{LaneX: sc.Truth.LaneX[:], TriggerY: sc.Truth.TriggerY, MinGrade: minGrade})
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var tracks []*VehicleTrack
	for f := 0; ; f++ {
		if err := ctx.Err(); err != nil {
			return SceneScore{}, err
		}
		m, ok, err := sc.Next()
		if err != nil || !ok {
			m.Close()
			if err != nil {
				return SceneScore{}, err
			}
			break
		}
		ended, err := tr.Process(m, start.Add(time.Duration(float64(f)/spec.FPS*float64(time.Second))))
		m.Close()
		if err != nil {
			return SceneScore{}, fmt.Errorf("frame %d: %w", f, err)
		}
		tracks = append(tracks, ended...)
	}
	tracks = append(tracks, tr.Flush()...)
	return ScoreScene(sc.Truth, tracks, start, minGrade), nil
}

// ScoreScene scores tracks against a scene's ground truth.
func ScoreScene(truth SceneTruth, tracks []*VehicleTrack, start time.Time, minGrade int) SceneScore {
	s := SceneScore{Case: truth.Spec.Case, Seconds: truth.Spec.Seconds, Vehicles: len(truth.Vehicles), Frames: truth.Frames}
	if minGrade <= 0 {
		minGrade = 1
	}
	claimed := map[*VehicleTrack]bool{}
	smokyTruth := map[*VehicleTrack]bool{}
	for _, v := range truth.Vehicles {
		var best *VehicleTrack
		bestD := 0.5
		for _, tr := range tracks {
			if !tr.Crossed || tr.Lane != v.Lane || claimed[tr] {
				continue
			}
			d := tr.CrossedAt.Sub(start).Seconds() - v.CrossSec
			if d < 0 {
				d = -d
			}
			if d <= bestD {
				best, bestD = tr, d
			}
		}
		smoky := v.Smoky && v.Grade >= minGrade
		if smoky {
			s.SmokyPasses++
		}
		if best == nil {
			continue
		}
		claimed[best] = true
		s.Tracked++
		if smoky {
			smokyTruth[best] = true
			if best.Smoky {
				s.Caught++
				if d := best.Grade - v.Grade; d >= -1 && d <= 1 {
					s.GradeWithin1++
				}
			}
		}
	}
	for _, tr := range tracks {
		if tr.Smoky && !smokyTruth[tr] {
			s.FalseAlarms++
		}
	}
	return s
}
