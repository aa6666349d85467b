package plume

import (
	"fmt"
	"math"
	"strings"
)

// Outcome is the overall result of judging one pass.
type Outcome string

const (
	OutcomePass    Outcome = "pass"    // valid and within every limit
	OutcomeExceed  Outcome = "exceed"  // valid and above at least one limit
	OutcomeInvalid Outcome = "invalid" // the reading cannot be judged
)

// ResultCode returns the HJ 845-2017 report result code: 1 pass, 0 fail,
// 2 invalid.
func (o Outcome) ResultCode() int {
	switch o {
	case OutcomePass:
		return 1
	case OutcomeExceed:
		return 0
	}
	return 2
}

// Label returns the outcome in Chinese and English, as the HJ 845-2017
// report words its result codes: "合格 pass", "不合格 fail", "无效 invalid".
func (o Outcome) Label() string {
	switch o {
	case OutcomePass:
		return "合格 pass"
	case OutcomeExceed:
		return "不合格 fail"
	}
	return "无效 invalid"
}

// Check is one limit compared with one measured value.
type Check struct {
	Pollutant   Pollutant `json:"pollutant"`
	Value       float64   `json:"value"`
	Limit       float64   `json:"limit"`
	Unit        string    `json:"unit"`
	Exceeded    bool      `json:"exceeded"`
	Provisional bool      `json:"provisional,omitempty"`
	// Source is who measured the value: "" the analyser, SourceCamera the
	// station's camera (black smoke graded on the images).
	Source string `json:"source,omitempty"`
}

// SourceCamera marks a check whose value the camera graded: a Ringelmann
// grade read from the images, which exceeds when it is at or above the
// profile's smoke grade (Limit).
const SourceCamera = "camera"

// Op returns the comparison the check makes: ">" or "≤" for the analyser's
// limits (a value strictly above the limit exceeds), "≥" or "<" for the
// camera's smoke grade (a grade at or above the limit exceeds).
func (c Check) Op() string {
	switch {
	case c.Source == SourceCamera && c.Exceeded:
		return "≥"
	case c.Source == SourceCamera:
		return "<"
	case c.Exceeded:
		return ">"
	}
	return "≤"
}

func (c Check) String() string {
	s := fmt.Sprintf("%s %s %s %s %s", strings.ToUpper(string(c.Pollutant)), formatValue(c.Value), c.Unit, c.Op(), formatValue(c.Limit))
	if c.Unit != "grade" {
		s += " " + c.Unit
	}
	if c.Source == SourceCamera {
		s += " (camera)"
	}
	if c.Provisional {
		s += " (provisional limit)"
	}
	return s
}

// Invalidity is one reason a reading cannot be judged.
type Invalidity struct {
	Check   string `json:"check"`   // "vsp", "plume", "wind", "rain", "speed", "accel", "temp", "device", "fuel", "profile"
	Message string `json:"message"` // e.g. "VSP 31.2 kW/t outside 3–22"
}

// Verdict judges one pass against one limit profile and explains itself:
// which pollutant, which measured value, which limit, which profile and
// version.
type Verdict struct {
	Outcome        Outcome      `json:"outcome"`
	ResultCode     int          `json:"result_code"` // HJ 845-2017: 1 pass, 0 fail, 2 invalid
	Profile        string       `json:"profile"`
	ProfileVersion string       `json:"profile_version"`
	Standard       string       `json:"standard"`
	VSP            float64      `json:"vsp_kw_per_t"`
	FuelNO         float64      `json:"fuel_no_g_per_kg,omitempty"` // fuel-specific NO, g/kg (FEAT)
	Checks         []Check      `json:"checks,omitempty"`
	Invalid        []Invalidity `json:"invalid,omitempty"`
	Summary        string       `json:"summary"`
}

// Exceedances returns the checks that exceeded their limit.
func (v *Verdict) Exceedances() []Check {
	var out []Check
	for _, c := range v.Checks {
		if c.Exceeded {
			out = append(out, c)
		}
	}
	return out
}

// AnalyserExceeded reports whether one of the analyser's own checks
// exceeded its limit (not only the camera's smoke grade).
func (v *Verdict) AnalyserExceeded() bool {
	for _, c := range v.Checks {
		if c.Exceeded && c.Source != SourceCamera {
			return true
		}
	}
	return false
}

// VSP returns vehicle specific power in kW/t for speed v (m/s),
// acceleration a (m/s²) and road grade (a ratio, 0.02 for 2 %):
// v·(1.1·a + 9.81·grade + 0.132) + 0.000302·v³.
func VSP(v, a, grade float64) float64 {
	return v*(1.1*a+9.81*grade+0.132) + 0.000302*v*v*v
}

// FuelSpecificNO returns NO in grams per kilogram of fuel by the University
// of Denver FEAT method: 30·Q″·860 / ((1 + Q + 6·Q′)·12), where Q = CO/CO₂,
// Q′ = HC/CO₂ and Q″ = NO/CO₂, all as volume ratios. It returns 0 when CO₂
// is not positive.
func FuelSpecificNO(g Gases) float64 {
	if g.CO2 <= 0 {
		return 0
	}
	co2ppm := g.CO2 * 1e4
	q := g.CO / g.CO2
	q1 := g.HC / co2ppm
	q2 := g.NO / co2ppm
	return 30 * q2 * 860 / ((1 + q + 6*q1) * 12)
}

// Judge judges a pass: the analyser's reading against the profile
// (Assess), and the camera's smoke verdict against the profile's smoke
// grade. Camera black smoke at or above that grade is a Ringelmann check
// from the camera that exceeds: it replaces the analyser's Ringelmann
// check, makes the outcome an exceedance (result code 0) even when the
// analyser's reading cannot be judged, and leads the summary. A pass that
// is a violation candidate by Pass.Violation therefore never carries a
// passing verdict. smoke may be nil (no camera, or no track matched).
func Judge(r *Reading, smoke *Smoke, p *LimitProfile) Verdict {
	v := Assess(r, p)
	if p == nil || smoke == nil || !smoke.Smoky || p.Smoke.MinGrade <= 0 || smoke.Grade < p.Smoke.MinGrade {
		return v
	}
	cam := Check{
		Pollutant: PollutantRingelmann, Value: float64(smoke.Grade), Limit: float64(p.Smoke.MinGrade),
		Unit: PollutantRingelmann.Unit(), Exceeded: true, Provisional: p.Provisional, Source: SourceCamera,
	}
	// An invalid reading's analyser values were not judged: only the
	// camera's check stands. A valid one keeps its checks, the camera's
	// grade in place of the analyser's Ringelmann value.
	checks := []Check{cam}
	if v.Outcome != OutcomeInvalid {
		for _, c := range v.Checks {
			if c.Pollutant != PollutantRingelmann {
				checks = append(checks, c)
			}
		}
	}
	v.Checks = checks
	cite := fmt.Sprintf("%s, profile %s", p.Standard, p.Ref())
	msgs := []string{cam.String()}
	for _, c := range v.Exceedances()[1:] {
		msgs = append(msgs, c.String())
	}
	v.Summary = "exceeds: " + strings.Join(msgs, "; ")
	if len(v.Invalid) > 0 {
		iv := make([]string, len(v.Invalid))
		for i, x := range v.Invalid {
			iv[i] = x.Message
		}
		v.Summary += "; analyser reading not judged: " + strings.Join(iv, "; ")
	}
	v.Summary += " (" + cite + ")"
	v.Outcome = OutcomeExceed
	v.ResultCode = v.Outcome.ResultCode()
	return v
}

// Assess judges a reading against the profile. A nil profile gives an
// invalid verdict that says so. The reading should already have passed
// Reading.Validate. Judge adds the camera's smoke verdict.
func Assess(r *Reading, p *LimitProfile) Verdict {
	v := Verdict{
		VSP:    round(VSP(r.SpeedKmh/3.6, r.AccelMS2, r.SlopePct/100), 2),
		FuelNO: round(FuelSpecificNO(r.Gases), 2),
	}
	if p == nil {
		v.Outcome = OutcomeInvalid
		v.ResultCode = v.Outcome.ResultCode()
		fuel := string(r.Fuel)
		if fuel == "" {
			fuel = "unknown"
		}
		v.Invalid = []Invalidity{{Check: "profile", Message: fmt.Sprintf("no limit profile for fuel %s", fuel)}}
		v.Summary = "invalid: " + v.Invalid[0].Message
		return v
	}
	v.Profile, v.ProfileVersion, v.Standard = p.Name, p.Version, p.Standard

	invalid := func(check, format string, args ...any) {
		v.Invalid = append(v.Invalid, Invalidity{Check: check, Message: fmt.Sprintf(format, args...)})
	}
	if r.Flag != "" && r.Flag != FlagNormal {
		invalid("device", "analyser status %s (%s)", r.Flag, r.Flag.Describe())
	}
	if !p.Validity.VSP.Contains(v.VSP) {
		invalid("vsp", "VSP %s kW/t outside %s", formatValue(v.VSP), p.Validity.VSP)
	}
	if !p.Validity.SpeedKmh.Contains(r.SpeedKmh) {
		invalid("speed", "speed %s km/h outside %s", formatValue(r.SpeedKmh), p.Validity.SpeedKmh)
	}
	if !p.Validity.AccelMS2.Contains(r.AccelMS2) {
		invalid("accel", "acceleration %s m/s² outside %s", formatValue(r.AccelMS2), p.Validity.AccelMS2)
	}
	if r.PlumeCO2 < p.Validity.MinPlumeCO2 {
		invalid("plume", "CO2 plume %s %%·cm below %s (plume too weak)", formatValue(r.PlumeCO2), formatValue(p.Validity.MinPlumeCO2))
	}
	if p.Validity.MaxWindMS != nil && r.Ambient.WindMS > *p.Validity.MaxWindMS {
		invalid("wind", "wind %s m/s above %s", formatValue(r.Ambient.WindMS), formatValue(*p.Validity.MaxWindMS))
	}
	if p.Validity.InvalidInRain && r.Ambient.Rain {
		invalid("rain", "measured in rain")
	}
	if !p.Validity.TempC.Contains(r.Ambient.TempC) {
		invalid("temp", "ambient %s °C outside %s", formatValue(r.Ambient.TempC), p.Validity.TempC)
	}

	for _, l := range p.Limits {
		val, ok := r.Value(l.Pollutant)
		if !ok {
			continue
		}
		v.Checks = append(v.Checks, Check{
			Pollutant: l.Pollutant, Value: val, Limit: l.Max, Unit: l.Unit,
			Exceeded: val > l.Max, Provisional: l.Provisional || p.Provisional,
		})
	}

	cite := fmt.Sprintf("%s, profile %s", p.Standard, p.Ref())
	switch {
	case len(v.Invalid) > 0:
		v.Outcome = OutcomeInvalid
		msgs := make([]string, len(v.Invalid))
		for i, iv := range v.Invalid {
			msgs[i] = iv.Message
		}
		v.Summary = "invalid: " + strings.Join(msgs, "; ") + " (" + cite + ")"
	case len(v.Exceedances()) > 0:
		v.Outcome = OutcomeExceed
		var msgs []string
		for _, c := range v.Exceedances() {
			msgs = append(msgs, c.String())
		}
		v.Summary = "exceeds: " + strings.Join(msgs, "; ") + " (" + cite + ")"
	default:
		v.Outcome = OutcomePass
		v.Summary = "within limits (" + cite + ")"
	}
	v.ResultCode = v.Outcome.ResultCode()
	return v
}

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

func formatValue(x float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", x), "0"), ".")
}
