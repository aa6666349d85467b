package integrity

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/plume-emissions/plume"
)

// CameraCount is the number of vehicles a station's cameras counted in
// [From, To). The camera pipeline feeds it; the counts rule compares it
// with the analyser's passes over the same interval.
type CameraCount struct {
	Station  plume.StationID `json:"station"`
	From     time.Time       `json:"from"`
	To       time.Time       `json:"to"`
	Vehicles int             `json:"vehicles"`
}

// Series is one station's history to evaluate in one go.
type Series struct {
	Records []plume.Record // passes, status, audits, summaries; any order
	Camera  []CameraCount
	// Until is the end of the history: windows up to it are closed, so a
	// station that went silent before Until is judged silent. Zero means
	// the last record's time.
	Until time.Time
}

// Engine evaluates a rule set. It holds no per-station state, so one
// Engine serves every station; each station gets its own Stream.
type Engine struct {
	Rules  *RuleSet
	Logger *slog.Logger
}

// New returns an engine for rs.
func New(rs *RuleSet, logger *slog.Logger) *Engine {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{Rules: rs, Logger: logger.With("component", "integrity", "rule_set", rs.Version)}
}

// RuleStats is what one rule did on one stream: how many units it checked
// (passes for per-pass rules, closed windows for windowed ones) and how
// many alerts it raised.
type RuleStats struct {
	Rule    string `json:"rule"`
	Version int    `json:"version"`
	Kind    string `json:"kind"`
	Unit    string `json:"unit"` // what Checks counts: "pass", "hour", "day", "interval", "status gap"
	Checks  int    `json:"checks"`
	Alerts  int    `json:"alerts"`
}

// Stream evaluates the rule set over one station's records as they
// arrive. Feed records in time order (a record older than the current hour
// is still checked, but hourly statistics have moved on); it keeps only
// bounded windows (the longest is the replay horizon), so a month per
// station costs a few megabytes. A Stream is not safe for concurrent use.
type Stream struct {
	eng     *Engine
	station plume.StationID
	loc     *time.Location
	dets    []detector
	rules   []*ruleState
	out     []Alert

	started bool
	now     time.Time // latest time seen
	hour    time.Time // start of the open hour
	passes  int64     // pass index, for replay
}

type ruleState struct {
	rule  *Rule
	set   string
	stats RuleStats
}

// detector is one compiled rule's state on one stream. Every method may
// call s.emit.
type detector interface {
	pass(s *Stream, rec *plume.Record)
	status(s *Stream, rec *plume.Record)
	camera(s *Stream, c CameraCount)
	hourClosed(s *Stream, start time.Time) // [start, start+1h) is over
	tick(s *Stream, now time.Time)         // the stream's clock moved to now
	flush(s *Stream, until time.Time)      // no more data before until
}

// base gives detectors no-op methods to override.
type base struct{ rs *ruleState }

func (base) pass(*Stream, *plume.Record)   {}
func (base) status(*Stream, *plume.Record) {}
func (base) camera(*Stream, CameraCount)   {}
func (base) hourClosed(*Stream, time.Time) {}
func (base) tick(*Stream, time.Time)       {}
func (base) flush(*Stream, time.Time)      {}
func (b base) checked(n int)               { b.rs.stats.Checks += n }

type detectorFactory func(rs *ruleState) detector

// Stream returns a new evaluator for one station.
func (e *Engine) Stream(station plume.StationID) *Stream {
	s := &Stream{eng: e, station: station, loc: e.Rules.loc}
	if s.loc == nil {
		s.loc = time.UTC
	}
	for i := range e.Rules.Rules {
		r := &e.Rules.Rules[i]
		f := e.Rules.compiledFor[r.ID]
		if r.Disabled || f == nil {
			continue
		}
		rs := &ruleState{rule: r, set: e.Rules.Version, stats: RuleStats{Rule: r.ID, Version: r.Version, Kind: r.Kind}}
		s.rules = append(s.rules, rs)
		s.dets = append(s.dets, f(rs))
	}
	return s
}

// Station returns the station the stream evaluates.
func (s *Stream) Station() plume.StationID { return s.station }

// Stats returns each enabled rule's counters so far, in rule-set order.
func (s *Stream) Stats() []RuleStats {
	out := make([]RuleStats, len(s.rules))
	for i, r := range s.rules {
		out[i] = r.stats
	}
	return out
}

// Add evaluates one record and returns the alerts it completed (usually
// none). Records of other stations are ignored.
func (s *Stream) Add(rec *plume.Record) []Alert {
	if rec == nil || (rec.Station != "" && rec.Station != s.station) {
		return nil
	}
	if rec.Kind == plume.RecordCount {
		// The edge's camera counts arrive as records (spooled, resent,
		// stored and replayed like the passes they are judged against).
		if rec.Count == nil {
			return nil
		}
		return s.AddCamera(CameraCount{Station: s.station, From: rec.Count.From, To: rec.Count.To, Vehicles: rec.Count.Vehicles})
	}
	t := rec.Time
	if rec.Kind == plume.RecordPass && rec.Pass != nil && !rec.Pass.Reading.Time.IsZero() {
		t = rec.Pass.Reading.Time
	}
	s.advance(t)
	switch rec.Kind {
	case plume.RecordPass:
		if rec.Pass == nil {
			break
		}
		s.passes++
		for _, d := range s.dets {
			d.pass(s, rec)
		}
	case plume.RecordStatus:
		for _, d := range s.dets {
			d.status(s, rec)
		}
	}
	return s.take()
}

// AddCamera takes one camera count. Counts are judged once the stream's
// clock is past their end by the rule's settle time, so passes uploaded a
// little late still count.
func (s *Stream) AddCamera(c CameraCount) []Alert {
	if c.Station != "" && c.Station != s.station {
		return nil
	}
	for _, d := range s.dets {
		d.camera(s, c)
	}
	return s.take()
}

// Advance moves the stream's clock to now without a record: hours before
// now close, and a station that has gone silent is judged silent. Call it
// periodically with the injected clock in a live deployment.
func (s *Stream) Advance(now time.Time) []Alert {
	s.advance(now)
	return s.take()
}

// Close closes every window up to until and returns what that fired. The
// stream should not be fed afterwards.
func (s *Stream) Close(until time.Time) []Alert {
	if until.Before(s.now) {
		until = s.now
	}
	s.advance(until)
	for _, d := range s.dets {
		d.flush(s, until)
	}
	return s.take()
}

func (s *Stream) take() []Alert {
	out := s.out
	s.out = nil
	return out
}

func (s *Stream) hourStart(t time.Time) time.Time {
	l := t.In(s.loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), 0, 0, 0, s.loc)
}

// advance moves the clock to t, closing the hours it passes.
func (s *Stream) advance(t time.Time) {
	if t.IsZero() {
		return
	}
	if !s.started {
		s.started, s.now, s.hour = true, t, s.hourStart(t)
		return
	}
	if !t.After(s.now) {
		return
	}
	s.now = t
	for {
		next := s.hourStart(s.hour.Add(90 * time.Minute)) // DST-safe: the next local hour
		if t.Before(next) {
			break
		}
		for _, d := range s.dets {
			d.hourClosed(s, s.hour)
		}
		s.hour = next
	}
	for _, d := range s.dets {
		d.tick(s, t)
	}
}

// evidence collects the records behind an alert.
type evidence struct {
	ids   []string
	count int
}

func (e *evidence) add(id string) {
	e.count++
	if len(e.ids) < MaxEvidenceRecords {
		e.ids = append(e.ids, id)
	}
}

// emit raises an alert for rule rs.
func (s *Stream) emit(rs *ruleState, from, to time.Time, ev evidence, measure, threshold float64, chart *Chart, format string, args ...any) {
	r := rs.rule
	if chart != nil {
		for i := range chart.Series {
			chart.Series[i].thin()
		}
	}
	a := Alert{
		ID:      fmt.Sprintf("%s/%s/%s", s.station, r.ID, from.UTC().Format("20060102T150405.000Z")),
		Station: s.station, Rule: r.ID, RuleVersion: r.Version, RuleSet: rs.set, Kind: r.Kind,
		Category: r.Category(), Severity: r.Severity, Title: r.Title,
		From: from, To: to, Raised: s.now,
		Explanation: fmt.Sprintf(format, args...),
		Measure:     measure, Threshold: threshold,
		Records: ev.ids, RecordCount: ev.count, Chart: chart,
	}
	rs.stats.Alerts++
	s.eng.Logger.Debug("integrity alert", "station", s.station, "rule", r.Ref(), "from", from, "to", to)
	s.out = append(s.out, a)
}

// Evaluate runs the rule set over one station's whole history (a backtest,
// or a periodic batch job) and returns the alerts in the order they were
// raised, with each rule's counters. It sorts a copy of the series by time;
// ctx is checked every few thousand records.
func (e *Engine) Evaluate(ctx context.Context, station plume.StationID, series Series) ([]Alert, []RuleStats, error) {
	type item struct {
		t   time.Time
		rec *plume.Record
		cam *CameraCount
	}
	items := make([]item, 0, len(series.Records)+len(series.Camera))
	for i := range series.Records {
		r := &series.Records[i]
		t := r.Time
		if r.Kind == plume.RecordPass && r.Pass != nil && !r.Pass.Reading.Time.IsZero() {
			t = r.Pass.Reading.Time
		}
		items = append(items, item{t: t, rec: r})
	}
	for i := range series.Camera {
		items = append(items, item{t: series.Camera[i].To, cam: &series.Camera[i]})
	}
	slices.SortStableFunc(items, func(a, b item) int { return a.t.Compare(b.t) })
	s := e.Stream(station)
	var alerts []Alert
	for i, it := range items {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return alerts, s.Stats(), fmt.Errorf("evaluate %s: %w", station, context.Cause(ctx))
			}
		}
		if it.rec != nil {
			alerts = append(alerts, s.Add(it.rec)...)
		} else {
			alerts = append(alerts, s.AddCamera(*it.cam)...)
		}
	}
	until := series.Until
	if until.IsZero() && len(items) > 0 {
		until = items[len(items)-1].t
	}
	alerts = append(alerts, s.Close(until)...)
	slices.SortStableFunc(alerts, func(a, b Alert) int { return cmp.Or(a.Raised.Compare(b.Raised), cmp.Compare(a.Rule, b.Rule)) })
	return alerts, s.Stats(), nil
}
