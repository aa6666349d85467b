package sim

import (
	"fmt"
	"math"
	"time"

	"github.com/plume-emissions/plume"
)

// TamperKind is a way a station can falsify its data.
type TamperKind string

const (
	// TamperConstant outputs one fixed value of a field for every vehicle
	// (恒值): a frozen or faked analyser output.
	TamperConstant TamperKind = "constant"
	// TamperLimitHug pushes every value of a field at or above a limit
	// down into [0.9·limit, limit) (贴限): exceedances made to disappear.
	TamperLimitHug TamperKind = "limit_hug"
	// TamperReplay sends readings recorded Lag earlier again, in order,
	// with their times shifted by Lag: a station replaying old data.
	TamperReplay TamperKind = "replay"
	// TamperDropout drops every pass (and the status records that would
	// follow them) while vehicles keep passing: a station that stops
	// reporting when it suits it.
	TamperDropout TamperKind = "dropout"
)

// Tamper falsifies a generator's passes in the window [From, To) of the
// record clock. One Tamper serves one generator; it keeps the state the
// falsification needs (the readings to replay, the vehicles dropped).
type Tamper struct {
	Kind     TamperKind
	From, To time.Time
	Field    string        // constant, limit_hug: "co2", "co", "hc", "no" or "opacity"
	Value    float64       // constant: the value sent; limit_hug: the limit hugged
	Lag      time.Duration // replay: how old the replayed readings are [24 h]
	Tampered int           // passes falsified (or dropped) so far

	recorded []plume.Reading // replay: readings of [From−Lag, To−Lag)
	next     int
	dropped  []time.Time // dropout: vehicles that passed unreported, not yet taken
}

// Validate reports a tamper that cannot work.
func (t *Tamper) Validate() error {
	switch t.Kind {
	case TamperConstant, TamperLimitHug:
		if fieldPtr(&plume.Reading{}, t.Field) == nil {
			return fmt.Errorf("tamper %s: unknown field %q", t.Kind, t.Field)
		}
		if t.Kind == TamperLimitHug && t.Value <= 0 {
			return fmt.Errorf("tamper %s: the limit must be positive", t.Kind)
		}
	case TamperReplay, TamperDropout:
	default:
		return fmt.Errorf("tamper: unknown kind %q", t.Kind)
	}
	if !t.To.After(t.From) {
		return fmt.Errorf("tamper %s: empty window", t.Kind)
	}
	return nil
}

func (t *Tamper) lag() time.Duration {
	if t.Lag <= 0 {
		return 24 * time.Hour
	}
	return t.Lag
}

// TakeDropped returns the times of the vehicles dropped since the last
// call: they passed the cameras but the analyser's records never left.
func (t *Tamper) TakeDropped() []time.Time {
	d := t.dropped
	t.dropped = nil
	return d
}

func fieldPtr(r *plume.Reading, field string) *float64 {
	switch field {
	case "co2":
		return &r.Gases.CO2
	case "co":
		return &r.Gases.CO
	case "hc":
		return &r.Gases.HC
	case "no":
		return &r.Gases.NO
	case "opacity":
		return &r.Opacity
	}
	return nil
}

// fieldPlaces is the number of decimals the generator reports a field to.
var fieldPlaces = map[string]int{"co2": 2, "co": 3, "hc": 0, "no": 0, "opacity": 1}

// tamperedPass is the generator's pass, falsified by its Tamper if any.
func (g *Generator) tamperedPass() Event {
	t := g.cfg.Tamper
	if t == nil {
		return g.pass()
	}
	for {
		ev := g.pass()
		r := ev.Reading
		lag := t.lag()
		if t.Kind == TamperReplay && !r.Time.Before(t.From.Add(-lag)) && r.Time.Before(t.To.Add(-lag)) {
			t.recorded = append(t.recorded, *r)
		}
		if r.Time.Before(t.From) || !r.Time.Before(t.To) {
			return ev
		}
		switch t.Kind {
		case TamperDropout:
			if g.cfg.Now != nil { // a live clock does not move while we loop: dropout needs the simulated clock
				return ev
			}
			t.Tampered++
			t.dropped = append(t.dropped, r.Time)
			continue
		case TamperConstant:
			*fieldPtr(r, t.Field) = t.Value
			if t.Field == "opacity" && r.Ringelmann >= 0 {
				r.Ringelmann = math.Min(5, math.Floor(t.Value/20))
			}
			t.Tampered++
		case TamperLimitHug:
			p := fieldPtr(r, t.Field)
			if *p >= t.Value {
				step := math.Pow(10, -float64(fieldPlaces[t.Field]))
				*p = math.Min(round(t.Value*(0.9+0.1*g.rng.Float64()), fieldPlaces[t.Field]), t.Value-step)
				t.Tampered++
			}
		case TamperReplay:
			if t.next >= len(t.recorded) {
				return ev
			}
			old := t.recorded[t.next]
			t.next++
			old.Seq = r.Seq
			if g.cfg.Now == nil {
				old.Time = old.Time.Add(lag)
				g.clock = old.Time
			} else {
				old.Time, old.Lane = r.Time, r.Lane
			}
			if last, ok := g.last[old.Lane]; ok && !old.Time.After(last) {
				old.Time = last.Add(time.Millisecond)
			}
			g.last[old.Lane] = old.Time
			*r = old
			t.Tampered++
		}
		return ev
	}
}
