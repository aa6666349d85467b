// Package fusion ties what the analyser measured to what the cameras saw.
//
// Each analyser pass is matched to the vehicle track that crossed the
// trigger line in the same lane closest in time, within a stated tolerance
// (Options.Tolerance, default 1.5 s: the analyser's beam and the camera's
// trigger line are a few metres apart, and at 20–120 km/h a vehicle covers
// them in well under a second; clock skew between the analyser and the
// edge is bounded by GA/T 832-2014 at 1 s). The track's plate read and smoke
// verdict are attached to the pass. A pass is a violation candidate when
// the remote-sensing verdict exceeds a limit, when the camera saw black
// smoke at or above the profile's grade, or both. A pass that matches no
// track is kept, counted and returned unchanged; a track that no pass
// claims is counted when it ages out.
//
// The package is pure Go: the camera side hands it plain Track values.
package fusion

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/plume-emissions/plume"
)

// DefaultTolerance is the default largest gap between a pass's analyser
// time and its track's trigger-line crossing.
const DefaultTolerance = 1500 * time.Millisecond

// Track is one vehicle as the camera pipeline saw it.
type Track struct {
	ID      int64
	Camera  string
	Lane    int       // 1-based; 0 when the camera could not tell
	Crossed time.Time // when it crossed the trigger line
	Plate   *plume.Plate
	Smoke   *plume.Smoke
}

// Options configure a Fuser.
type Options struct {
	// Tolerance is the largest |pass time − crossing time| that matches
	// (0 means DefaultTolerance).
	Tolerance time.Duration
	// Keep is how long unmatched tracks are kept (0 means 30 s).
	Keep time.Duration
}

// Reason says why a pass is a violation candidate.
type Reason string

const (
	ReasonNone          Reason = ""
	ReasonRemoteSensing Reason = "remote-sensing" // a valid exceedance
	ReasonSmoke         Reason = "smoke"          // camera black smoke ≥ profile grade
	ReasonBoth          Reason = "both"
)

// CandidateReason returns why p is a violation candidate under the
// profile's smoke grade minGrade (0 disables camera smoke), or ReasonNone.
func CandidateReason(p *plume.Pass, minGrade int) Reason {
	// The verdict holds the camera's grade too (plume.Judge): a
	// remote-sensing exceedance is one of the analyser's own checks.
	rs := p.Verdict.Outcome == plume.OutcomeExceed && p.Verdict.AnalyserExceeded()
	smoke := p.SmokeSeen != nil && p.SmokeSeen.Smoky && minGrade > 0 && p.SmokeSeen.Grade >= minGrade
	switch {
	case rs && smoke:
		return ReasonBoth
	case rs:
		return ReasonRemoteSensing
	case smoke:
		return ReasonSmoke
	}
	return ReasonNone
}

// Stats counts what a Fuser has done.
type Stats struct {
	Matched, UnmatchedPasses, UnmatchedTracks, Tracks atomic.Int64
}

// Fuser matches passes to tracks. It is safe for concurrent use.
type Fuser struct {
	opt    Options
	mu     sync.Mutex
	tracks []Track
	stats  Stats
}

// New returns a Fuser.
func New(opt Options) *Fuser {
	if opt.Tolerance <= 0 {
		opt.Tolerance = DefaultTolerance
	}
	if opt.Keep <= 0 {
		opt.Keep = 30 * time.Second
	}
	return &Fuser{opt: opt}
}

// Tolerance returns the matching tolerance in use.
func (f *Fuser) Tolerance() time.Duration { return f.opt.Tolerance }

// Stats returns the live counters.
func (f *Fuser) Stats() *Stats { return &f.stats }

// AddTrack records a track that crossed the trigger line. Tracks older
// than Keep before it are dropped and counted as unmatched.
func (f *Fuser) AddTrack(t Track) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Tracks.Add(1)
	f.tracks = append(f.tracks, t)
	f.pruneLocked(t.Crossed.Add(-f.opt.Keep))
}

func (f *Fuser) pruneLocked(before time.Time) {
	kept := f.tracks[:0]
	for _, t := range f.tracks {
		if t.Crossed.Before(before) {
			f.stats.UnmatchedTracks.Add(1)
			continue
		}
		kept = append(kept, t)
	}
	f.tracks = kept
}

// Match finds the track for a pass at time at in lane: the closest
// crossing within the tolerance in the same lane (a track whose lane is
// unknown matches any lane, but a same-lane track wins). The track is
// removed so no two passes share it.
func (f *Fuser) Match(at time.Time, lane int) (Track, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	best, bestScore := -1, time.Duration(0)
	for i, t := range f.tracks {
		if t.Lane != 0 && t.Lane != lane {
			continue
		}
		d := t.Crossed.Sub(at)
		if d < 0 {
			d = -d
		}
		if d > f.opt.Tolerance {
			continue
		}
		score := d
		if t.Lane == 0 {
			score += f.opt.Tolerance // prefer a track known to be in the lane
		}
		if best < 0 || score < bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return Track{}, false
	}
	t := f.tracks[best]
	f.tracks = append(f.tracks[:best], f.tracks[best+1:]...)
	return t, true
}

// Fuse matches p to its track and attaches the track's plate read and
// smoke verdict (an existing plate on p is kept). It reports the track and
// whether one matched; an unmatched pass is left as it was and counted.
func (f *Fuser) Fuse(p *plume.Pass) (Track, bool) {
	t, ok := f.Match(p.Reading.Time, p.Reading.Lane)
	if !ok {
		f.stats.UnmatchedPasses.Add(1)
		return Track{}, false
	}
	f.stats.Matched.Add(1)
	if p.Plate == nil && t.Plate != nil {
		pl := *t.Plate
		p.Plate = &pl
	}
	if t.Smoke != nil {
		s := *t.Smoke
		p.SmokeSeen = &s
	}
	return t, true
}
