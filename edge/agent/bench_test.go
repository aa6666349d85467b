package agent_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/plume-emissions/plume/edge/agent/agenttest"
	"github.com/plume-emissions/plume/edge/analyser"
	"github.com/plume-emissions/plume/edge/sim"
)

// BenchmarkPassToCase measures end-to-end latency over loopback with real
// parts: from the analyser's measurement to the pass record at central, and
// from capture at the edge to the case opened at central. Traffic is paced
// at 100 passes/s, so the figures are latency, not queueing. Run it with
// -benchtime=1x.
func BenchmarkPassToCase(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := max(b.N, 400)
	dir := b.TempDir()
	c := agenttest.StartCentral(b, filepath.Join(dir, "central"), "127.0.0.1:0")
	enr := agenttest.Enroll(b, c, filepath.Join(dir, "edge"))
	st := agenttest.StationConfig(b, filepath.Join(dir, "edge"))
	a := openAgentTB(b, st, enr)
	p := sim.NewPlayer(sim.Config{
		Addr: a.AnalyserAddr(), Protocol: analyser.ProtocolHJ212, Station: agenttest.Station,
		Profile: agenttest.DeviceProfile(b), Generator: sim.GeneratorConfig{Seed: 5}, Count: n, Rate: 100,
	})
	b.ResetTimer()
	if err := p.Run(ctx); err != nil {
		b.Fatal(err)
	}
	agenttest.WaitFor(b, time.Minute, "delivery", func() (bool, string) {
		s := a.Spool().Stats()
		return s.QueuedEvidence == 0 && s.QueuedRecords == 0, ""
	})
	if err := c.WaitIdle(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	passes, err := agenttest.Passes(ctx, c.URL())
	if err != nil {
		b.Fatal(err)
	}
	cases, err := agenttest.Cases(ctx, c.URL())
	if err != nil {
		b.Fatal(err)
	}
	var toRecord, toCase []float64
	for _, r := range passes {
		toRecord = append(toRecord, float64(r.ReceivedAt.Sub(r.Time))/1e6)
	}
	for _, k := range cases {
		toCase = append(toCase, float64(k.CreatedAt.Sub(k.CapturedAt))/1e6)
	}
	b.ReportMetric(pct(toRecord, 50), "p50-pass-to-central-ms")
	b.ReportMetric(pct(toRecord, 95), "p95-pass-to-central-ms")
	b.ReportMetric(pct(toCase, 50), "p50-capture-to-case-ms")
	b.ReportMetric(pct(toCase, 95), "p95-capture-to-case-ms")
	b.ReportMetric(float64(len(cases)), "cases")
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[min(len(xs)-1, int(float64(len(xs))*p/100))]
}
