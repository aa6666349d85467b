package profile_test

import (
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/profile"
	firmwareconfig "github.com/plume-emissions/plume/firmware-config"
)

func TestEmbedded(t *testing.T) {
	s, err := profile.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	p := s.Lookup("hj845-2017-diesel@2026.11-1")
	if p == nil {
		t.Fatal("the shipped diesel profile is not found by its reference")
	}
	if p.Repeat.Count != 2 || p.Repeat.Window != 4380*time.Hour {
		t.Fatalf("repeat rule %+v, want 2 within 4380h", p.Repeat)
	}
	if r, ok := s.Repeat("nope@1"); ok || r != profile.DefaultRepeat {
		t.Fatalf("unknown profile: %+v %v", r, ok)
	}
}

func TestDecodeRejectsUnknownFields(t *testing.T) {
	if _, err := firmwareconfig.DecodeProfile([]byte("name: x\nversion: '1'\nbogus: 1\n")); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestRejudge(t *testing.T) {
	set, err := profile.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	diesel := set.Lookup("hj845-2017-diesel@2026.11-1")
	if diesel == nil {
		t.Fatal("no shipped diesel profile")
	}
	pass := func(no float64, prof *plume.LimitProfile) *plume.Pass {
		p := &plume.Pass{Reading: plume.Reading{Fuel: plume.FuelDiesel, Gases: plume.Gases{CO2: 12.5, CO: 0.02, HC: 40, NO: no},
			PlumeCO2: 25, Opacity: 8, Ringelmann: -1, SpeedKmh: 40, AccelMS2: 0.3, Flag: plume.FlagNormal,
			Ambient: plume.Ambient{TempC: 18, HumidityPct: 55, WindMS: 1.2, PressureKPa: 101.3}}}
		p.Verdict = plume.Assess(&p.Reading, prof)
		return p
	}
	// The station's copy of the profile, tampered: NO limit 500 ppm.
	lowered := *diesel
	lowered.Limits = append([]plume.Limit(nil), diesel.Limits...)
	lowered.Limits[0].Max = 500
	unknown := lowered
	unknown.Version = "9999-evil"
	for _, tc := range []struct {
		name string
		p    *plume.Pass
		ok   bool
	}{
		{"OK", pass(1834, diesel), true},
		{"OKWithinLimits", pass(900, diesel), true}, // claims no exceedance: not checked
		{"ErrLoweredLimit", pass(900, &lowered), false},
		{"ErrLoweredLimitStillOver", pass(1834, &lowered), false},
		{"ErrUnknownProfile", pass(1834, &unknown), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if why := set.Rejudge(tc.p); (why == "") != tc.ok {
				t.Fatalf("Rejudge = %q (verdict %s)", why, tc.p.Verdict.Summary)
			}
		})
	}
}

// TestRejudgeCameraSmoke: a case made by camera smoke (plume.Judge) is
// confirmed, whatever the analyser's reading says.
func TestRejudgeCameraSmoke(t *testing.T) {
	set, err := profile.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	diesel := set.Lookup("hj845-2017-diesel@2026.11-1")
	p := &plume.Pass{Reading: plume.Reading{Fuel: plume.FuelDiesel, Gases: plume.Gases{CO2: 12.5, NO: 900}, PlumeCO2: 2, Ringelmann: -1,
		SpeedKmh: 40, AccelMS2: 0.3, Flag: plume.FlagNormal, Ambient: plume.Ambient{TempC: 18, WindMS: 1}},
		SmokeSeen: &plume.Smoke{Smoky: true, Grade: 3, Confidence: 0.9}}
	p.Verdict = plume.Judge(&p.Reading, p.SmokeSeen, diesel)
	if p.Verdict.Outcome != plume.OutcomeExceed {
		t.Fatalf("verdict %s", p.Verdict.Summary)
	}
	if why := set.Rejudge(p); why != "" {
		t.Fatalf("camera smoke case not confirmed: %s", why)
	}
	// The station claims smoke its own verdict did not judge: refused.
	p.Verdict.Checks[0].Value, p.Verdict.Checks[0].Limit = 3, 1
	if why := set.Rejudge(p); why == "" {
		t.Fatal("a lowered smoke limit was confirmed")
	}
}
