package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
)

// TestBacktestFlagsConstantRun backtests one rule over a small exported
// history in which NO froze at 300 ppm.
func TestBacktestFlagsConstantRun(t *testing.T) {
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	t0 := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	for i := range 40 {
		r := plume.Reading{Time: t0.Add(time.Duration(i) * 30 * time.Second), Lane: 1, Fuel: plume.FuelPetrol, Flag: plume.FlagNormal,
			Gases: plume.Gases{CO2: 14 + float64(i%7)/10, CO: 0.05 + float64(i)/1000, HC: float64(30 + i), NO: float64(100 + 13*i)}, Opacity: 1, Ringelmann: -1, SpeedKmh: 40 + float64(i)}
		if i >= 20 {
			r.Gases.NO = 300
		}
		id := plume.NewPassID("GD-SZ-0001", r.Time, 1)
		enc.Encode(plume.Record{Kind: plume.RecordPass, ID: string(id), Station: "GD-SZ-0001", Time: r.Time,
			Pass: &plume.Pass{ID: id, Station: "GD-SZ-0001", Reading: r}})
	}
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"-rule", "constant-value", "-svg", t.TempDir(), "-"}, &in, &out, &errb, time.Now); err != nil {
		t.Fatal(err, errb.String())
	}
	if !strings.Contains(out.String(), "constant-value@v1") || !strings.Contains(out.String(), "NO stayed at 300") {
		t.Fatalf("backtest did not flag the frozen NO:\n%s", out.String())
	}
	if !strings.Contains(errb.String(), "done: 40 records") {
		t.Errorf("no progress summary on stderr: %s", errb.String())
	}
}

func TestBadRuleIsAnError(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"-rule", "nope", "-"}, strings.NewReader(""), &out, &errb, time.Now); err == nil {
		t.Fatal("unknown rule accepted")
	}
}
