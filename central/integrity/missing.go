package integrity

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/plume-emissions/plume"
)

// missingPassesParams configures missing_passes.
type missingPassesParams struct {
	MinExpected float64 `yaml:"min_expected"` // expected passes a deficit must add up to before it can fire
	MaxRatio    float64 `yaml:"max_ratio"`    // an hour is low when observed < max_ratio × expected
	Z           float64 `yaml:"z"`            // deficit, in standard deviations, that fires
	Dispersion  float64 `yaml:"dispersion"`   // extra-Poisson variance: var = λ + dispersion·λ²
	LearnDays   int     `yaml:"learn_days"`   // days of hour-of-day baseline before alerting
	Alpha       float64 `yaml:"alpha"`        // weight of the newest hour in the baseline (EWMA)
}

func (p *missingPassesParams) validate() error {
	switch {
	case p.MinExpected <= 0:
		return errors.New("min_expected must be positive")
	case p.MaxRatio <= 0 || p.MaxRatio >= 1:
		return errors.New("max_ratio must be in (0, 1)")
	case p.Z <= 0:
		return errors.New("z must be positive")
	case p.Dispersion < 0:
		return errors.New("dispersion must not be negative")
	case p.LearnDays < 1:
		return errors.New("learn_days must be at least 1")
	case p.Alpha <= 0 || p.Alpha > 1:
		return errors.New("alpha must be in (0, 1]")
	}
	return nil
}

// ewma is a learned mean with the number of observations behind it.
type ewma struct {
	mean float64
	n    int
}

func (e *ewma) update(x, alpha float64) {
	if e.n == 0 {
		e.mean = x
	} else {
		e.mean += alpha * (x - e.mean)
	}
	e.n++
}

// missingPasses learns each station's traffic per hour of the week (with
// the hour of the day as a fallback in the first week) and fires when a
// run of low hours adds up to a deficit that ordinary variation cannot
// explain. Summing over a run is what makes it robust at night: one quiet
// night hour with 3 expected passes proves nothing, six of them with none
// at all do.
type missingPasses struct {
	base
	p        missingPassesParams
	count    int
	week     [7 * 24]ewma
	day      [24]ewma
	run      missingRun
	history  []ChartPoint // recent hours, observed
	expected []ChartPoint
}

type missingRun struct {
	start        time.Time
	hours        int
	expect, seen float64
	variance     float64
	fired        bool
}

func (d *missingPasses) pass(s *Stream, rec *plume.Record) {
	if t := rec.Pass.Reading.Time; !t.Before(s.hour) {
		d.count++
	}
}

func (d *missingPasses) baseline(h time.Time) (float64, bool) {
	wk := int(h.Weekday())*24 + h.Hour()
	if w := d.week[wk]; w.n >= 2 {
		return w.mean, true
	}
	if dd := d.day[h.Hour()]; dd.n >= d.p.LearnDays {
		return dd.mean, true
	}
	return 0, false
}

func (d *missingPasses) hourClosed(s *Stream, start time.Time) {
	d.checked(1)
	obs := float64(d.count)
	d.count = 0
	lam, known := d.baseline(start)
	d.history = appendCapped(d.history, ChartPoint{T: start, V: obs}, 72)
	d.expected = appendCapped(d.expected, ChartPoint{T: start, V: lam}, 72)
	low := known && lam > 0 && obs < d.p.MaxRatio*lam
	if low {
		if d.run.hours == 0 {
			d.run = missingRun{start: start}
		}
		d.run.hours++
		d.run.expect += lam
		d.run.seen += obs
		d.run.variance += lam + d.p.Dispersion*lam*lam
		d.history[len(d.history)-1].Hit = true
		z := (d.run.expect - d.run.seen) / math.Sqrt(d.run.variance)
		if !d.run.fired && d.run.expect >= d.p.MinExpected && z >= d.p.Z {
			d.run.fired = true
			end := start.Add(time.Hour)
			chart := &Chart{Title: "Passes per hour", Unit: "passes", Series: []ChartSeries{
				{Name: "observed", Points: clonePoints(d.history)},
				{Name: "usual", Points: clonePoints(d.expected)},
			}, Thresholds: []ChartLine{{Label: fmt.Sprintf("%.0f%% of usual", 100*d.p.MaxRatio), Value: d.p.MaxRatio * lam}}}
			s.emit(d.rs, d.run.start, end, evidence{}, z, d.p.Z, chart,
				"%.0f passes in %d hour(s) from %s where the station usually has %.0f (deficit %.1f σ, threshold %.1f σ): the station sent far fewer passes than its usual traffic",
				d.run.seen, d.run.hours, d.run.start.Format("2006-01-02 15:04 MST"), d.run.expect, z, d.p.Z)
		}
	} else {
		d.run = missingRun{}
	}
	// Learn from every hour except those of a fired outage: an outage is
	// not the station's usual traffic.
	if !d.run.fired {
		d.week[int(start.Weekday())*24+start.Hour()].update(obs, d.p.Alpha)
		d.day[start.Hour()].update(obs, d.p.Alpha)
	}
}

func appendCapped(ps []ChartPoint, p ChartPoint, n int) []ChartPoint {
	ps = append(ps, p)
	if len(ps) > n {
		ps = append(ps[:0], ps[len(ps)-n:]...)
	}
	return ps
}

func clonePoints(ps []ChartPoint) []ChartPoint { return append([]ChartPoint(nil), ps...) }

// missingStatusParams configures missing_status.
type missingStatusParams struct {
	MaxGap    time.Duration `yaml:"max_gap"`    // longest silence of status/heartbeat records
	MinPasses int           `yaml:"min_passes"` // passes that must arrive during the silence
}

// missingStatus fires when the analyser's status (heartbeat) records stop
// while its passes keep coming: the device is producing data but not
// reporting its own state, so the data cannot be shown to come from a
// device in normal operation.
type missingStatus struct {
	base
	p      missingStatusParams
	last   time.Time
	passes int
	ids    evidence
	fired  bool
	gaps   []ChartPoint
}

func (d *missingStatus) pass(s *Stream, rec *plume.Record) {
	if d.last.IsZero() {
		d.last = s.now
	}
	d.passes++
	d.ids.add(rec.ID)
	d.check(s)
}

func (d *missingStatus) check(s *Stream) {
	gap := s.now.Sub(d.last)
	if d.fired || gap < d.p.MaxGap || d.passes < d.p.MinPasses {
		return
	}
	d.fired = true
	pts := append(clonePoints(d.gaps), ChartPoint{T: s.now, V: gap.Hours(), Hit: true})
	chart := &Chart{Title: "Time since the previous status record", Unit: "h",
		Series:     []ChartSeries{{Name: "gap", Points: pts}},
		Thresholds: []ChartLine{{Label: "max gap", Value: d.p.MaxGap.Hours()}}}
	s.emit(d.rs, d.last, s.now, d.ids, gap.Hours(), d.p.MaxGap.Hours(), chart,
		"no analyser status record for %s while %d passes arrived (limit %s with at least %d passes)",
		gap.Round(time.Minute), d.passes, d.p.MaxGap, d.p.MinPasses)
}

func (d *missingStatus) status(s *Stream, rec *plume.Record) {
	d.checked(1)
	if !d.last.IsZero() {
		d.gaps = appendCapped(d.gaps, ChartPoint{T: s.now, V: s.now.Sub(d.last).Hours()}, 48)
	}
	d.last, d.passes, d.ids, d.fired = s.now, 0, evidence{}, false
}

func (d *missingStatus) flush(s *Stream, until time.Time) { d.check(s) }
