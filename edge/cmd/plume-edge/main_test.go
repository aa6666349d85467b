package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/edge/agent/agenttest"
	"github.com/plume-emissions/plume/edge/analyser"
	"github.com/plume-emissions/plume/edge/sim"
	"github.com/plume-emissions/plume/edge/spool"
)

// The test binary doubles as plume-edge: with PLUME_EDGE_ARGS set it runs
// the real program, so fault tests can kill -9 a real process without a
// separate build.
func TestMain(m *testing.M) {
	if args := os.Getenv("PLUME_EDGE_ARGS"); args != "" {
		if err := runMain(strings.Fields(args)); err != nil {
			fmt.Fprintln(os.Stderr, "plume-edge:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runMain(args []string) error {
	ctx, stop := signalContext()
	defer stop()
	return run(ctx, args, os.Stdout, os.Stderr)
}

func TestCheckConfig(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"check-config", "../../../firmware-config/stations/demo.yaml"}, &out, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "ok   ") || !strings.Contains(out.String(), "HJ 845-2017") {
		t.Fatalf("unexpected output:\n%s", out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("station: x\nunknown_field: 1\n"), 0o644)
	out.Reset()
	if err := run(context.Background(), []string{"check-config", bad}, &out, &out); err == nil || !strings.Contains(out.String(), "FAIL") {
		t.Fatalf("bad file accepted: %v\n%s", err, out.String())
	}
}

// writeStation writes a station file for the test station, pointing at the
// repository's profiles by absolute path.
func writeStation(t *testing.T, dir, dataDir, analyserAddr string) string {
	t.Helper()
	fc, err := filepath.Abs("../../../firmware-config")
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`station: %s
enrollment: enrollment.json
data_dir: %s
analyser: {protocol: hj212, transport: listen, addr: "%s", device_profile: %s/devices/generic-rsd.yaml}
profiles:
  diesel: %s/profiles/hj845-2017-diesel.yaml
  petrol: %s/profiles/gb18285-2018-petrol.yaml
uplink: {batch_size: 100, poll_interval: 200ms}
`, agenttest.Station, dataDir, analyserAddr, fc, fc, fc)
	p := filepath.Join(dir, "station.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type edgeProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// drainAndCheck waits until central holds the passes and has no job
// pending, stops the edge with SIGTERM, waits for central to go idle, and
// checks that every acknowledged pass is at central exactly once. It
// returns the acknowledged IDs and the number of cases.
func drainAndCheck(t *testing.T, ctx context.Context, c *server.Server, edge *edgeProc, passes int, acked map[plume.PassID]bool) ([]plume.PassID, int) {
	t.Helper()
	agenttest.WaitFor(t, 90*time.Second, "every acknowledged pass at central", func() (bool, string) {
		st, err := c.Stats(ctx)
		return err == nil && st.Records >= passes && st.PendingJobs == 0, fmt.Sprintf("%+v %v", st, err)
	})
	edge.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-edge.done:
	case <-time.After(30 * time.Second):
		t.Fatal("edge did not stop on SIGTERM")
	}
	if err := c.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	ids := make([]plume.PassID, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	return ids, checkCentralOnce(t, ctx, c.URL(), ids)
}

func startEdge(t *testing.T, configPath string, log *os.File) *edgeProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PLUME_EDGE_ARGS=run -config "+configPath+" -log-level warn")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &edgeProc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	return p
}

// kill -9 of the edge at random moments during a run of 500 passes: central
// ends with every pass and every violation exactly once, and the edge's
// lifetime counters agree with central.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	edgeDir := filepath.Join(dir, "edge")
	c := agenttest.StartCentral(t, filepath.Join(dir, "central"), "127.0.0.1:0")
	agenttest.Enroll(t, c, edgeDir)
	analyserAddr := agenttest.FreeAddr(t)
	cfgPath := writeStation(t, dir, edgeDir, analyserAddr)
	log, err := os.Create(filepath.Join(dir, "edge.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()

	const passes = 500
	player := sim.NewPlayer(sim.Config{
		Addr: analyserAddr, Protocol: analyser.ProtocolHJ212, Station: agenttest.Station, Profile: agenttest.DeviceProfile(t),
		Generator: sim.GeneratorConfig{Seed: 99}, Count: passes, Rate: 150,
		AckTimeout: time.Second, Backoff: analyser.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		Logger: agenttest.Logger(t).With("side", "sim"),
	})
	var (
		wg       sync.WaitGroup
		playErr  error
		simDone  = make(chan struct{})
		kills    int
		rng      = rand.New(rand.NewPCG(1, 2))
		edge     = startEdge(t, cfgPath, log)
		finished bool
	)
	wg.Add(1)
	go func() { defer wg.Done(); defer close(simDone); playErr = player.Run(ctx) }()
	for !finished {
		select {
		case <-simDone:
			finished = true
			continue
		case <-time.After(time.Duration(150+rng.IntN(600)) * time.Millisecond):
		}
		edge.cmd.Process.Signal(syscall.SIGKILL)
		<-edge.done
		kills++
		edge = startEdge(t, cfgPath, log)
	}
	wg.Wait()
	if playErr != nil {
		t.Fatalf("simulator: %v", playErr)
	}
	acked := player.Stats().AckedPasses
	unique := map[plume.PassID]bool{}
	for _, id := range acked {
		unique[id] = true
	}
	if len(unique) != passes {
		t.Fatalf("simulator got %d distinct acknowledged passes, want %d", len(unique), passes)
	}

	// Let the last edge process deliver its backlog, then stop it cleanly.
	_, cases := drainAndCheck(t, ctx, c, edge, passes, unique)

	sp, err := spool.Open(ctx, filepath.Join(edgeDir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	st := sp.Stats()
	tot, err := sp.Totals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.QueuedEvidence != 0 || st.QueuedRecords != 0 || st.DeadLetters != 0 {
		t.Errorf("edge spool not drained: %+v", st)
	}
	if !st.Rebuilt && (tot.EvidenceQueued != int64(cases) || tot.EvidenceDelivered != int64(cases)) {
		t.Errorf("edge totals %+v disagree with %d cases at central", tot, cases)
	}
	cst, _ := c.Stats(ctx)
	if !st.Rebuilt && tot.RecordsDelivered != int64(cst.Records) {
		t.Errorf("edge delivered %d records, central holds %d", tot.RecordsDelivered, cst.Records)
	}
	t.Logf("%d kills; %d passes (%d resends by the analyser); %d cases; edge totals %+v; central %+v",
		kills, passes, player.Stats().Resends, cases, tot, cst)
	if kills < 3 {
		t.Errorf("only %d kills; the run was too short to prove anything", kills)
	}
}

// checkCentralOnce checks every acknowledged pass is at central once and
// every violation is exactly one case; it returns the number of cases.
func checkCentralOnce(t *testing.T, ctx context.Context, baseURL string, acked []plume.PassID) int {
	t.Helper()
	passes, err := agenttest.Passes(ctx, baseURL)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[plume.PassID]plume.Outcome{}
	for _, p := range passes {
		if _, dup := seen[p.ID]; dup {
			t.Errorf("pass %s twice at central", p.ID)
		}
		seen[p.ID] = p.Outcome
	}
	for _, id := range acked {
		if _, ok := seen[id]; !ok {
			t.Errorf("acknowledged pass %s lost", id)
		}
	}
	if len(seen) != len(acked) {
		t.Errorf("central holds %d passes, %d were acknowledged", len(seen), len(acked))
	}
	cases, err := agenttest.Cases(ctx, baseURL)
	if err != nil {
		t.Fatal(err)
	}
	perPass := map[plume.PassID]int{}
	for _, c := range cases {
		perPass[c.PassID]++
	}
	violations := 0
	for id, o := range seen {
		if o == plume.OutcomeExceed {
			violations++
			if perPass[id] != 1 {
				t.Errorf("violation %s has %d cases", id, perPass[id])
			}
		}
	}
	if violations == 0 || len(cases) != violations {
		t.Errorf("%d cases for %d violations", len(cases), violations)
	}
	return len(cases)
}

// Under systemd (Type=notify, WatchdogSec) the agent says READY=1 once it
// runs, feeds the watchdog while healthy, and says STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	edgeDir := filepath.Join(dir, "edge")
	c := agenttest.StartCentral(t, filepath.Join(dir, "central"), "127.0.0.1:0")
	agenttest.Enroll(t, c, edgeDir)
	cfgPath := writeStation(t, dir, edgeDir, agenttest.FreeAddr(t))
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	log, _ := os.Create(filepath.Join(dir, "edge.log"))
	defer log.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PLUME_EDGE_ARGS=run -config "+cfgPath+" -log-level warn",
		"NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	want := func(state string) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			select {
			case m := <-msgs:
				if strings.Contains(m, state) {
					return
				}
			case <-deadline:
				t.Fatalf("no %s from the edge", state)
			}
		}
	}
	want("READY=1")
	want("WATCHDOG=1")
	want("WATCHDOG=1")
	cmd.Process.Signal(syscall.SIGTERM)
	want("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("edge exited with %v", err)
	}
}
