package sim_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/integrity"
	"github.com/plume-emissions/plume/edge/config"
	"github.com/plume-emissions/plume/edge/sim"
)

// These tests drive central's integrity rules (central/integrity) with
// simulated station histories: clean traffic must raise (almost) nothing,
// and each kind of tampering must be caught by the rule made for it. They
// live on the edge side because central never imports edge code.

func profiles(tb testing.TB) plume.ProfileSet {
	tb.Helper()
	l, err := config.LoadEmbedded(config.Embedded)
	if err != nil {
		tb.Fatal(err)
	}
	return l.Profiles
}

func rules(tb testing.TB) *integrity.RuleSet {
	tb.Helper()
	rs, err := integrity.DefaultRules()
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

// runHistory evaluates a simulated history as it is generated, the way
// central streams a station's records.
func runHistory(tb testing.TB, cfg sim.HistoryConfig) ([]integrity.Alert, []integrity.RuleStats, int) {
	tb.Helper()
	eng := integrity.New(rules(tb), nil)
	st := eng.Stream(cfg.Station)
	var alerts []integrity.Alert
	passes := 0
	var last time.Time
	err := sim.History(context.Background(), cfg, func(rec plume.Record) error {
		if rec.Kind == plume.RecordPass {
			passes++
		}
		last = rec.Time
		alerts = append(alerts, st.Add(&rec)...)
		return nil
	}, func(c sim.CameraCount) error {
		alerts = append(alerts, st.AddCamera(integrity.CameraCount{Station: cfg.Station, From: c.From, To: c.To, Vehicles: c.Vehicles})...)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	alerts = append(alerts, st.Close(last)...)
	return alerts, st.Stats(), passes
}

var start = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) // a Monday

func byRule(alerts []integrity.Alert) map[string][]integrity.Alert {
	m := map[string][]integrity.Alert{}
	for _, a := range alerts {
		m[a.Rule] = append(m[a.Rule], a)
	}
	return m
}

// TestCleanMonthFalseAlarms runs one simulated month of clean traffic at
// one station and reports each rule's false-alarm rate. The rules must stay
// nearly silent: at most two alerts per rule in the month. (The generator
// draws CO independently of CO2, so a car with a CO tail value and a high
// CO2 now and then breaks the carbon balance that impossible-value checks:
// about two a month, an artefact of the simulator, not of the rule.)
func TestCleanMonthFalseAlarms(t *testing.T) {
	if testing.Short() {
		t.Skip("one simulated month; skipped with -short")
	}
	t0 := time.Now()
	alerts, stats, passes := runHistory(t, sim.HistoryConfig{
		Station:   "GD-SZ-0001",
		Generator: sim.GeneratorConfig{Seed: 7, Start: start, MeanHeadway: 10 * time.Second},
		Profiles:  profiles(t),
		Duration:  30 * 24 * time.Hour,
	})
	elapsed := time.Since(t0)
	var b strings.Builder
	fmt.Fprintf(&b, "one simulated month, one station: %d passes, evaluated in %s (%.0f passes/s incl. generation)\n", passes, elapsed.Round(time.Millisecond), float64(passes)/elapsed.Seconds())
	fmt.Fprintf(&b, "| rule | version | unit | checks | alerts | false-alarm rate |\n|---|---|---|---|---|---|\n")
	for _, s := range stats {
		fmt.Fprintf(&b, "| %s | v%d | %s | %d | %d | %.2g per %s |\n", s.Rule, s.Version, s.Unit, s.Checks, s.Alerts, float64(s.Alerts)/max(1, float64(s.Checks)), s.Unit)
	}
	t.Log("\n" + b.String())
	if out := os.Getenv("PLUME_FA_REPORT"); out != "" {
		os.WriteFile(out, []byte(b.String()), 0o644)
	}
	if passes < 100000 {
		t.Errorf("month has %d passes; want a realistic 100k+", passes)
	}
	for rule, as := range byRule(alerts) {
		if len(as) > 2 {
			t.Errorf("rule %s raised %d false alarms in a clean month; first: %s", rule, len(as), as[0].String())
		}
	}
}

// TestInjectedTamperingIsCaught injects each kind of tampering into a week
// of otherwise clean traffic and checks that the rule made for it fires,
// inside the tampered window.
func TestInjectedTamperingIsCaught(t *testing.T) {
	from := start.Add(4*24*time.Hour + 8*time.Hour) // Friday 08:00
	for _, tc := range []struct {
		name  string
		tamp  sim.Tamper
		rules []string // each must fire
	}{
		{"ConstantNO", sim.Tamper{Kind: sim.TamperConstant, Field: "no", Value: 320, To: from.Add(3 * time.Hour)}, []string{"constant-value"}},
		{"ConstantOpacity", sim.Tamper{Kind: sim.TamperConstant, Field: "opacity", Value: 2.5, To: from.Add(30 * time.Minute)}, []string{"constant-value"}},
		{"LimitHugNO", sim.Tamper{Kind: sim.TamperLimitHug, Field: "no", Value: 1500, To: from.Add(48 * time.Hour)}, []string{"limit-hugging"}},
		{"LimitHugOpacity", sim.Tamper{Kind: sim.TamperLimitHug, Field: "opacity", Value: 30, To: from.Add(48 * time.Hour)}, []string{"limit-hugging"}},
		{"Replay", sim.Tamper{Kind: sim.TamperReplay, Lag: 24 * time.Hour, To: from.Add(2 * time.Hour)}, []string{"replay"}},
		{"ReplayWeekOld", sim.Tamper{Kind: sim.TamperReplay, Lag: 3 * 24 * time.Hour, To: from.Add(20 * time.Minute)}, []string{"replay"}},
		{"Dropout", sim.Tamper{Kind: sim.TamperDropout, To: from.Add(3 * time.Hour)}, []string{"missing-passes", "camera-counts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tamp := tc.tamp
			tamp.From = from
			alerts, _, _ := runHistory(t, sim.HistoryConfig{
				Station:   "GD-SZ-0002",
				Generator: sim.GeneratorConfig{Seed: 11, Start: start, MeanHeadway: 10 * time.Second, Tamper: &tamp},
				Profiles:  profiles(t),
				Duration:  7 * 24 * time.Hour,
			})
			if tamp.Tampered == 0 {
				t.Fatal("nothing was tampered with")
			}
			got := byRule(alerts)
			for _, r := range tc.rules {
				caught := false
				for _, a := range got[r] {
					if !a.To.Before(tamp.From) && a.From.Before(tamp.To.Add(24*time.Hour)) {
						caught = true
						t.Logf("caught by %s@v%d: %s", a.Rule, a.RuleVersion, a.Explanation)
						if a.Chart == nil || !strings.Contains(a.SVG(), "<svg") {
							t.Errorf("%s alert has no chart", r)
						}
					}
				}
				if !caught {
					t.Errorf("%d passes tampered (%s) but rule %s did not fire in the window; alerts: %v", tamp.Tampered, tamp.Kind, r, summary(alerts))
				}
			}
			// Outside the tampered window the station is clean.
			for _, a := range alerts {
				if a.To.Before(tamp.From) {
					t.Errorf("alert before any tampering: %s", a.String())
				}
			}
		})
	}
}

func summary(alerts []integrity.Alert) string {
	var s []string
	for _, a := range alerts {
		s = append(s, a.Rule+" "+a.From.Format("01-02 15:04"))
	}
	return strings.Join(s, ", ")
}
