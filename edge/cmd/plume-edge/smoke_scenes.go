package main

// eval-smoke -scenes: the camera pipeline on generated clips.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/plume-emissions/plume/edge/vision"
)

// scenesReport sums ClipScores. Metrics:
//   - detection_rate: smoky passes (true grade ≥ min grade) judged smoky /
//     smoky passes;
//   - false_alarms_per_hour: smoky verdicts on clean vehicles or on no
//     vehicle, per hour of video (every clip counts: all carry clean
//     traffic);
//   - grade_within1: caught plumes graded within ±1 of the true grade /
//     caught;
//   - plate_read_rate: vehicles whose plate was read exactly / vehicles
//     tracked (null without a plate reader).
type scenesReport struct {
	Clips              []vision.ClipScore `json:"clips"`
	Seconds            float64            `json:"seconds"`
	SmokyPasses        int                `json:"smoky_passes"`
	Caught             int                `json:"caught"`
	DetectionRate      float64            `json:"detection_rate"`
	FalseAlarms        int                `json:"false_alarms"`
	FalseAlarmsPerHour float64            `json:"false_alarms_per_hour"`
	GradeWithin1       float64            `json:"grade_within1"`
	Vehicles           int                `json:"vehicles"`
	Tracked            int                `json:"tracked"`
	PlateReadRate      *float64           `json:"plate_read_rate"`
}

// evalScenes evaluates every clip in dir that has a .json ground truth.
func evalScenes(ctx context.Context, dir string, minGrade int, plates vision.PlateReader, stderr io.Writer) (*scenesReport, error) {
	clips, err := filepath.Glob(filepath.Join(dir, "*.mp4"))
	if err != nil || len(clips) == 0 {
		return nil, fmt.Errorf("no clips in %s", dir)
	}
	rep := &scenesReport{}
	correct := 0
	for _, clip := range clips {
		data, err := os.ReadFile(strings.TrimSuffix(clip, ".mp4") + ".json")
		if err != nil {
			return nil, fmt.Errorf("ground truth of %s: %w", clip, err)
		}
		var truth vision.SceneTruth
		if err := json.Unmarshal(data, &truth); err != nil {
			return nil, fmt.Errorf("ground truth of %s: %w", clip, err)
		}
		fmt.Fprintf(stderr, "scene %s: %d frames…\n", filepath.Base(clip), truth.Frames)
		s, err := vision.EvaluateClip(ctx, clip, truth, minGrade, plates)
		if err != nil {
			return nil, err
		}
		rep.Clips = append(rep.Clips, s)
		rep.Seconds += s.Seconds
		rep.SmokyPasses += s.SmokyPasses
		rep.Caught += s.Caught
		rep.FalseAlarms += s.FalseAlarms
		rep.Vehicles += s.Vehicles
		rep.Tracked += s.Tracked
		rep.GradeWithin1 += float64(s.GradeWithin1)
		correct += s.PlatesCorrect
	}
	rep.DetectionRate = float64(rep.Caught) / float64(max(1, rep.SmokyPasses))
	rep.FalseAlarmsPerHour = float64(rep.FalseAlarms) / (rep.Seconds / 3600)
	rep.GradeWithin1 /= float64(max(1, rep.Caught))
	if plates != nil {
		r := float64(correct) / float64(max(1, rep.Tracked))
		rep.PlateReadRate = &r
	}
	return rep, nil
}
