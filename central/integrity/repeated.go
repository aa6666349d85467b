package integrity

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
)

// mix is one round of a 64-bit hash (splitmix64's finaliser) folding x
// into h.
func mix(h, x uint64) uint64 {
	h ^= x + 0x9e3779b97f4a7c15 + (h << 6) + (h >> 2)
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ (h >> 31)
}

func f64(x float64) uint64 { return math.Float64bits(x + 0) } // +0 folds -0 into 0

// gasPrint fingerprints a reading's plume: the four gases and opacity.
func gasPrint(r *plume.Reading) uint64 {
	h := mix(1, f64(r.Gases.CO2))
	h = mix(h, f64(r.Gases.CO))
	h = mix(h, f64(r.Gases.HC))
	h = mix(h, f64(r.Gases.NO))
	return mix(h, f64(r.Opacity))
}

// readingPrint fingerprints everything a reading measured except when and
// in which lane: two genuine vehicles never agree on all of it.
func readingPrint(r *plume.Reading) uint64 {
	h := gasPrint(r)
	for _, x := range []float64{r.PlumeCO2, r.Ringelmann, r.SpeedKmh, r.AccelMS2,
		r.Ambient.TempC, r.Ambient.HumidityPct, r.Ambient.WindMS, r.Ambient.PressureKPa} {
		h = mix(h, f64(x))
	}
	return mix(h, uint64(len(r.Fuel))<<8|uint64(firstByte(string(r.Fuel))))
}

func firstByte(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

// measured reports whether a pass carries a real measurement worth
// checking for repeats and abnormal values: the device was in normal
// operation and saw a plume.
func measured(p *plume.Pass) bool {
	f := p.Reading.Flag
	return (f == "" || f == plume.FlagNormal) && p.Reading.Gases.CO2 > 0
}

// seenEntry is one pass remembered by a printIndex.
type seenEntry struct {
	t     time.Time
	idx   int64
	id    string
	print uint64 // the other fingerprint (for signatures: the reading's)
	value float64
}

// printIndex remembers fingerprints for a sliding time window.
type printIndex struct {
	window time.Duration
	m      map[uint64]seenEntry
	order  []printKey // FIFO for expiry
	head   int
}

type printKey struct {
	t time.Time
	k uint64
}

func newPrintIndex(window time.Duration) *printIndex {
	return &printIndex{window: window, m: map[uint64]seenEntry{}}
}

func (x *printIndex) expire(now time.Time) {
	cut := now.Add(-x.window)
	for x.head < len(x.order) && x.order[x.head].t.Before(cut) {
		k := x.order[x.head]
		if e, ok := x.m[k.k]; ok && !e.t.After(k.t) {
			delete(x.m, k.k)
		}
		x.head++
	}
	if x.head > 4096 && x.head > len(x.order)/2 {
		x.order = append(x.order[:0], x.order[x.head:]...)
		x.head = 0
	}
}

func (x *printIndex) get(k uint64) (seenEntry, bool) { e, ok := x.m[k]; return e, ok }

func (x *printIndex) put(k uint64, e seenEntry) {
	x.m[k] = e
	x.order = append(x.order, printKey{t: e.t, k: k})
}

// hourBatch gathers one hour's findings of a per-record rule, so that a
// burst of findings makes one alert, not hundreds.
type hourBatch struct {
	ev       evidence
	from, to time.Time
	points   ChartSeries
	worst    float64
	notes    []string
}

func (b *hourBatch) add(id string, t time.Time, v float64, note string) {
	if b.ev.count == 0 {
		b.from = t
	}
	b.to = t
	b.ev.add(id)
	b.points.add(t, v, true)
	if len(b.notes) < 5 {
		b.notes = append(b.notes, note)
	}
}

func (b *hourBatch) explain() string {
	s := strings.Join(b.notes, "; ")
	if b.ev.count > len(b.notes) {
		s += fmt.Sprintf("; and %d more", b.ev.count-len(b.notes))
	}
	return s
}

// duplicateParams configures duplicate_records.
type duplicateParams struct {
	Window   time.Duration `yaml:"window"`    // how far back a duplicate is looked for
	MinCount int           `yaml:"min_count"` // duplicates in an hour that fire
}

// duplicateRecords fires on passes whose whole measurement (gases,
// opacity, plume strength, speed, acceleration, weather) repeats an
// earlier pass under a different ID, and on a pass ID that arrives again
// with different content.
type duplicateRecords struct {
	base
	p     duplicateParams
	idx   *printIndex
	ids   map[string]uint64
	idq   []string
	batch hourBatch
}

func (d *duplicateRecords) pass(s *Stream, rec *plume.Record) {
	d.checked(1)
	p := rec.Pass
	fp := readingPrint(&p.Reading)
	if old, ok := d.ids[rec.ID]; ok {
		if old != fp {
			d.batch.add(rec.ID, p.Reading.Time, p.Reading.Gases.NO, fmt.Sprintf("pass %s arrived twice with different content", rec.ID))
		}
		return // a resend of the same record is not a duplicate
	}
	d.ids[rec.ID] = fp
	d.idq = append(d.idq, rec.ID)
	if len(d.idq) > 200000 {
		for _, id := range d.idq[:100000] {
			delete(d.ids, id)
		}
		d.idq = append(d.idq[:0], d.idq[100000:]...)
	}
	d.idx.expire(s.now)
	if measured(p) {
		if e, ok := d.idx.get(fp); ok && e.id != rec.ID {
			d.batch.add(rec.ID, p.Reading.Time, p.Reading.Gases.NO,
				fmt.Sprintf("pass %s repeats every measured value of pass %s (%s earlier)", rec.ID, e.id, p.Reading.Time.Sub(e.t).Round(time.Second)))
			d.batch.ev.add(e.id)
		}
		d.idx.put(fp, seenEntry{t: p.Reading.Time, id: rec.ID})
	}
}

func (d *duplicateRecords) hourClosed(s *Stream, start time.Time) { d.fire(s) }
func (d *duplicateRecords) flush(s *Stream, until time.Time)      { d.fire(s) }

func (d *duplicateRecords) fire(s *Stream) {
	b := d.batch
	d.batch = hourBatch{}
	if n := len(b.points.Points); n == 0 || n < d.p.MinCount {
		return
	}
	b.points.Name = "duplicated passes (NO)"
	chart := &Chart{Title: "Duplicated passes", Unit: "ppm NO", Series: []ChartSeries{b.points}}
	s.emit(d.rs, b.from, b.to, b.ev, float64(len(b.points.Points)), float64(d.p.MinCount), chart,
		"%d duplicated pass record(s): %s", len(b.points.Points), b.explain())
}

// fieldNames are the measured quantities rules may name.
var fieldNames = []string{"co2", "co", "hc", "no", "opacity"}

func fieldValue(r *plume.Reading, f string) float64 {
	switch f {
	case "co2":
		return r.Gases.CO2
	case "co":
		return r.Gases.CO
	case "hc":
		return r.Gases.HC
	case "no":
		return r.Gases.NO
	case "opacity":
		return r.Opacity
	}
	return math.NaN()
}

func fieldUnit(f string) string {
	switch f {
	case "co2", "co", "opacity":
		return "%"
	}
	return "ppm"
}

func checkFields(fs []string) error {
	if len(fs) == 0 {
		return errors.New("fields must name at least one of " + strings.Join(fieldNames, ", "))
	}
	for _, f := range fs {
		if !slices.Contains(fieldNames, f) {
			return fmt.Errorf("unknown field %q (want one of %s)", f, strings.Join(fieldNames, ", "))
		}
	}
	return nil
}

// constantParams configures constant_value (恒值).
type constantParams struct {
	Fields    []string           `yaml:"fields"`
	MinRun    int                `yaml:"min_run"`   // consecutive passes that fire
	Tolerance map[string]float64 `yaml:"tolerance"` // max spread (max − min) of a run, per field [0: identical]
}

// constantValue fires when a gas or opacity stays identical (or within a
// tiny tolerance) over min_run consecutive measured passes, across
// different vehicles: a frozen or faked output (恒值).
type constantValue struct {
	base
	p    constantParams
	runs []constRun
}

type constRun struct {
	lo, hi float64
	n      int
	fired  bool
	ev     evidence
	pts    ChartSeries
	from   time.Time
}

func (d *constantValue) pass(s *Stream, rec *plume.Record) {
	p := rec.Pass
	if !measured(p) {
		return
	}
	d.checked(1)
	t := p.Reading.Time
	for i, f := range d.p.Fields {
		v := fieldValue(&p.Reading, f)
		r := &d.runs[i]
		lo, hi := math.Min(r.lo, v), math.Max(r.hi, v)
		if r.n == 0 || hi-lo > d.p.Tolerance[f]+1e-9 {
			// Start a new run, reusing the old one's buffers: most runs
			// are one pass long.
			ids, pts := r.ev.ids[:0], r.pts.Points[:0]
			if r.fired { // the emitted alert holds the old slices
				ids, pts = nil, nil
			}
			*r = constRun{lo: v, hi: v, from: t, ev: evidence{ids: ids}, pts: ChartSeries{Points: pts}}
			lo, hi = v, v
		}
		r.lo, r.hi = lo, hi
		r.n++
		r.ev.add(rec.ID)
		if len(r.pts.Points) < maxChartPoints {
			r.pts.add(t, v, true)
		}
		if !r.fired && r.n >= d.p.MinRun {
			r.fired = true
			chart := &Chart{Title: "Consecutive " + strings.ToUpper(f) + " readings", Unit: fieldUnit(f),
				Series: []ChartSeries{{Name: f, Points: clonePoints(r.pts.Points)}}}
			s.emit(d.rs, r.from, t, r.ev, float64(r.n), float64(d.p.MinRun), chart,
				"%s stayed at %g–%g %s over %d consecutive passes of different vehicles (limit %d, tolerance %g): a frozen or faked output (恒值)",
				strings.ToUpper(f), lo, hi, fieldUnit(f), r.n, d.p.MinRun, d.p.Tolerance[f])
		}
	}
}

// signatureParams configures identical_signature.
type signatureParams struct {
	Window     time.Duration `yaml:"window"`      // how far back a signature is looked for
	MinRepeats int           `yaml:"min_repeats"` // passes sharing one signature that fire
}

// identicalSignature fires when the same plume signature (CO2, CO, HC, NO
// and opacity, all equal) turns up on different vehicles: one vehicle's
// gas readings copied onto others.
type identicalSignature struct {
	base
	p     signatureParams
	idx   *printIndex
	count map[uint64]*sigGroup
	batch hourBatch
}

type sigGroup struct {
	ids   []string
	first time.Time
	fired bool
}

func (d *identicalSignature) pass(s *Stream, rec *plume.Record) {
	p := rec.Pass
	if !measured(p) {
		return
	}
	d.checked(1)
	d.idx.expire(s.now)
	for k, g := range d.count {
		if s.now.Sub(g.first) > d.p.Window {
			delete(d.count, k)
		}
	}
	gp, rp := gasPrint(&p.Reading), readingPrint(&p.Reading)
	e, ok := d.idx.get(gp)
	d.idx.put(gp, seenEntry{t: p.Reading.Time, id: rec.ID, print: rp})
	if !ok || e.print == rp { // new, or a full duplicate (duplicate_records' business)
		return
	}
	g := d.count[gp]
	if g == nil {
		g = &sigGroup{ids: []string{e.id}, first: e.t}
		d.count[gp] = g
	}
	g.ids = append(g.ids, rec.ID)
	if !g.fired && len(g.ids) >= d.p.MinRepeats {
		g.fired = true
		g2 := p.Reading.Gases
		for _, id := range g.ids {
			d.batch.ev.add(id)
		}
		if d.batch.from.IsZero() {
			d.batch.from = g.first
		}
		d.batch.to = p.Reading.Time
		d.batch.points.add(p.Reading.Time, g2.NO, true)
		if len(d.batch.notes) < 5 {
			d.batch.notes = append(d.batch.notes, fmt.Sprintf("CO2 %g %%, CO %g %%, HC %g ppm, NO %g ppm, opacity %g %% on %d different vehicles (%s)",
				g2.CO2, g2.CO, g2.HC, g2.NO, p.Reading.Opacity, len(g.ids), strings.Join(g.ids[:min(len(g.ids), 4)], ", ")))
		}
	}
}

func (d *identicalSignature) hourClosed(s *Stream, start time.Time) { d.fire(s) }
func (d *identicalSignature) flush(s *Stream, until time.Time)      { d.fire(s) }

func (d *identicalSignature) fire(s *Stream) {
	b := d.batch
	d.batch = hourBatch{}
	if len(b.points.Points) == 0 {
		return
	}
	b.points.Name = "repeated signature (NO)"
	chart := &Chart{Title: "Repeated plume signatures", Unit: "ppm NO", Series: []ChartSeries{b.points}}
	s.emit(d.rs, b.from, b.to, b.ev, float64(len(b.points.Points)), float64(d.p.MinRepeats), chart,
		"the same multi-gas plume on different vehicles: %s", strings.Join(b.notes, "; "))
}

// replayParams configures replay.
type replayParams struct {
	MinLag  time.Duration `yaml:"min_lag"`  // a replay is at least this much older than now
	Horizon time.Duration `yaml:"horizon"`  // how far back replayed data is looked for
	MinRun  int           `yaml:"min_run"`  // matching passes in sequence that fire
	MaxSkip int           `yaml:"max_skip"` // passes a sequence may skip (on either side) and go on
}

// replay fires when a station sends a sequence of passes whose complete
// measurements match, in order, a sequence it sent earlier: old data
// replayed with new times.
type replay struct {
	base
	p     replayParams
	idx   *printIndex
	chain replayChain
}

type replayChain struct {
	n            int
	lastI, lastK int64
	lag          time.Duration
	from         time.Time
	origFrom     time.Time
	ev           evidence
	now, orig    ChartSeries
	fired        bool
}

func (d *replay) pass(s *Stream, rec *plume.Record) {
	p := rec.Pass
	if !measured(p) {
		return
	}
	d.checked(1)
	d.idx.expire(s.now)
	t, i := p.Reading.Time, s.passes
	fp := readingPrint(&p.Reading)
	e, ok := d.idx.get(fp)
	d.idx.put(fp, seenEntry{t: t, idx: i, id: rec.ID, value: p.Reading.Gases.NO})
	c := &d.chain
	if c.n > 0 && i-c.lastI > int64(d.p.MaxSkip)+1 && !ok {
		*c = replayChain{}
	}
	if !ok || t.Sub(e.t) < d.p.MinLag {
		return
	}
	lag := t.Sub(e.t)
	inOrder := e.idx > c.lastK && (e.idx-c.lastK <= int64(d.p.MaxSkip)+1 || (lag-c.lag).Abs() <= time.Minute)
	if c.n > 0 && inOrder {
		c.n++
	} else {
		*c = replayChain{n: 1, from: t, origFrom: e.t, lag: lag}
	}
	c.lastI, c.lastK = i, e.idx
	c.ev.add(rec.ID)
	c.ev.add(e.id)
	if len(c.now.Points) < maxChartPoints {
		c.now.add(t, p.Reading.Gases.NO, true)
		c.orig.add(t, e.value, false)
	}
	if !c.fired && c.n >= d.p.MinRun {
		c.fired = true
		c.now.Name, c.orig.Name = "now (NO)", "earlier original"
		chart := &Chart{Title: "Replayed sequence", Unit: "ppm NO", Series: []ChartSeries{
			{Name: c.orig.Name, Points: clonePoints(c.orig.Points)}, {Name: c.now.Name, Points: clonePoints(c.now.Points)}}}
		s.emit(d.rs, c.from, t, c.ev, float64(c.n), float64(d.p.MinRun), chart,
			"%d consecutive passes from %s repeat, in order and in every measured value, passes sent %s earlier (from %s): old data replayed as new",
			c.n, c.from.Format("2006-01-02 15:04:05 MST"), c.lag.Round(time.Second), c.origFrom.Format("2006-01-02 15:04:05 MST"))
	}
}
