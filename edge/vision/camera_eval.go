package vision

// Evaluation of the whole camera pipeline on generated clips.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ClipScore is how the camera pipeline did on one clip against its ground
// truth. A truth vehicle is matched to the sighting in its lane whose
// crossing is closest to the true crossing, within half a second.
type ClipScore struct {
	SceneScore
	PlatesRead    int   `json:"plates_read"`    // matched vehicles with a plate read
	PlatesCorrect int   `json:"plates_correct"` // of those, the text equals the truth
	MissedSmoky   []int `json:"missed_smoky,omitempty"`
	FalseAlarmIDs []int `json:"false_alarm_vehicles,omitempty"` // clean truth vehicles judged smoky (0: no vehicle)
}

// EvaluateClip plays clip through a Camera and a Pipeline as fast as it
// decodes and scores the sightings against truth. plates may be nil.
func EvaluateClip(ctx context.Context, clip string, truth SceneTruth, minGrade int, plates PlateReader) (ClipScore, error) {
	if minGrade <= 0 {
		minGrade = 1
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cam, err := NewCamera(CameraConfig{Name: "eval", Source: clip, FPS: truth.Spec.FPS, Start: start})
	if err != nil {
		return ClipScore{}, err
	}
	var got []*Sighting
	lanes := make([]int, len(truth.LaneX)-1)
	for i := range lanes {
		lanes[i] = i + 1
	}
	p, err := NewPipeline(PipelineConfig{Camera: "eval", LaneX: truth.LaneX[:], Lanes: lanes, TriggerY: truth.TriggerY,
		MinGrade: minGrade, Plates: plates}, cam.Ring(), func(s *Sighting) { got = append(got, s) })
	if err != nil {
		return ClipScore{}, err
	}
	err = cam.Run(ctx, func(f Frame) error { return p.Process(ctx, f) })
	if !errors.Is(err, ErrSourceEnded) {
		return ClipScore{}, fmt.Errorf("evaluate %s: %w", clip, err)
	}
	if st := cam.Stats(); st.Frames == 0 {
		return ClipScore{}, fmt.Errorf("evaluate %s: no frames decoded", clip)
	}
	p.Flush()
	s := ClipScore{SceneScore: SceneScore{Case: truth.Spec.Case, Seconds: truth.Spec.Seconds, Vehicles: len(truth.Vehicles), Frames: truth.Frames}}
	claimed := map[*Sighting]bool{}
	smokyTruth := map[*Sighting]bool{}
	for _, v := range truth.Vehicles {
		var best *Sighting
		bestD := 500 * time.Millisecond
		at := start.Add(time.Duration(v.CrossSec * float64(time.Second)))
		for _, g := range got {
			if g.Lane != v.Lane || claimed[g] {
				continue
			}
			if d := g.Crossed.Sub(at).Abs(); d <= bestD {
				best, bestD = g, d
			}
		}
		smoky := v.Smoky && v.Grade >= minGrade
		if smoky {
			s.SmokyPasses++
		}
		if best == nil {
			if smoky {
				s.MissedSmoky = append(s.MissedSmoky, v.ID)
			}
			continue
		}
		claimed[best] = true
		s.Tracked++
		if best.Plate != nil && best.Plate.Text != "" {
			s.PlatesRead++
			if strings.EqualFold(best.Plate.Text, v.Plate) || strings.HasSuffix(best.Plate.Text, v.Plate) {
				s.PlatesCorrect++
			}
		}
		switch {
		case smoky && best.Smoke.Smoky:
			smokyTruth[best] = true
			s.Caught++
			if d := best.Smoke.Grade - v.Grade; d >= -1 && d <= 1 {
				s.GradeWithin1++
			}
		case smoky:
			s.MissedSmoky = append(s.MissedSmoky, v.ID)
		case best.Smoke.Smoky:
			s.FalseAlarmIDs = append(s.FalseAlarmIDs, v.ID)
		}
	}
	for _, g := range got {
		if g.Smoke.Smoky && !smokyTruth[g] {
			s.FalseAlarms++
			if !claimed[g] {
				s.FalseAlarmIDs = append(s.FalseAlarmIDs, 0)
			}
		}
	}
	return s, nil
}
