package integrity

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
)

// MaxEvidenceRecords caps the record IDs one alert lists; RecordCount keeps
// the full number.
const MaxEvidenceRecords = 200

// Alert is one rule firing on one station, with its evidence: the records
// that fired it, a chart with the threshold marked, the rule and version,
// and an explanation an officer can read.
type Alert struct {
	// ID is deterministic (rule, station, start of the evidence), so
	// re-running a backtest or re-evaluating after a restart yields the same
	// ID and a store can upsert by it.
	ID          string          `json:"id"`
	Station     plume.StationID `json:"station"`
	Rule        string          `json:"rule"`
	RuleVersion int             `json:"rule_version"`
	RuleSet     string          `json:"rule_set"` // the rule set's version
	Kind        string          `json:"kind"`
	Category    Category        `json:"category"`
	Severity    Severity        `json:"severity"`
	Title       string          `json:"title"`
	From        time.Time       `json:"from"` // the evidence spans [From, To]
	To          time.Time       `json:"to"`
	// Raised is the station time at which the rule fired: the time of the
	// record or window end that completed the evidence.
	Raised      time.Time `json:"raised"`
	Explanation string    `json:"explanation"`
	Measure     float64   `json:"measure"`   // the statistic that fired
	Threshold   float64   `json:"threshold"` // what it was compared with
	Records     []string  `json:"records"`   // IDs of the records that fired it, at most MaxEvidenceRecords
	RecordCount int       `json:"record_count"`
	Chart       *Chart    `json:"chart,omitempty"`
}

// SVG renders the alert's chart, or "" when it has none.
func (a *Alert) SVG() string {
	if a.Chart == nil {
		return ""
	}
	return a.Chart.SVG()
}

// String is a one-line summary for logs and the backtest listing.
func (a *Alert) String() string {
	return fmt.Sprintf("%s %s %s [%s] %s – %s: %s (%d records)", a.Raised.UTC().Format(time.RFC3339), a.Station,
		a.Rule+fmt.Sprintf("@v%d", a.RuleVersion), a.Severity, a.From.UTC().Format("01-02 15:04"), a.To.UTC().Format("01-02 15:04"),
		a.Explanation, a.RecordCount)
}

// Chart is a small time-series chart: one or more series, the points that
// fired marked, and the thresholds drawn as dashed lines.
type Chart struct {
	Title      string        `json:"title"`
	Unit       string        `json:"unit,omitempty"`
	Series     []ChartSeries `json:"series"`
	Thresholds []ChartLine   `json:"thresholds,omitempty"`
}

// ChartSeries is one line (or scatter) of a chart.
type ChartSeries struct {
	Name   string       `json:"name"`
	Dots   bool         `json:"dots,omitempty"` // draw points, not a line
	Points []ChartPoint `json:"points"`
}

// ChartPoint is one value at one time. Hit marks a point that fired the
// rule.
type ChartPoint struct {
	T   time.Time `json:"t"`
	V   float64   `json:"v"`
	Hit bool      `json:"hit,omitempty"`
}

// ChartLine is a horizontal threshold.
type ChartLine struct {
	Label string  `json:"label"`
	Value float64 `json:"value"`
}

// maxChartPoints bounds each series; longer ones are thinned, keeping
// every hit.
const maxChartPoints = 400

func (s *ChartSeries) add(t time.Time, v float64, hit bool) {
	s.Points = append(s.Points, ChartPoint{T: t, V: v, Hit: hit})
}

// thin keeps at most maxChartPoints points, every hit among them.
func (s *ChartSeries) thin() {
	if len(s.Points) <= maxChartPoints {
		return
	}
	stride := (len(s.Points) + maxChartPoints - 1) / maxChartPoints
	out := s.Points[:0:0]
	for i, p := range s.Points {
		if p.Hit || i%stride == 0 || i == len(s.Points)-1 {
			out = append(out, p)
		}
	}
	s.Points = out
}

var seriesColours = []string{"#1f5fa8", "#888888", "#2a8a3a", "#9a5bb0"}

// SVG renders the chart as a self-contained SVG document, 480×180 pixels,
// with no scripts and no external references.
func (c *Chart) SVG() string {
	const w, h = 480.0, 180.0
	const left, right, top, bottom = 52.0, 12.0, 22.0, 26.0
	var t0, t1 time.Time
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for _, p := range s.Points {
			if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
				continue
			}
			if t0.IsZero() || p.T.Before(t0) {
				t0 = p.T
			}
			if p.T.After(t1) {
				t1 = p.T
			}
			lo, hi = math.Min(lo, p.V), math.Max(hi, p.V)
		}
	}
	for _, l := range c.Thresholds {
		lo, hi = math.Min(lo, l.Value), math.Max(hi, l.Value)
	}
	if math.IsInf(lo, 0) {
		lo, hi = 0, 1
	}
	if hi-lo < 1e-9 {
		pad := math.Max(math.Abs(hi)*0.05, 0.5)
		lo, hi = lo-pad, hi+pad
	}
	pad := (hi - lo) * 0.06
	lo, hi = lo-pad, hi+pad
	span := t1.Sub(t0).Seconds()
	x := func(t time.Time) float64 {
		if span <= 0 {
			return left + (w-left-right)/2
		}
		return left + (w-left-right)*t.Sub(t0).Seconds()/span
	}
	y := func(v float64) float64 { return top + (h-top-bottom)*(hi-v)/(hi-lo) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="10">`, w, h, w, h)
	b.WriteString(`<rect width="100%" height="100%" fill="#ffffff"/>`)
	title := c.Title
	if c.Unit != "" {
		title += " (" + c.Unit + ")"
	}
	fmt.Fprintf(&b, `<text x="%g" y="14" font-size="11" font-weight="bold">%s</text>`, left, html.EscapeString(title))
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#cccccc"/>`, left, top, w-left-right, h-top-bottom)
	fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end">%s</text>`, left-4, top+8, axisValue(hi))
	fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end">%s</text>`, left-4, h-bottom, axisValue(lo))
	if !t0.IsZero() {
		fmt.Fprintf(&b, `<text x="%g" y="%g">%s</text>`, left, h-10, t0.UTC().Format("2006-01-02 15:04"))
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="end">%s UTC</text>`, w-right, h-10, t1.UTC().Format("01-02 15:04"))
	}
	for _, l := range c.Thresholds {
		yy := y(l.Value)
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#c0392b" stroke-dasharray="4 3"/>`, left, yy, w-right, yy)
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end" fill="#c0392b">%s %s</text>`, w-right-2, yy-2, html.EscapeString(l.Label), axisValue(l.Value))
	}
	for i, s := range c.Series {
		colour := seriesColours[i%len(seriesColours)]
		if !s.Dots && len(s.Points) > 1 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.2" points="`, colour)
			for _, p := range s.Points {
				if !math.IsNaN(p.V) && !math.IsInf(p.V, 0) {
					fmt.Fprintf(&b, "%.1f,%.1f ", x(p.T), y(p.V))
				}
			}
			b.WriteString(`"/>`)
		}
		for _, p := range s.Points {
			if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
				continue
			}
			switch {
			case p.Hit:
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.6" fill="#c0392b"/>`, x(p.T), y(p.V))
			case s.Dots || len(s.Points) == 1:
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="1.6" fill="%s"/>`, x(p.T), y(p.V), colour)
			}
		}
		fmt.Fprintf(&b, `<text x="%g" y="%g" fill="%s">%s</text>`, left+8+float64(i)*110, top+12, colour, html.EscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func axisValue(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3g", v)
}
