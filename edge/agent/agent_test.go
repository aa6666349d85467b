package agent_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/agent"
	"github.com/plume-emissions/plume/edge/agent/agenttest"
	"github.com/plume-emissions/plume/edge/analyser"
	"github.com/plume-emissions/plume/edge/config"
	"github.com/plume-emissions/plume/edge/sim"
)

// openAgent starts a real edge agent for the enrolled demo station.
func openAgent(t *testing.T, dataDir string, enr *plume.Enrollment, protocol string) *agent.Agent {
	t.Helper()
	st := agenttest.StationConfig(t, dataDir)
	st.Analyser.Protocol = protocol
	return openAgentTB(t, st, enr)
}

func openAgentTB(tb testing.TB, st *config.Loaded, enr *plume.Enrollment) *agent.Agent {
	tb.Helper()
	a, err := agent.Open(context.Background(), agent.Config{
		Station: st, Enrollment: enr, Logger: agenttest.Logger(tb).With("side", "edge"),
		AnalyserAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", FlushTimeout: 5 * time.Second,
		UplinkPoll: 100 * time.Millisecond, UplinkBackoffMax: 500 * time.Millisecond,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	return a
}

func play(t *testing.T, ctx context.Context, addr string, seed uint64, count int, protocol string) *sim.Player {
	t.Helper()
	p := sim.NewPlayer(sim.Config{
		Addr: addr, Protocol: protocol, Station: agenttest.Station, Profile: agenttest.DeviceProfile(t),
		Generator: sim.GeneratorConfig{Seed: seed}, Count: count, Malformed: 3,
		AckTimeout: 2 * time.Second, Backoff: analyser.Backoff{Min: 20 * time.Millisecond, Max: 300 * time.Millisecond},
		Logger: agenttest.Logger(t).With("side", "sim"),
	})
	if err := p.Run(ctx); err != nil {
		t.Fatalf("simulator: %v", err)
	}
	return p
}

// checkCentral asserts the promise of the backbone: every pass the analyser
// was acknowledged for is at central exactly once, and every violation
// candidate among them is exactly one case with a package that verifies.
func checkCentral(t *testing.T, ctx context.Context, baseURL string, acked []plume.PassID, centralKey ed25519.PublicKey, verifyPackages int) (cases int) {
	t.Helper()
	passes, err := agenttest.Passes(ctx, baseURL)
	if err != nil {
		t.Fatal(err)
	}
	atCentral := map[plume.PassID]plume.Outcome{}
	for _, p := range passes {
		if _, dup := atCentral[p.ID]; dup {
			t.Errorf("pass %s stored twice at central", p.ID)
		}
		atCentral[p.ID] = p.Outcome
	}
	want := map[plume.PassID]bool{}
	for _, id := range acked {
		want[id] = true
		if _, ok := atCentral[id]; !ok {
			t.Errorf("acknowledged pass %s never reached central", id)
		}
	}
	for id := range atCentral {
		if !want[id] {
			t.Errorf("central holds pass %s the analyser was never acknowledged for", id)
		}
	}
	all, err := agenttest.Cases(ctx, baseURL)
	if err != nil {
		t.Fatal(err)
	}
	byPass := map[plume.PassID]int{}
	for _, c := range all {
		byPass[c.PassID]++
	}
	violations := 0
	for id, outcome := range atCentral {
		if outcome != plume.OutcomeExceed {
			if byPass[id] != 0 {
				t.Errorf("pass %s (%s) has a case", id, outcome)
			}
			continue
		}
		violations++
		if byPass[id] != 1 {
			t.Errorf("violation %s has %d cases, want exactly 1", id, byPass[id])
		}
	}
	if len(all) != violations {
		t.Errorf("%d cases for %d violations", len(all), violations)
	}
	if violations == 0 {
		t.Fatal("the run produced no violations; the test proves nothing")
	}
	dir := t.TempDir()
	for i, c := range all {
		if i >= verifyPackages {
			break
		}
		_, rep, err := agenttest.DownloadPackage(ctx, baseURL, c, dir, centralKey)
		if err != nil {
			t.Fatalf("case %s: %v", c.Number, err)
		}
		if !rep.OK() {
			t.Fatalf("case %s: package does not verify: %+v", c.Number, rep)
		}
	}
	return len(all)
}

func waitDrained(t *testing.T, a *agent.Agent, timeout time.Duration) {
	t.Helper()
	agenttest.WaitFor(t, timeout, "the spool to drain", func() (bool, string) {
		s := a.Spool().Stats()
		return s.QueuedEvidence == 0 && s.QueuedRecords == 0, fmt.Sprintf("%+v", s)
	})
}

func TestEndToEnd(t *testing.T) {
	for _, protocol := range []string{analyser.ProtocolHJ212, analyser.ProtocolNDJSON} {
		t.Run(protocol, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			dir := t.TempDir()
			c := agenttest.StartCentral(t, filepath.Join(dir, "central"), "127.0.0.1:0")
			enr := agenttest.Enroll(t, c, filepath.Join(dir, "edge"))
			a := openAgent(t, filepath.Join(dir, "edge"), enr, protocol)

			p := play(t, ctx, a.AnalyserAddr(), 7, 300, protocol)
			waitDrained(t, a, 30*time.Second)
			if err := c.WaitIdle(ctx); err != nil {
				t.Fatal(err)
			}
			st := p.Stats()
			n := checkCentral(t, ctx, c.URL(), st.AckedPasses, c.PublicKey(), 5)

			as := a.Stats()
			if got := int(as.Violations); got != n {
				t.Errorf("edge captured %d violations, central has %d cases", got, n)
			}
			if as.Analyser.MalformedTotal() != 3 {
				t.Errorf("edge quarantined %d malformed frames, the simulator injected 3", as.Analyser.MalformedTotal())
			}
			if as.Status == 0 {
				t.Error("no device status records captured")
			}
			tot, err := a.Spool().Totals(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tot.EvidenceDelivered != int64(n) || tot.DeadLettered != 0 {
				t.Errorf("spool totals %+v disagree with %d cases", tot, n)
			}
			t.Logf("%d passes acknowledged, %d cases, %d status, %d malformed quarantined",
				len(st.AckedPasses), n, as.Status, as.Analyser.MalformedTotal())
		})
	}
}

// Central goes away in the middle of a run: the edge keeps acknowledging
// the analyser from its spool, and the backlog drains once central is back.
func TestCentralDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	centralDir, addr := filepath.Join(dir, "central"), agenttest.FreeAddr(t)
	c := agenttest.StartCentral(t, centralDir, addr)
	key := c.PublicKey()
	enr := agenttest.Enroll(t, c, filepath.Join(dir, "edge"))
	a := openAgent(t, filepath.Join(dir, "edge"), enr, analyser.ProtocolHJ212)

	first := play(t, ctx, a.AnalyserAddr(), 11, 60, analyser.ProtocolHJ212)
	waitDrained(t, a, 30*time.Second)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	second := play(t, ctx, a.AnalyserAddr(), 12, 200, analyser.ProtocolHJ212)
	if s := a.Spool().Stats(); s.QueuedRecords == 0 {
		t.Fatalf("nothing queued while central was down: %+v", s)
	}
	c = agenttest.StartCentral(t, centralDir, addr)
	waitDrained(t, a, 60*time.Second)
	if err := c.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	acked := append(first.Stats().AckedPasses, second.Stats().AckedPasses...)
	n := checkCentral(t, ctx, c.URL(), acked, key, 2)
	if s := a.Spool().Stats(); s.DeadLetters != 0 {
		t.Fatalf("dead letters after central came back: %+v", s)
	}
	t.Logf("%d passes, %d cases after a central outage", len(acked), n)
}
