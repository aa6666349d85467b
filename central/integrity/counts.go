package integrity

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/plume-emissions/plume"
)

// countsParams configures camera_counts.
type countsParams struct {
	MinVehicles int           `yaml:"min_vehicles"` // camera counts smaller than this are not judged
	MinRatio    float64       `yaml:"min_ratio"`    // passes/vehicles below this fire…
	MaxRatio    float64       `yaml:"max_ratio"`    // …and above this
	Z           float64       `yaml:"z"`            // and the difference must exceed z·√vehicles
	Settle      time.Duration `yaml:"settle"`       // wait this long past an interval for late passes
	Retain      time.Duration `yaml:"retain"`       // how long pass times are kept for matching
}

func (p *countsParams) validate() error {
	switch {
	case p.MinVehicles < 1:
		return errors.New("min_vehicles must be at least 1")
	case p.MinRatio <= 0 || p.MinRatio >= 1 || p.MaxRatio <= 1:
		return errors.New("need 0 < min_ratio < 1 < max_ratio")
	case p.Z < 0:
		return errors.New("z must not be negative")
	case p.Settle < 0 || p.Retain <= p.Settle:
		return errors.New("need 0 ≤ settle < retain")
	}
	return nil
}

// cameraCounts compares the analyser's passes with the cameras' vehicle
// counts over the same intervals. An analyser that drops (or invents)
// vehicles disagrees with cameras that saw them. A run of disagreeing
// intervals raises one alert.
type cameraCounts struct {
	base
	p       countsParams
	times   []time.Time // pass times, in arrival order
	head    int         // times[:head] are past retain
	ids     []string
	pending []CameraCount
	alarm   bool
	pts     []ChartPoint
	cam     []ChartPoint
}

func (d *cameraCounts) pass(s *Stream, rec *plume.Record) {
	d.times = append(d.times, rec.Pass.Reading.Time)
	d.ids = append(d.ids, rec.ID)
}

func (d *cameraCounts) camera(s *Stream, c CameraCount) {
	if !c.To.After(c.From) {
		return
	}
	d.pending = append(d.pending, c)
	d.judge(s, s.now)
}

func (d *cameraCounts) tick(s *Stream, now time.Time) { d.judge(s, now) }

func (d *cameraCounts) flush(s *Stream, until time.Time) {
	d.judge(s, until.Add(d.p.Settle))
}

func (d *cameraCounts) judge(s *Stream, now time.Time) {
	if len(d.pending) > 0 {
		keep := d.pending[:0]
		for _, c := range d.pending {
			if now.Before(c.To.Add(d.p.Settle)) {
				keep = append(keep, c)
				continue
			}
			d.one(s, c)
		}
		d.pending = keep
	}
	// Forget passes older than retain.
	cut := now.Add(-d.p.Retain)
	for d.head < len(d.times) && d.times[d.head].Before(cut) {
		d.head++
	}
	if d.head > 4096 && d.head > len(d.times)/2 {
		d.times = append(d.times[:0], d.times[d.head:]...)
		d.ids = append(d.ids[:0], d.ids[d.head:]...)
		d.head = 0
	}
}

func (d *cameraCounts) one(s *Stream, c CameraCount) {
	var ev evidence
	n := 0
	// Passes arrive nearly in order: search the sorted prefix, then scan.
	start, _ := slices.BinarySearchFunc(d.times, c.From, func(t, from time.Time) int { return t.Compare(from) })
	for i := max(d.head, start-64); i < len(d.times); i++ {
		if t := d.times[i]; !t.Before(c.From) && t.Before(c.To) {
			n++
			ev.add(d.ids[i])
		}
	}
	if c.Vehicles < d.p.MinVehicles {
		return
	}
	d.checked(1)
	ratio := float64(n) / float64(c.Vehicles)
	diff := math.Abs(float64(n - c.Vehicles))
	bad := (ratio < d.p.MinRatio || ratio > d.p.MaxRatio) && diff > d.p.Z*math.Sqrt(float64(c.Vehicles))
	d.pts = appendCapped(d.pts, ChartPoint{T: c.From, V: float64(n), Hit: bad}, 96)
	d.cam = appendCapped(d.cam, ChartPoint{T: c.From, V: float64(c.Vehicles)}, 96)
	if bad && !d.alarm {
		chart := &Chart{Title: "Analyser passes against camera vehicle counts", Unit: "vehicles", Series: []ChartSeries{
			{Name: "passes", Points: clonePoints(d.pts)}, {Name: "camera", Points: clonePoints(d.cam)}},
			Thresholds: []ChartLine{{Label: fmt.Sprintf("%.0f%% of camera", 100*d.p.MinRatio), Value: d.p.MinRatio * float64(c.Vehicles)}}}
		s.emit(d.rs, c.From, c.To, ev, ratio, d.p.MinRatio, chart,
			"the analyser sent %d passes from %s to %s while the cameras counted %d vehicles (ratio %.2f, allowed %.2f–%.2f)",
			n, c.From.Format("2006-01-02 15:04"), c.To.Format("15:04 MST"), c.Vehicles, ratio, d.p.MinRatio, d.p.MaxRatio)
	}
	d.alarm = bad
}
