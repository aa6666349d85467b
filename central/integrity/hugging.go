package integrity

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
)

// huggingParams configures limit_hugging (贴限).
type huggingParams struct {
	Window    time.Duration `yaml:"window"`     // readings are pooled over this long (whole hours)
	Band      float64       `yaml:"band"`       // the band under the limit is [band·limit, limit)
	NullShare float64       `yaml:"null_share"` // share of the three bands the middle one may hold when nothing is wrong
	Alpha     float64       `yaml:"alpha"`      // p-value that fires
	MinBand   int           `yaml:"min_band"`   // readings in the band needed to fire at all
}

func (p *huggingParams) validate() error {
	switch {
	case p.Window < time.Hour || p.Window%time.Hour != 0:
		return errors.New("window must be a whole number of hours")
	case p.Band <= 0.5 || p.Band >= 1:
		return errors.New("band must be in (0.5, 1)")
	case p.NullShare <= 0 || p.NullShare >= 1:
		return errors.New("null_share must be in (0, 1)")
	case p.Alpha <= 0 || p.Alpha >= 0.5:
		return errors.New("alpha must be in (0, 0.5)")
	case p.MinBand < 1:
		return errors.New("min_band must be at least 1")
	}
	return nil
}

// limitHugging tests, per limit (profile and pollutant, from the verdicts
// the edge made), whether readings crowd into the band just under the
// limit [b·L, L). A smooth emission tail puts about as many readings in
// that band as the mean of its neighbours [(2b−1)·L, b·L) and [L, (2−b)·L)
// — fewer, as real tails are convex — so the band's share of the three is
// at most about a third. Values pushed down from above the limit fill the
// band and empty the band above it. A one-sided binomial test on the
// band's share against null_share gives the p-value.
type limitHugging struct {
	base
	p     huggingParams
	hours int
	bins  map[hugKey]*hugBins
}

type hugKey struct {
	profile   string
	pollutant plume.Pollutant
}

type hugBins struct {
	limit            float64
	unit             string
	below, in, above int
	ev               evidence
	pts              ChartSeries
	from             time.Time
}

func (d *limitHugging) pass(s *Stream, rec *plume.Record) {
	p := rec.Pass
	if f := p.Reading.Flag; f != "" && f != plume.FlagNormal {
		return
	}
	for _, c := range p.Verdict.Checks {
		if c.Limit <= 0 || c.Unit == "grade" { // discrete grades cannot hug
			continue
		}
		k := hugKey{p.Verdict.Profile + "@" + p.Verdict.ProfileVersion, c.Pollutant}
		b := d.bins[k]
		if b == nil {
			b = &hugBins{limit: c.Limit, unit: c.Unit}
			d.bins[k] = b
		}
		if b.from.IsZero() {
			b.from = p.Reading.Time
		}
		lo, mid, hi := (2*d.p.Band-1)*c.Limit, d.p.Band*c.Limit, (2-d.p.Band)*c.Limit
		v := c.Value
		switch {
		case v >= lo && v < mid:
			b.below++
		case v >= mid && v < c.Limit:
			b.in++
			b.ev.add(rec.ID)
		case v >= c.Limit && v < hi:
			b.above++
		default:
			continue
		}
		if len(b.pts.Points) < 4*maxChartPoints {
			b.pts.add(p.Reading.Time, v, v >= mid && v < c.Limit)
		}
	}
}

func (d *limitHugging) hourClosed(s *Stream, start time.Time) {
	d.hours++
	if time.Duration(d.hours)*time.Hour < d.p.Window {
		return
	}
	d.hours = 0
	d.judge(s, start.Add(time.Hour))
}

func (d *limitHugging) flush(s *Stream, until time.Time) {
	if d.hours > 0 {
		d.judge(s, until)
	}
}

func (d *limitHugging) judge(s *Stream, end time.Time) {
	for k, b := range d.bins {
		if b.below+b.in+b.above == 0 {
			continue
		}
		d.checked(1)
		n := b.below + b.in + b.above
		pv := binomialUpperTail(b.in, n, d.p.NullShare)
		if b.in >= d.p.MinBand && pv < d.p.Alpha {
			mid := d.p.Band * b.limit
			b.pts.Name, b.pts.Dots = strings.ToUpper(string(k.pollutant)), true
			chart := &Chart{Title: fmt.Sprintf("%s readings near the limit (%s)", strings.ToUpper(string(k.pollutant)), k.profile), Unit: b.unit,
				Series:     []ChartSeries{b.pts},
				Thresholds: []ChartLine{{Label: "limit", Value: b.limit}, {Label: fmt.Sprintf("%.0f%% of limit", 100*d.p.Band), Value: mid}}}
			s.emit(d.rs, b.from, end, b.ev, pv, d.p.Alpha, chart,
				"%s readings crowd just under the %g %s limit of %s: %d in [%g, %g) against %d just below and %d just above it — %.0f %% of the three bands where at most %.0f %% is expected (p = %.2g, threshold %.2g): 贴限",
				strings.ToUpper(string(k.pollutant)), b.limit, b.unit, k.profile, b.in, mid, b.limit, b.below, b.above,
				100*float64(b.in)/float64(n), 100*d.p.NullShare, pv, d.p.Alpha)
		}
		delete(d.bins, k)
	}
}
