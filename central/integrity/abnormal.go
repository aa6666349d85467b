package integrity

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
)

// impossibleParams configures impossible_value. Every bound is physical,
// not a limit: a reading outside them cannot come from a working analyser
// measuring a real vehicle.
type impossibleParams struct {
	CO2Min           float64 `yaml:"co2_min"`            // %, weakest corrected CO2 of combustion
	CO2Max           float64 `yaml:"co2_max"`            // %, above stoichiometric combustion of any road fuel
	CarbonMax        float64 `yaml:"carbon_max"`         // %, CO2 + CO (carbon balance)
	OpacityMax       float64 `yaml:"opacity_max"`        // %
	MaxAbsAccel      float64 `yaml:"max_abs_accel"`      // m/s², beyond any road vehicle
	MaxVSP           float64 `yaml:"max_vsp"`            // kW/t, power no road vehicle delivers
	MaxRingelmannGap float64 `yaml:"max_ringelmann_gap"` // grades between Ringelmann and opacity/20
	MinCount         int     `yaml:"min_count"`          // impossible passes in an hour that fire
}

func (p *impossibleParams) validate() error {
	switch {
	case p.CO2Min < 0 || p.CO2Max <= p.CO2Min:
		return errors.New("need 0 ≤ co2_min < co2_max")
	case p.CarbonMax <= 0 || p.OpacityMax <= 0 || p.MaxAbsAccel <= 0 || p.MaxVSP <= 0 || p.MaxRingelmannGap <= 0:
		return errors.New("carbon_max, opacity_max, max_abs_accel, max_vsp and max_ringelmann_gap must be positive")
	case p.MinCount < 1:
		return errors.New("min_count must be at least 1")
	}
	return nil
}

// impossibleValue fires on readings no real vehicle and working analyser
// can produce: CO2 outside the combustion range, NO with no CO2, opacity
// above 100 %, speed and acceleration implying impossible power.
type impossibleValue struct {
	base
	p     impossibleParams
	batch hourBatch
}

// why returns what is impossible about r, the offending value and its
// bound, or "" when nothing is.
func (d *impossibleValue) why(r *plume.Reading) (string, float64, float64) {
	g := r.Gases
	vsp := plume.VSP(r.SpeedKmh/3.6, r.AccelMS2, r.SlopePct/100)
	switch {
	case g.NO > 0 && g.CO2 <= 0:
		return fmt.Sprintf("NO %g ppm with no CO2", g.NO), g.NO, 0
	case g.CO2 < d.p.CO2Min:
		return fmt.Sprintf("CO2 %g %% below combustion range (≥ %g)", g.CO2, d.p.CO2Min), g.CO2, d.p.CO2Min
	case g.CO2 > d.p.CO2Max:
		return fmt.Sprintf("CO2 %g %% above combustion range (≤ %g)", g.CO2, d.p.CO2Max), g.CO2, d.p.CO2Max
	case g.CO2+g.CO > d.p.CarbonMax:
		return fmt.Sprintf("CO2+CO %g %% above carbon balance %g", g.CO2+g.CO, d.p.CarbonMax), g.CO2 + g.CO, d.p.CarbonMax
	case r.Opacity > d.p.OpacityMax || r.Opacity < 0:
		return fmt.Sprintf("opacity %g %% outside 0–%g", r.Opacity, d.p.OpacityMax), r.Opacity, d.p.OpacityMax
	case math.Abs(r.AccelMS2) > d.p.MaxAbsAccel:
		return fmt.Sprintf("acceleration %g m/s² beyond ±%g", r.AccelMS2, d.p.MaxAbsAccel), r.AccelMS2, d.p.MaxAbsAccel
	case vsp > d.p.MaxVSP:
		return fmt.Sprintf("%g km/h with %g m/s² needs %.0f kW/t (max %g)", r.SpeedKmh, r.AccelMS2, vsp, d.p.MaxVSP), vsp, d.p.MaxVSP
	case r.Ringelmann >= 0 && math.Abs(r.Ringelmann-r.Opacity/20) > d.p.MaxRingelmannGap:
		return fmt.Sprintf("Ringelmann %g against opacity %g %% (grade %.1f)", r.Ringelmann, r.Opacity, r.Opacity/20), r.Ringelmann, r.Opacity / 20
	}
	return "", 0, 0
}

func (d *impossibleValue) pass(s *Stream, rec *plume.Record) {
	r := &rec.Pass.Reading
	if f := r.Flag; f != "" && f != plume.FlagNormal {
		return
	}
	d.checked(1)
	if why, v, limit := d.why(r); why != "" {
		d.batch.add(rec.ID, r.Time, v, "pass "+rec.ID+": "+why)
		d.batch.worst = limit
	}
}

func (d *impossibleValue) hourClosed(s *Stream, start time.Time) { d.fire(s) }
func (d *impossibleValue) flush(s *Stream, until time.Time)      { d.fire(s) }

func (d *impossibleValue) fire(s *Stream) {
	b := d.batch
	d.batch = hourBatch{}
	if n := b.ev.count; n == 0 || n < d.p.MinCount {
		return
	}
	b.points.Name = "offending value"
	chart := &Chart{Title: "Physically impossible readings", Series: []ChartSeries{b.points},
		Thresholds: []ChartLine{{Label: "bound", Value: b.worst}}}
	s.emit(d.rs, b.from, b.to, b.ev, float64(b.ev.count), float64(d.p.MinCount), chart,
		"%d physically impossible reading(s): %s", b.ev.count, b.explain())
}

// ratioParams configures ratio_anomaly.
type ratioParams struct {
	COCO2Max float64 `yaml:"co_co2_max"` // CO/CO2, both %
	NOCO2Max float64 `yaml:"no_co2_max"` // NO ppm per % CO2
	HCCO2Max float64 `yaml:"hc_co2_max"` // HC ppm per % CO2
	MinCount int     `yaml:"min_count"`  // anomalous passes in an hour that fire
}

// ratioAnomaly fires when a pass's pollutant-to-CO2 ratios lie outside
// what combustion can produce. Remote sensing measures ratios to CO2 and
// derives concentrations from them, so a broken ratio is a broken (or
// edited) reading even when each concentration looks plausible.
type ratioAnomaly struct {
	base
	p     ratioParams
	batch hourBatch
	bound float64
}

func (d *ratioAnomaly) pass(s *Stream, rec *plume.Record) {
	r := &rec.Pass.Reading
	if !measured(rec.Pass) {
		return
	}
	d.checked(1)
	g := r.Gases
	var why string
	var v, limit float64
	switch {
	case g.CO/g.CO2 > d.p.COCO2Max:
		v, limit = g.CO/g.CO2, d.p.COCO2Max
		why = fmt.Sprintf("CO/CO2 %.2f above %g", v, limit)
	case g.NO/g.CO2 > d.p.NOCO2Max:
		v, limit = g.NO/g.CO2, d.p.NOCO2Max
		why = fmt.Sprintf("NO/CO2 %.0f ppm/%% above %g", v, limit)
	case g.HC/g.CO2 > d.p.HCCO2Max:
		v, limit = g.HC/g.CO2, d.p.HCCO2Max
		why = fmt.Sprintf("HC/CO2 %.0f ppm/%% above %g", v, limit)
	default:
		return
	}
	d.batch.add(rec.ID, r.Time, v, "pass "+rec.ID+": "+why)
	d.bound = limit
}

func (d *ratioAnomaly) hourClosed(s *Stream, start time.Time) { d.fire(s) }
func (d *ratioAnomaly) flush(s *Stream, until time.Time)      { d.fire(s) }

func (d *ratioAnomaly) fire(s *Stream) {
	b := d.batch
	d.batch = hourBatch{}
	if n := b.ev.count; n == 0 || n < d.p.MinCount {
		return
	}
	b.points.Name = "ratio"
	chart := &Chart{Title: "Gas ratios to CO2", Series: []ChartSeries{b.points},
		Thresholds: []ChartLine{{Label: "physical bound", Value: d.bound}}}
	s.emit(d.rs, b.from, b.to, b.ev, float64(b.ev.count), float64(d.p.MinCount), chart,
		"%d reading(s) with gas ratios combustion cannot produce: %s", b.ev.count, b.explain())
}

// jumpParams configures sudden_jump (突升突降).
type jumpParams struct {
	Fields        []string `yaml:"fields"`
	BaselineHours int      `yaml:"baseline_hours"` // trailing hours the current hour is compared with
	MinPasses     int      `yaml:"min_passes"`     // passes of one fuel an hour needs to be judged
	Z             float64  `yaml:"z"`              // shift, in standard errors, that fires
	MinChange     float64  `yaml:"min_change"`     // and the least relative change of the median (0.3 = 30 %)
}

// suddenJump fires when a station-level statistic — the hourly median of
// a gas or opacity, per fuel — jumps up or down against the station's
// trailing hours by more than sampling noise and more than min_change.
// Fleets do not change within an hour; an analyser that was re-scaled,
// swapped or tampered with does.
type suddenJump struct {
	base
	p      jumpParams
	series map[jumpKey]*jumpSeries
}

type jumpKey struct {
	fuel  plume.Fuel
	field string
}

type jumpSeries struct {
	cur   []float64 // log values this hour
	ids   evidence
	hist  []jumpHour
	alarm bool
	chart []ChartPoint
}

type jumpHour struct {
	median, sigma float64
	n             int
}

// resolution is the smallest reported step of each field; log values are
// taken of value + resolution so that zeros stay finite.
var resolution = map[string]float64{"co2": 0.01, "co": 0.001, "hc": 1, "no": 1, "opacity": 0.1}

func (d *suddenJump) pass(s *Stream, rec *plume.Record) {
	p := rec.Pass
	if !measured(p) || p.Reading.Time.Before(s.hour) {
		return
	}
	for _, f := range d.p.Fields {
		k := jumpKey{p.Reading.Fuel, f}
		js := d.series[k]
		if js == nil {
			js = &jumpSeries{}
			d.series[k] = js
		}
		js.cur = append(js.cur, math.Log(fieldValue(&p.Reading, f)+resolution[f]))
		js.ids.add(rec.ID)
	}
}

func (d *suddenJump) hourClosed(s *Stream, start time.Time) {
	for k, js := range d.series {
		n := len(js.cur)
		if n < d.p.MinPasses {
			js.cur, js.ids = js.cur[:0], evidence{}
			continue
		}
		d.checked(1)
		m := median(js.cur)
		sig := robustSigma(js.cur, m)
		ev := js.ids
		js.cur, js.ids = js.cur[:0], evidence{}
		cur := jumpHour{median: m, sigma: sig, n: n}
		if len(js.hist) >= d.p.BaselineHours/2 {
			meds := make([]float64, len(js.hist))
			sigs := make([]float64, len(js.hist))
			ns := make([]float64, len(js.hist))
			for i, h := range js.hist {
				meds[i], sigs[i], ns[i] = h.median, h.sigma, float64(h.n)
			}
			base := median(meds)
			pooled := median(sigs)
			// The spread of past hourly medians is sampling noise plus real
			// hour-to-hour variation; only the latter adds to this hour's
			// own sampling noise.
			spread := robustSigma(meds, base)
			noise := 1.2533 * pooled / math.Sqrt(median(ns))
			tau2 := math.Max(0, spread*spread-noise*noise)
			se := math.Sqrt(math.Pow(1.2533*pooled/math.Sqrt(float64(n)), 2) + tau2)
			shift := m - base
			z := math.Abs(shift) / se
			jump := z >= d.p.Z && math.Abs(math.Expm1(shift)) >= d.p.MinChange
			js.chart = appendCapped(js.chart, ChartPoint{T: start, V: math.Exp(m) - resolution[k.field], Hit: jump}, 72)
			if jump && !js.alarm {
				dir := "rose"
				if shift < 0 {
					dir = "fell"
				}
				b := math.Exp(base) - resolution[k.field]
				band := math.Exp(d.p.Z * se) // multiplicative band of the threshold
				chart := &Chart{Title: fmt.Sprintf("Hourly median %s, %s vehicles", strings.ToUpper(k.field), fuelName(k.fuel)), Unit: fieldUnit(k.field),
					Series: []ChartSeries{{Name: "hourly median", Points: clonePoints(js.chart)}},
					Thresholds: []ChartLine{{Label: "usual", Value: b},
						{Label: "jump", Value: (b+resolution[k.field])*band - resolution[k.field]},
						{Label: "drop", Value: (b+resolution[k.field])/band - resolution[k.field]}}}
				s.emit(d.rs, start, start.Add(time.Hour), ev, z, d.p.Z, chart,
					"the hourly median %s of %s vehicles %s from a usual %.4g to %.4g %s (%+.0f %%, %.1f standard errors, threshold %.1f) over %d passes: 突升突降",
					strings.ToUpper(k.field), fuelName(k.fuel), dir, b, math.Exp(m)-resolution[k.field], fieldUnit(k.field),
					100*math.Expm1(shift), z, d.p.Z, n)
			}
			js.alarm = jump
		} else {
			js.chart = appendCapped(js.chart, ChartPoint{T: start, V: math.Exp(m) - resolution[k.field]}, 72)
		}
		js.hist = append(js.hist, cur)
		if len(js.hist) > d.p.BaselineHours {
			js.hist = append(js.hist[:0], js.hist[1:]...)
		}
	}
}

func fuelName(f plume.Fuel) string {
	if f == "" {
		return "unknown-fuel"
	}
	return string(f)
}
