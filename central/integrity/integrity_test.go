package integrity_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/integrity"
)

const station plume.StationID = "GD-SZ-0001"

var t0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) // a Monday

// series builds hand-made station histories.
type series struct {
	rng  *rand.Rand
	recs []plume.Record
	cam  []integrity.CameraCount
	n    int
}

func newSeries() *series { return &series{rng: rand.New(rand.NewPCG(1, 2))} }

// reading returns a plausible petrol car's reading at t.
func (s *series) reading(t time.Time) plume.Reading {
	ln := func(median, sigma float64) float64 { return median * math.Exp(sigma*s.rng.NormFloat64()) }
	r2 := func(x float64, p float64) float64 { return math.Round(x*p) / p }
	return plume.Reading{
		Time: t, Lane: 1 + s.rng.IntN(2), Fuel: plume.FuelPetrol, Flag: plume.FlagNormal, Ringelmann: -1, SlopePct: 1.5,
		Gases: plume.Gases{
			CO2: r2(14.2+0.4*s.rng.NormFloat64(), 100), CO: r2(ln(0.06, 1.1), 1000),
			HC: math.Round(ln(40, 0.9)), NO: math.Round(ln(150, 1.0)),
		},
		Opacity: r2(ln(1, 0.6), 10), PlumeCO2: r2(ln(35, 0.4), 10),
		SpeedKmh: r2(50+10*s.rng.NormFloat64(), 10), AccelMS2: r2(0.35+0.35*s.rng.NormFloat64(), 100),
		Ambient: plume.Ambient{TempC: 18, HumidityPct: math.Round(60 + 8*s.rng.NormFloat64()), WindMS: r2(ln(1.8, 0.4), 10), PressureKPa: r2(101.3+0.15*s.rng.NormFloat64(), 100)},
	}
}

// pass appends a pass with reading r, optionally edited by fn.
func (s *series) pass(r plume.Reading, fn func(r *plume.Reading)) *plume.Record {
	if fn != nil {
		fn(&r)
	}
	s.n++
	if r.Time.IsZero() {
		panic("no time")
	}
	id := plume.NewPassID(station, r.Time, r.Lane)
	p := &plume.Pass{ID: id, Station: station, Reading: r, Verdict: plume.Verdict{Outcome: plume.OutcomePass}}
	s.recs = append(s.recs, plume.Record{Kind: plume.RecordPass, ID: string(id), Station: station, Time: r.Time, Pass: p})
	return &s.recs[len(s.recs)-1]
}

// traffic appends n clean passes evenly over [from, from+d).
func (s *series) traffic(from time.Time, d time.Duration, n int, fn func(r *plume.Reading)) {
	for i := range n {
		t := from.Add(time.Duration(float64(d) * (float64(i) + 0.5) / float64(n))).Truncate(time.Millisecond)
		s.pass(s.reading(t), fn)
	}
}

func (s *series) status(t time.Time) {
	s.recs = append(s.recs, plume.Record{Kind: plume.RecordStatus, ID: "status-" + t.Format("20060102T150405"), Station: station, Time: t,
		Status: &plume.DeviceStatus{Time: t, Flag: plume.FlagNormal}})
}

// day appends a day of traffic: 60 passes an hour by day, 2 at night.
func (s *series) day(start time.Time, skip func(h int) bool) {
	for h := range 24 {
		if skip != nil && skip(h) {
			continue
		}
		n := 60
		if h < 6 {
			n = 2
		}
		s.traffic(start.Add(time.Duration(h)*time.Hour), time.Hour, n, nil)
	}
}

func mustRules(tb testing.TB) *integrity.RuleSet {
	tb.Helper()
	rs, err := integrity.DefaultRules()
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

func evaluate(tb testing.TB, rule string, s *series, until time.Time) []integrity.Alert {
	tb.Helper()
	rs, err := mustRules(tb).Only(rule)
	if err != nil {
		tb.Fatal(err)
	}
	alerts, _, err := integrity.New(rs, nil).Evaluate(context.Background(), station, integrity.Series{Records: s.recs, Camera: s.cam, Until: until})
	if err != nil {
		tb.Fatal(err)
	}
	return alerts
}

// hugged returns n NO values from a log-normal tail around a 1500 ppm
// limit, with every exceedance pushed under the limit when hug is set.
func (s *series) limitTraffic(from time.Time, n int, hug bool) {
	for i := range n {
		t := from.Add(time.Duration(i) * 20 * time.Second)
		rec := s.pass(s.reading(t), func(r *plume.Reading) {
			r.Gases.NO = math.Round(700 * math.Exp(0.5*s.rng.NormFloat64()))
			if hug && r.Gases.NO >= 1500 {
				r.Gases.NO = math.Round(1350 + 149*s.rng.Float64())
			}
		})
		v := rec.Pass.Reading.Gases.NO
		rec.Pass.Verdict.Profile, rec.Pass.Verdict.ProfileVersion = "test-petrol", "1"
		rec.Pass.Verdict.Checks = []plume.Check{{Pollutant: plume.PollutantNO, Value: v, Limit: 1500, Unit: "ppm", Exceeded: v > 1500}}
	}
}

func TestRules(t *testing.T) {
	end := t0.Add(4 * 24 * time.Hour)
	for _, tc := range []struct {
		rule  string
		name  string // outcome
		build func(s *series)
		fire  bool
	}{
		{"missing-passes", "FiresOnDaytimeOutage", func(s *series) {
			for d := range 4 {
				s.day(t0.Add(time.Duration(d)*24*time.Hour), func(h int) bool { return d == 3 && h >= 10 && h < 13 })
			}
		}, true},
		{"missing-passes", "QuietOnEmptyNightHours", func(s *series) {
			for d := range 4 {
				s.day(t0.Add(time.Duration(d)*24*time.Hour), func(h int) bool { return d == 3 && h < 4 })
			}
		}, false},
		{"missing-passes", "FiresWhenSilentToTheEnd", func(s *series) {
			for d := range 3 {
				s.day(t0.Add(time.Duration(d)*24*time.Hour), nil)
			}
			s.day(t0.Add(3*24*time.Hour), func(h int) bool { return h >= 9 })
		}, true},
		{"missing-status", "FiresWhenStatusStops", func(s *series) {
			s.status(t0)
			s.traffic(t0, 3*time.Hour, 180, nil)
		}, true},
		{"missing-status", "QuietWithRegularStatus", func(s *series) {
			for h := range 6 {
				s.status(t0.Add(time.Duration(h) * 30 * time.Minute))
			}
			s.traffic(t0, 3*time.Hour, 180, nil)
		}, false},
		{"duplicate-records", "FiresOnCopiedPass", func(s *series) {
			s.traffic(t0, time.Hour, 50, nil)
			r := s.recs[10].Pass.Reading
			r.Time = t0.Add(90 * time.Minute)
			s.pass(r, nil)
		}, true},
		{"duplicate-records", "QuietOnResend", func(s *series) {
			s.traffic(t0, time.Hour, 50, nil)
			s.recs = append(s.recs, s.recs[10]) // the same record again: a resend
		}, false},
		{"constant-value", "FiresOnTwelveIdenticalNO", func(s *series) {
			s.traffic(t0, time.Hour, 20, nil)
			s.traffic(t0.Add(time.Hour), 10*time.Minute, 12, func(r *plume.Reading) { r.Gases.NO = 300 })
			s.traffic(t0.Add(2*time.Hour), time.Hour, 20, nil)
		}, true},
		{"constant-value", "QuietOnNineIdenticalNO", func(s *series) {
			s.traffic(t0, time.Hour, 20, nil)
			s.traffic(t0.Add(time.Hour), 10*time.Minute, 9, func(r *plume.Reading) { r.Gases.NO = 300 })
			s.traffic(t0.Add(2*time.Hour), time.Hour, 20, nil)
		}, false},
		{"identical-signature", "FiresOnCopiedPlume", func(s *series) {
			s.traffic(t0, time.Hour, 50, nil)
			src := s.recs[5].Pass.Reading
			s.traffic(t0.Add(time.Hour), time.Minute, 1, func(r *plume.Reading) { r.Gases, r.Opacity = src.Gases, src.Opacity })
		}, true},
		{"identical-signature", "QuietOnDistinctPlumes", func(s *series) {
			s.traffic(t0, 5*time.Hour, 3000, nil)
		}, false},
		{"replay", "FiresOnReplayedSequence", func(s *series) {
			s.traffic(t0, time.Hour, 60, nil)
			for i := 20; i < 40; i++ {
				r := s.recs[i].Pass.Reading
				r.Time = r.Time.Add(24 * time.Hour)
				s.pass(r, nil)
			}
		}, true},
		{"replay", "QuietOnFourRepeats", func(s *series) {
			s.traffic(t0, time.Hour, 60, nil)
			for i := 20; i < 24; i++ {
				r := s.recs[i].Pass.Reading
				r.Time = r.Time.Add(24 * time.Hour)
				s.pass(r, nil)
			}
		}, false},
		{"impossible-value", "FiresOnNOWithoutCO2", func(s *series) {
			s.traffic(t0, time.Hour, 50, nil)
			s.traffic(t0.Add(time.Hour), time.Minute, 1, func(r *plume.Reading) { r.Gases.CO2 = 0 })
		}, true},
		{"impossible-value", "FiresOnImpossiblePower", func(s *series) {
			s.traffic(t0, time.Minute, 1, func(r *plume.Reading) { r.SpeedKmh, r.AccelMS2 = 120, 4.5 })
		}, true},
		{"impossible-value", "QuietOnCleanTraffic", func(s *series) {
			s.traffic(t0, 5*time.Hour, 3000, nil)
		}, false},
		{"sudden-jump", "FiresWhenNODoubles", func(s *series) {
			s.traffic(t0, 30*time.Hour, 30*60, nil)
			s.traffic(t0.Add(30*time.Hour), time.Hour, 60, func(r *plume.Reading) { r.Gases.NO *= 3 })
			s.traffic(t0.Add(31*time.Hour), time.Hour, 60, nil)
		}, true},
		{"sudden-jump", "QuietOnSteadyTraffic", func(s *series) {
			s.traffic(t0, 48*time.Hour, 48*60, nil)
		}, false},
		{"ratio-anomaly", "FiresOnCOAboveCO2", func(s *series) {
			s.traffic(t0, time.Hour, 50, nil)
			s.traffic(t0.Add(time.Hour), time.Minute, 1, func(r *plume.Reading) { r.Gases.CO, r.Gases.CO2 = 9, 5 })
		}, true},
		{"ratio-anomaly", "QuietOnCleanTraffic", func(s *series) {
			s.traffic(t0, 5*time.Hour, 3000, nil)
		}, false},
		{"limit-hugging", "FiresOnHuggedNO", func(s *series) { s.limitTraffic(t0, 4000, true) }, true},
		{"limit-hugging", "QuietOnSmoothTail", func(s *series) { s.limitTraffic(t0, 4000, false) }, false},
		{"camera-counts", "FiresWhenCamerasSeeMore", func(s *series) {
			for i := range 12 {
				from := t0.Add(time.Duration(i) * 5 * time.Minute)
				s.traffic(from, 5*time.Minute, 60, nil)
				s.cam = append(s.cam, integrity.CameraCount{Station: station, From: from, To: from.Add(5 * time.Minute), Vehicles: 60 + 40*min(1, i/6)})
			}
		}, true},
		{"camera-counts", "QuietWhenCountsAgree", func(s *series) {
			for i := range 12 {
				from := t0.Add(time.Duration(i) * 5 * time.Minute)
				s.traffic(from, 5*time.Minute, 60, nil)
				s.cam = append(s.cam, integrity.CameraCount{Station: station, From: from, To: from.Add(5 * time.Minute), Vehicles: 61})
			}
		}, false},
	} {
		t.Run(tc.rule+"/"+tc.name, func(t *testing.T) {
			s := newSeries()
			tc.build(s)
			alerts := evaluate(t, tc.rule, s, end)
			if tc.fire && len(alerts) == 0 {
				t.Fatalf("%s did not fire", tc.rule)
			}
			if !tc.fire && len(alerts) > 0 {
				t.Fatalf("%s fired: %s", tc.rule, alerts[0].String())
			}
			for _, a := range alerts {
				t.Log(a.Explanation)
				switch {
				case a.Rule != tc.rule || a.RuleVersion < 1 || a.RuleSet == "":
					t.Errorf("alert does not cite its rule: %+v", a)
				case a.Explanation == "" || a.Chart == nil:
					t.Errorf("alert lacks explanation or chart")
				case tc.rule != "missing-passes" && a.RecordCount == 0:
					t.Errorf("alert lists no records")
				case !strings.HasPrefix(a.SVG(), "<svg"):
					t.Errorf("chart did not render")
				}
				for _, id := range a.Records {
					if !strings.HasPrefix(id, string(station)) {
						t.Errorf("evidence %q is not a record of the station", id)
					}
				}
			}
		})
	}
}

// TestStreamMatchesEvaluate checks that feeding a stream record by record
// gives the same alerts as a batch Evaluate.
func TestStreamMatchesEvaluate(t *testing.T) {
	s := newSeries()
	s.traffic(t0, 2*time.Hour, 200, nil)
	s.traffic(t0.Add(2*time.Hour), 10*time.Minute, 15, func(r *plume.Reading) { r.Opacity = 1.1 })
	eng := integrity.New(mustRules(t), nil)
	batch, _, err := eng.Evaluate(context.Background(), station, integrity.Series{Records: s.recs})
	if err != nil {
		t.Fatal(err)
	}
	st := eng.Stream(station)
	var streamed []integrity.Alert
	for i := range s.recs {
		streamed = append(streamed, st.Add(&s.recs[i])...)
	}
	streamed = append(streamed, st.Close(s.recs[len(s.recs)-1].Time)...)
	ids := func(as []integrity.Alert) (out []string) {
		for _, a := range as {
			out = append(out, a.ID)
		}
		slices.Sort(out)
		return out
	}
	if b, st := ids(batch), ids(streamed); !slices.Equal(b, st) {
		t.Fatalf("batch raised %v, the stream %v", b, st)
	}
	if !slices.ContainsFunc(batch, func(a integrity.Alert) bool { return a.Rule == "constant-value" }) {
		t.Errorf("no constant-value alert among %v", ids(batch))
	}
}
