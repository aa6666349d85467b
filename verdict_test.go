package plume_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
)

func ptr(v float64) *float64 { return &v }

func TestVSP(t *testing.T) {
	// Hand-computed: v = 54 km/h = 15 m/s, a = 0.5 m/s², grade 2 %:
	// 15·(1.1·0.5 + 9.81·0.02 + 0.132) + 0.000302·15³
	// = 15·(0.55 + 0.1962 + 0.132) + 0.000302·3375
	// = 15·0.8782 + 1.01925 = 13.173 + 1.01925 = 14.19225 kW/t.
	for _, tc := range []struct {
		name     string
		v, a, g  float64
		expected float64
	}{
		{"Cruise", 15, 0.5, 0.02, 14.19225},
		{"Standstill", 0, 1, 0.05, 0},
		// v = 25 m/s, a = 0, flat: 25·0.132 + 0.000302·15625 = 3.3 + 4.71875 = 8.01875.
		{"FlatSteady", 25, 0, 0, 8.01875},
		// Decelerating downhill can be negative: 10·(1.1·-1 + 9.81·-0.03 + 0.132) + 0.302
		// = 10·(-1.1 - 0.2943 + 0.132) + 0.302 = -12.623 + 0.302 = -12.321.
		{"DownhillBraking", 10, -1, -0.03, -12.321},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := plume.VSP(tc.v, tc.a, tc.g); math.Abs(got-tc.expected) > 1e-9 {
				t.Fatalf("VSP(%g, %g, %g) = %.6f, want %.6f", tc.v, tc.a, tc.g, got, tc.expected)
			}
		})
	}
}

func TestFuelSpecificNO(t *testing.T) {
	// CO2 = 10 %, CO = 0.5 %, HC = 100 ppm, NO = 1000 ppm:
	// Q = 0.05, Q′ = 100/100000 = 0.001, Q″ = 1000/100000 = 0.01
	// 30·0.01·860 / ((1 + 0.05 + 0.006)·12) = 258 / 12.672 = 20.3598…
	got := plume.FuelSpecificNO(plume.Gases{CO2: 10, CO: 0.5, HC: 100, NO: 1000})
	if math.Abs(got-258/12.672) > 1e-9 {
		t.Fatalf("FuelSpecificNO = %v, want %v", got, 258/12.672)
	}
	if got := plume.FuelSpecificNO(plume.Gases{NO: 100}); got != 0 {
		t.Fatalf("no CO2: got %v, want 0", got)
	}
}

func dieselProfile() *plume.LimitProfile {
	return &plume.LimitProfile{
		Name: "hj845-2017-diesel", Version: "test-1", Standard: "HJ 845-2017", Fuel: plume.FuelDiesel,
		Validity: plume.Validity{
			VSP: plume.Range{Min: ptr(3), Max: ptr(22)}, SpeedKmh: plume.Range{Min: ptr(5), Max: ptr(120)},
			MinPlumeCO2: 10, MaxWindMS: ptr(5), InvalidInRain: true,
		},
		Limits: []plume.Limit{
			{Pollutant: plume.PollutantNO, Max: 1500, Unit: "ppm"},
			{Pollutant: plume.PollutantOpacity, Max: 30, Unit: "%", Provisional: true},
			{Pollutant: plume.PollutantRingelmann, Max: 1, Unit: "grade"},
		},
		Smoke:  plume.SmokeLimit{MinGrade: 2},
		Repeat: plume.Repeat{Count: 2, Window: 4380 * time.Hour},
	}
}

func goodReading() plume.Reading {
	return plume.Reading{
		Time: time.Date(2026, 11, 28, 9, 30, 0, 123e6, time.UTC), Lane: 1, Fuel: plume.FuelDiesel,
		Gases:    plume.Gases{CO2: 12, CO: 0.1, HC: 50, NO: 900},
		PlumeCO2: 40, Opacity: 12, Ringelmann: 0,
		SpeedKmh: 54, AccelMS2: 0.5, SlopePct: 2, // VSP 14.19 kW/t
		Ambient: plume.Ambient{TempC: 20, HumidityPct: 60, WindMS: 2, PressureKPa: 101.3},
		Flag:    plume.FlagNormal,
	}
}

func TestAssess(t *testing.T) {
	p := dieselProfile()
	for _, tc := range []struct {
		name    string
		mutate  func(r *plume.Reading)
		outcome plume.Outcome
		summary []string // substrings the explanation must contain
	}{
		{"Pass", func(r *plume.Reading) {}, plume.OutcomePass, []string{"within limits", "HJ 845-2017", "hj845-2017-diesel@test-1"}},
		{"ExceedNO", func(r *plume.Reading) { r.Gases.NO = 1834 }, plume.OutcomeExceed, []string{"NO 1834 ppm > 1500 ppm", "hj845-2017-diesel@test-1"}},
		{"ExceedOpacityProvisional", func(r *plume.Reading) { r.Opacity = 41.5 }, plume.OutcomeExceed, []string{"OPACITY 41.5 % > 30 %", "provisional"}},
		{"AtLimitIsPass", func(r *plume.Reading) { r.Gases.NO = 1500 }, plume.OutcomePass, nil},
		{"ExceedRingelmann", func(r *plume.Reading) { r.Ringelmann = 2 }, plume.OutcomeExceed, []string{"RINGELMANN 2 grade > 1"}},
		{"RingelmannNotMeasured", func(r *plume.Reading) { r.Ringelmann = -1 }, plume.OutcomePass, nil},
		{"InvalidWeakPlume", func(r *plume.Reading) { r.PlumeCO2 = 4; r.Gases.NO = 3000 }, plume.OutcomeInvalid, []string{"plume too weak"}},
		// 100 km/h, a = 1.5: v = 27.78 m/s; VSP = 27.78·(1.65+0.1962+0.132)+0.000302·27.78³ ≈ 61.4.
		{"InvalidVSP", func(r *plume.Reading) { r.SpeedKmh = 100; r.AccelMS2 = 1.5 }, plume.OutcomeInvalid, []string{"VSP", "outside 3–22"}},
		{"InvalidRain", func(r *plume.Reading) { r.Ambient.Rain = true }, plume.OutcomeInvalid, []string{"rain"}},
		{"InvalidWind", func(r *plume.Reading) { r.Ambient.WindMS = 7.5 }, plume.OutcomeInvalid, []string{"wind 7.5 m/s above 5"}},
		{"InvalidDeviceCalibrating", func(r *plume.Reading) { r.Flag = plume.FlagCalibration }, plume.OutcomeInvalid, []string{"analyser status C (calibration)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := goodReading()
			tc.mutate(&r)
			if err := r.Validate(); err != nil {
				t.Fatalf("reading invalid: %v", err)
			}
			v := plume.Assess(&r, p)
			if v.Outcome != tc.outcome {
				t.Fatalf("outcome %s, want %s (%s)", v.Outcome, tc.outcome, v.Summary)
			}
			if v.ResultCode != tc.outcome.ResultCode() {
				t.Fatalf("result code %d, want %d", v.ResultCode, tc.outcome.ResultCode())
			}
			if v.Profile != p.Name || v.ProfileVersion != p.Version || v.Standard != p.Standard {
				t.Fatalf("verdict does not cite the profile: %+v", v)
			}
			for _, s := range tc.summary {
				if !strings.Contains(v.Summary, s) {
					t.Errorf("summary %q lacks %q", v.Summary, s)
				}
			}
		})
	}
	t.Run("NoProfile", func(t *testing.T) {
		r := goodReading()
		r.Fuel = plume.FuelUnknown
		v := plume.Assess(&r, nil)
		if v.Outcome != plume.OutcomeInvalid || !strings.Contains(v.Summary, "fuel unknown") {
			t.Fatalf("got %s %q", v.Outcome, v.Summary)
		}
	})
	t.Run("VSPValue", func(t *testing.T) {
		r := goodReading()
		if v := plume.Assess(&r, p); v.VSP != 14.19 {
			t.Fatalf("VSP %v, want 14.19", v.VSP)
		}
	})
}

func TestReadingValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(r *plume.Reading)
	}{
		{"ErrNaN", func(r *plume.Reading) { r.Gases.NO = math.NaN() }},
		{"ErrInf", func(r *plume.Reading) { r.SpeedKmh = math.Inf(1) }},
		{"ErrNoTime", func(r *plume.Reading) { r.Time = time.Time{} }},
		{"ErrLane", func(r *plume.Reading) { r.Lane = 0 }},
		{"ErrFuel", func(r *plume.Reading) { r.Fuel = "hydrogen" }},
		{"ErrNegativeGas", func(r *plume.Reading) { r.Gases.CO = -0.1 }},
		{"ErrOpacity", func(r *plume.Reading) { r.Opacity = 101 }},
		{"ErrRingelmann", func(r *plume.Reading) { r.Ringelmann = 6 }},
		{"ErrFlag", func(r *plume.Reading) { r.Flag = "X" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := goodReading()
			tc.mutate(&r)
			err := r.Validate()
			if plume.ErrorCode(err) != plume.EINVALID {
				t.Fatalf("got %v, want an invalid error", err)
			}
		})
	}
}

func TestProfileValidate(t *testing.T) {
	if err := dieselProfile().Validate(); err != nil {
		t.Fatalf("good profile: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(p *plume.LimitProfile)
	}{
		{"ErrNoVersion", func(p *plume.LimitProfile) { p.Version = "" }},
		{"ErrFuel", func(p *plume.LimitProfile) { p.Fuel = "" }},
		{"ErrUnit", func(p *plume.LimitProfile) { p.Limits[0].Unit = "%" }},
		{"ErrDuplicate", func(p *plume.LimitProfile) { p.Limits = append(p.Limits, p.Limits[0]) }},
		{"ErrUnknownPollutant", func(p *plume.LimitProfile) { p.Limits[0].Pollutant = "pm25" }},
		{"ErrRange", func(p *plume.LimitProfile) { p.Validity.VSP = plume.Range{Min: ptr(30), Max: ptr(3)} }},
		{"ErrSmokeGrade", func(p *plume.LimitProfile) { p.Smoke.MinGrade = 6 }},
		{"ErrRepeat", func(p *plume.LimitProfile) { p.Repeat.Count = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := dieselProfile()
			tc.mutate(p)
			if err := p.Validate(); plume.ErrorCode(err) != plume.EINVALID {
				t.Fatalf("got %v, want an invalid error", err)
			}
		})
	}
}

// TestJudgeCameraSmoke: camera smoke at or above the profile's grade must
// show in the verdict itself (the Ringelmann row, the outcome, the result
// code), so no view of a smoke case can print "pass".
func TestJudgeCameraSmoke(t *testing.T) {
	p := dieselProfile() // smoke.min_grade 2
	ringelmann := func(v plume.Verdict) []plume.Check {
		var out []plume.Check
		for _, c := range v.Checks {
			if c.Pollutant == plume.PollutantRingelmann {
				out = append(out, c)
			}
		}
		return out
	}
	t.Run("SmokeOverValidPass", func(t *testing.T) {
		r := goodReading() // analyser: Ringelmann 0, within every limit
		v := plume.Judge(&r, &plume.Smoke{Smoky: true, Grade: 4, Confidence: 0.9}, p)
		if v.Outcome != plume.OutcomeExceed || v.ResultCode != 0 {
			t.Fatalf("outcome %s code %d, want exceed 0 (%s)", v.Outcome, v.ResultCode, v.Summary)
		}
		rg := ringelmann(v)
		if len(rg) != 1 || rg[0].Value != 4 || !rg[0].Exceeded || rg[0].Source != plume.SourceCamera || rg[0].Limit != 2 {
			t.Fatalf("Ringelmann checks %+v, want one camera grade 4 exceeding 2", rg)
		}
		if len(v.Checks) != 3 {
			t.Fatalf("checks %+v, want NO, opacity and the camera's Ringelmann", v.Checks)
		}
		if !strings.HasPrefix(v.Summary, "exceeds: RINGELMANN 4 grade ≥ 2 (camera)") {
			t.Fatalf("summary %q", v.Summary)
		}
		if ex := v.Exceedances(); len(ex) != 1 || ex[0].Pollutant != plume.PollutantRingelmann {
			t.Fatalf("exceedances %+v", ex)
		}
	})
	t.Run("SmokeAndNO", func(t *testing.T) {
		r := goodReading()
		r.Gases.NO = 1834
		v := plume.Judge(&r, &plume.Smoke{Smoky: true, Grade: 3}, p)
		if len(v.Exceedances()) != 2 || !strings.Contains(v.Summary, "NO 1834 ppm > 1500 ppm") {
			t.Fatalf("got %+v %q", v.Exceedances(), v.Summary)
		}
	})
	t.Run("SmokeOverInvalidReading", func(t *testing.T) {
		r := goodReading()
		r.Ambient.WindMS = 7.5
		r.Gases.NO = 3000
		v := plume.Judge(&r, &plume.Smoke{Smoky: true, Grade: 2}, p)
		if v.Outcome != plume.OutcomeExceed || v.ResultCode != 0 || len(v.Invalid) != 1 {
			t.Fatalf("got %s %d %+v", v.Outcome, v.ResultCode, v.Invalid)
		}
		if len(v.Checks) != 1 || v.Checks[0].Source != plume.SourceCamera {
			t.Fatalf("checks %+v, want only the camera's", v.Checks)
		}
		if !strings.Contains(v.Summary, "analyser reading not judged: wind 7.5 m/s above 5") {
			t.Fatalf("summary %q", v.Summary)
		}
	})
	for _, tc := range []struct {
		name  string
		smoke *plume.Smoke
	}{
		{"NoCamera", nil},
		{"BelowGrade", &plume.Smoke{Smoky: true, Grade: 1}},
		{"NotSmoky", &plume.Smoke{Smoky: false, Grade: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := goodReading()
			v := plume.Judge(&r, tc.smoke, p)
			if v.Outcome != plume.OutcomePass || v.ResultCode != 1 {
				t.Fatalf("got %s %d", v.Outcome, v.ResultCode)
			}
			if rg := ringelmann(v); len(rg) != 1 || rg[0].Source != "" {
				t.Fatalf("Ringelmann %+v, want the analyser's", rg)
			}
		})
	}
	t.Run("ViolationNeverPasses", func(t *testing.T) {
		for g := 0; g <= 5; g++ {
			r := goodReading()
			s := &plume.Smoke{Smoky: true, Grade: g}
			pass := plume.Pass{Reading: r, SmokeSeen: s, Verdict: plume.Judge(&r, s, p)}
			if pass.Violation(p.Smoke.MinGrade) && pass.Verdict.Outcome != plume.OutcomeExceed {
				t.Fatalf("grade %d: a violation with outcome %s", g, pass.Verdict.Outcome)
			}
		}
	})
}
