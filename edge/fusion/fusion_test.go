package fusion

import (
	"testing"
	"time"

	"github.com/plume-emissions/plume"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func pass(at time.Time, lane int, outcome plume.Outcome) *plume.Pass {
	p := &plume.Pass{Reading: plume.Reading{Time: at, Lane: lane}, Verdict: plume.Verdict{Outcome: outcome}}
	if outcome == plume.OutcomeExceed {
		p.Verdict.Checks = []plume.Check{{Pollutant: plume.PollutantNO, Value: 1834, Limit: 1500, Exceeded: true}}
	}
	return p
}

func TestFuse(t *testing.T) {
	f := New(Options{})
	f.AddTrack(Track{ID: 1, Lane: 1, Crossed: t0, Plate: &plume.Plate{Text: "粤B12345"}, Smoke: &plume.Smoke{Smoky: true, Grade: 3, Confidence: 0.9}})
	f.AddTrack(Track{ID: 2, Lane: 2, Crossed: t0.Add(200 * time.Millisecond)})
	f.AddTrack(Track{ID: 3, Lane: 1, Crossed: t0.Add(5 * time.Second)})

	t.Run("OK", func(t *testing.T) {
		p := pass(t0.Add(700*time.Millisecond), 1, plume.OutcomePass)
		tr, ok := f.Fuse(p)
		if !ok || tr.ID != 1 || p.Plate == nil || p.Plate.Text != "粤B12345" || p.SmokeSeen == nil || p.SmokeSeen.Grade != 3 {
			t.Fatalf("got track %+v ok=%v pass %+v", tr, ok, p)
		}
		if r := CandidateReason(p, 1); r != ReasonSmoke {
			t.Fatalf("reason %q", r)
		}
	})
	t.Run("OtherLaneNotMatched", func(t *testing.T) {
		p := pass(t0.Add(200*time.Millisecond), 3, plume.OutcomeExceed)
		if _, ok := f.Fuse(p); ok {
			t.Fatal("matched a track in another lane")
		}
		if r := CandidateReason(p, 1); r != ReasonRemoteSensing {
			t.Fatalf("reason %q", r)
		}
	})
	t.Run("TrackUsedOnce", func(t *testing.T) {
		if _, ok := f.Fuse(pass(t0, 1, plume.OutcomePass)); ok {
			t.Fatal("track 1 matched twice")
		}
	})
	t.Run("OutsideTolerance", func(t *testing.T) {
		if _, ok := f.Fuse(pass(t0.Add(3*time.Second), 1, plume.OutcomePass)); ok {
			t.Fatal("matched 2 s away")
		}
	})
	if s := f.Stats(); s.Matched.Load() != 1 || s.UnmatchedPasses.Load() != 3 || s.Tracks.Load() != 3 {
		t.Fatalf("stats matched %d unmatched %d tracks %d", s.Matched.Load(), s.UnmatchedPasses.Load(), s.Tracks.Load())
	}
	// Tracks age out and are counted.
	f.AddTrack(Track{ID: 4, Lane: 1, Crossed: t0.Add(time.Minute)})
	if n := f.Stats().UnmatchedTracks.Load(); n != 2 {
		t.Fatalf("unmatched tracks %d, want 2", n)
	}
}

func TestCandidateReason(t *testing.T) {
	smoky := &plume.Smoke{Smoky: true, Grade: 2}
	for _, c := range []struct {
		name    string
		outcome plume.Outcome
		smoke   *plume.Smoke
		min     int
		want    Reason
	}{
		{"Both", plume.OutcomeExceed, smoky, 1, ReasonBoth},
		{"SmokeBelowGrade", plume.OutcomePass, smoky, 3, ReasonNone},
		{"SmokeDisabled", plume.OutcomePass, smoky, 0, ReasonNone},
		{"Clean", plume.OutcomePass, &plume.Smoke{Grade: 4}, 1, ReasonNone},
		{"Invalid", plume.OutcomeInvalid, nil, 1, ReasonNone},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := pass(t0, 1, c.outcome)
			p.SmokeSeen = c.smoke
			if got := CandidateReason(p, c.min); got != c.want {
				t.Fatalf("got %q want %q", got, c.want)
			}
			if (c.want != ReasonNone) != p.Violation(c.min) {
				t.Fatalf("disagrees with Pass.Violation")
			}
		})
	}
	// plume.Judge makes a smoke-only pass an exceedance through the
	// camera's check: it is still a smoke candidate, not "both".
	t.Run("SmokeJudged", func(t *testing.T) {
		p := pass(t0, 1, plume.OutcomeExceed)
		p.Verdict.Checks = []plume.Check{{Pollutant: plume.PollutantRingelmann, Value: 4, Limit: 2, Exceeded: true, Source: plume.SourceCamera}}
		p.SmokeSeen = &plume.Smoke{Smoky: true, Grade: 4}
		if got := CandidateReason(p, 2); got != ReasonSmoke {
			t.Fatalf("got %q want %q", got, ReasonSmoke)
		}
	})
}
