package plume

import (
	"fmt"
	"math"
	"time"
)

// Pollutant names a quantity that a limit profile can limit.
type Pollutant string

const (
	PollutantCO         Pollutant = "co"         // %
	PollutantHC         Pollutant = "hc"         // ppm
	PollutantNO         Pollutant = "no"         // ppm
	PollutantOpacity    Pollutant = "opacity"    // %
	PollutantRingelmann Pollutant = "ringelmann" // grade 0–5
)

// Unit returns the unit the pollutant is measured in.
func (p Pollutant) Unit() string {
	switch p {
	case PollutantCO, PollutantOpacity:
		return "%"
	case PollutantHC, PollutantNO:
		return "ppm"
	case PollutantRingelmann:
		return "grade"
	}
	return ""
}

// Label returns the pollutant's Chinese name with its code, the way the
// pages and sheets name it ("一氧化氮 NO").
func (p Pollutant) Label() string {
	switch p {
	case PollutantNO:
		return "一氧化氮 NO"
	case PollutantCO:
		return "一氧化碳 CO"
	case PollutantHC:
		return "碳氢化合物 HC"
	case PollutantOpacity:
		return "不透光度 Opacity"
	case PollutantRingelmann:
		return "林格曼黑度 Ringelmann"
	}
	return string(p)
}

// Value returns the reading's measured value for p and whether the reading
// carries it.
func (r *Reading) Value(p Pollutant) (float64, bool) {
	switch p {
	case PollutantCO:
		return r.Gases.CO, true
	case PollutantHC:
		return r.Gases.HC, true
	case PollutantNO:
		return r.Gases.NO, true
	case PollutantOpacity:
		return r.Opacity, true
	case PollutantRingelmann:
		return r.Ringelmann, r.Ringelmann >= 0
	}
	return 0, false
}

// Limit is one pollutant's limit in a profile. A value strictly above Max
// exceeds it.
type Limit struct {
	Pollutant   Pollutant `json:"pollutant" yaml:"pollutant"`
	Max         float64   `json:"max" yaml:"max"`
	Unit        string    `json:"unit" yaml:"unit"`
	Provisional bool      `json:"provisional,omitempty" yaml:"provisional"` // not yet checked against the standard's text
	Source      string    `json:"source,omitempty" yaml:"source"`           // where the figure comes from
}

// Range is a closed interval. A nil bound is open.
type Range struct {
	Min *float64 `json:"min,omitempty" yaml:"min"`
	Max *float64 `json:"max,omitempty" yaml:"max"`
}

// Contains reports whether v lies within the range.
func (r Range) Contains(v float64) bool {
	return (r.Min == nil || v >= *r.Min) && (r.Max == nil || v <= *r.Max)
}

func (r Range) String() string {
	switch {
	case r.Min != nil && r.Max != nil:
		return fmt.Sprintf("%g–%g", *r.Min, *r.Max)
	case r.Min != nil:
		return fmt.Sprintf("≥ %g", *r.Min)
	case r.Max != nil:
		return fmt.Sprintf("≤ %g", *r.Max)
	}
	return "any"
}

// Validity holds the windows a reading must fall in to be judged at all.
type Validity struct {
	VSP           Range    `json:"vsp_kw_per_t" yaml:"vsp_kw_per_t"`   // vehicle specific power, kW/t
	SpeedKmh      Range    `json:"speed_kmh" yaml:"speed_kmh"`         // vehicle speed
	AccelMS2      Range    `json:"accel_ms2" yaml:"accel_ms2"`         // vehicle acceleration
	MinPlumeCO2   float64  `json:"min_plume_co2" yaml:"min_plume_co2"` // %·cm; weaker plumes are invalid
	MaxWindMS     *float64 `json:"max_wind_ms,omitempty" yaml:"max_wind_ms"`
	InvalidInRain bool     `json:"invalid_in_rain" yaml:"invalid_in_rain"`
	TempC         Range    `json:"temp_c" yaml:"temp_c"`
}

// SmokeLimit holds a profile's black-smoke thresholds.
type SmokeLimit struct {
	// MinGrade is the Ringelmann grade at or above which camera-detected
	// smoke makes a violation candidate.
	MinGrade int `json:"min_grade" yaml:"min_grade"`
}

// Repeat is the repeat-exceedance rule: a vehicle is over the limit when the
// same pollutant exceeds Count times in a row within Window. A first
// exceedance gives a warning.
type Repeat struct {
	Count  int           `json:"count" yaml:"count"`
	Window time.Duration `json:"window" yaml:"window"`
}

// LimitProfile is a versioned set of limits and validity windows for one
// fuel. Profiles are data (firmware-config/profiles), never code.
type LimitProfile struct {
	Name        string      `json:"name" yaml:"name"`
	Version     string      `json:"version" yaml:"version"`
	Standard    string      `json:"standard" yaml:"standard"` // e.g. "HJ 845-2017"
	Title       string      `json:"title" yaml:"title"`
	Fuel        Fuel        `json:"fuel" yaml:"fuel"`
	Provisional bool        `json:"provisional" yaml:"provisional"`
	Note        string      `json:"note,omitempty" yaml:"note"`
	Validity    Validity    `json:"validity" yaml:"validity"`
	Limits      []Limit     `json:"limits" yaml:"limits"`
	Smoke       SmokeLimit  `json:"smoke" yaml:"smoke"`
	Repeat      Repeat      `json:"repeat" yaml:"repeat"`
	Audit       AuditPolicy `json:"audit" yaml:"audit"`
}

// Audit policy actions: what happens to a station's new evidence when its
// analyser audit is overdue.
const (
	AuditFlag  = "flag"  // the evidence is marked; officers may still enforce it
	AuditBlock = "block" // the evidence cannot be approved or exported
)

// AuditPolicy says how recent an analyser's passed calibration or
// standard-gas audit must be for its evidence. A failed last audit always
// blocks enforcement; an overdue one is handled by Overdue.
type AuditPolicy struct {
	// MaxInterval is the longest time from the last audit to a capture
	// (default 30 days).
	MaxInterval time.Duration `json:"max_interval,omitempty" yaml:"max_interval"`
	// Overdue is AuditFlag (default) or AuditBlock.
	Overdue string `json:"overdue,omitempty" yaml:"overdue"`
}

// DefaultAuditInterval is the audit interval of a profile that sets none.
const DefaultAuditInterval = 30 * 24 * time.Hour

// Interval returns the policy's interval, or the default.
func (a AuditPolicy) Interval() time.Duration {
	if a.MaxInterval > 0 {
		return a.MaxInterval
	}
	return DefaultAuditInterval
}

// Validate reports the first problem that makes the profile unusable.
func (p *LimitProfile) Validate() error {
	bad := func(format string, args ...any) error {
		return Errorf(EINVALID, "profile %q: %s", p.Name, fmt.Sprintf(format, args...))
	}
	switch {
	case p.Name == "":
		return Errorf(EINVALID, "profile: name is required")
	case p.Version == "":
		return bad("version is required")
	case p.Standard == "":
		return bad("standard is required")
	case p.Fuel != FuelPetrol && p.Fuel != FuelDiesel:
		return bad("fuel must be petrol or diesel, not %q", p.Fuel)
	case len(p.Limits) == 0:
		return bad("at least one limit is required")
	case p.Validity.MinPlumeCO2 < 0:
		return bad("min_plume_co2 must not be negative")
	case p.Smoke.MinGrade < 0 || p.Smoke.MinGrade > 5:
		return bad("smoke.min_grade %d out of range 0–5", p.Smoke.MinGrade)
	case p.Repeat.Count < 1:
		return bad("repeat.count must be at least 1")
	case p.Repeat.Window <= 0:
		return bad("repeat.window must be positive")
	case p.Audit.MaxInterval < 0:
		return bad("audit.max_interval must not be negative")
	case p.Audit.Overdue != "" && p.Audit.Overdue != AuditFlag && p.Audit.Overdue != AuditBlock:
		return bad("audit.overdue must be %q or %q, not %q", AuditFlag, AuditBlock, p.Audit.Overdue)
	}
	for _, r := range []struct {
		name string
		r    Range
	}{{"vsp_kw_per_t", p.Validity.VSP}, {"speed_kmh", p.Validity.SpeedKmh}, {"accel_ms2", p.Validity.AccelMS2}, {"temp_c", p.Validity.TempC}} {
		if r.r.Min != nil && r.r.Max != nil && *r.r.Min > *r.r.Max {
			return bad("validity.%s: min %g above max %g", r.name, *r.r.Min, *r.r.Max)
		}
	}
	seen := map[Pollutant]bool{}
	for _, l := range p.Limits {
		unit := l.Pollutant.Unit()
		switch {
		case unit == "":
			return bad("unknown pollutant %q", l.Pollutant)
		case seen[l.Pollutant]:
			return bad("pollutant %q limited twice", l.Pollutant)
		case l.Unit != unit:
			return bad("pollutant %q is measured in %q, not %q", l.Pollutant, unit, l.Unit)
		case math.IsNaN(l.Max) || l.Max <= 0:
			return bad("limit for %q must be positive", l.Pollutant)
		}
		seen[l.Pollutant] = true
	}
	return nil
}

// Ref returns "name@version", the way verdicts cite the profile.
func (p *LimitProfile) Ref() string { return p.Name + "@" + p.Version }

// ProfileSet selects a station's limit profile by fuel.
type ProfileSet map[Fuel]*LimitProfile

// For returns the profile for fuel, or nil.
func (s ProfileSet) For(fuel Fuel) *LimitProfile { return s[fuel] }
