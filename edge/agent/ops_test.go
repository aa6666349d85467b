package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/edge/agent"
	"github.com/plume-emissions/plume/edge/agent/agenttest"
	"github.com/plume-emissions/plume/edge/analyser"
	"github.com/plume-emissions/plume/edge/clock"
	"github.com/plume-emissions/plume/edge/config"
	"github.com/plume-emissions/plume/edge/sim"
)

// opsRig is a real central and a real edge agent with fast heartbeats.
type opsRig struct {
	central *server.Server
	agent   *agent.Agent
	cfg     agent.Config // the agent's configuration, to restart it
}

// opsStartGrace is how long the rig's central calls a station whose
// analyser has not connected "starting" rather than degraded.
const opsStartGrace = 1500 * time.Millisecond

func startOpsRig(t *testing.T, now func() time.Time, h agent.HealthOptions, tune func(*config.Loaded)) *opsRig {
	t.Helper()
	c := agenttest.StartCentralWith(t, t.TempDir(), "127.0.0.1:0", func(cfg *server.Config) {
		cfg.Ops = server.OpsConfig{HeartbeatInterval: 200 * time.Millisecond, DownAfter: 2 * time.Second, Tick: 100 * time.Millisecond, StartGrace: opsStartGrace}
	})
	dataDir := t.TempDir()
	enr := agenttest.Enroll(t, c, dataDir)
	st := agenttest.StationConfig(t, dataDir)
	st.Analyser.Protocol = analyser.ProtocolNDJSON
	st.Cameras = nil
	if tune != nil {
		tune(st)
	}
	h.Interval = 100 * time.Millisecond
	if h.NTP == nil {
		h.NTP = func(context.Context) (clock.Tracking, error) { return clock.Tracking{}, clock.ErrNoChrony }
	}
	cfg := agent.Config{
		Station: st, Enrollment: enr, Logger: agenttest.Logger(t).With("side", "edge"), Now: now,
		AnalyserAddr: "127.0.0.1:0", MetricsAddr: "-", FlushTimeout: 5 * time.Second,
		UplinkPoll: 100 * time.Millisecond, UplinkBackoffMax: 500 * time.Millisecond, Health: h,
	}
	a, err := agent.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return &opsRig{central: c, agent: a, cfg: cfg}
}

// agentDataDir is where the rig's agent keeps its spool and configuration.
func (r *opsRig) agentDataDir(t *testing.T) string { return r.cfg.Station.DataDir }

// restartAgent opens a new agent on the closed one's data directory.
func restartAgent(t *testing.T, r *opsRig) *agent.Agent {
	t.Helper()
	a, err := agent.Open(context.Background(), r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	r.agent = a
	return a
}

// stationState reads the station's state at central through the JSON API.
func stationState(t *testing.T, base string) (central.HealthState, string) {
	t.Helper()
	b, err := agenttest.Get(context.Background(), base+"/api/v1/ops/stations")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Stations []struct {
			State  central.HealthState    `json:"state"`
			Health *central.StationHealth `json:"health"`
		} `json:"stations"`
	}
	if err := json.Unmarshal(b, &v); err != nil || len(v.Stations) != 1 {
		t.Fatalf("GET /api/v1/ops/stations: %v: %s", err, b)
	}
	why := ""
	if h := v.Stations[0].Health; h != nil {
		why = strings.Join(h.Reasons, "; ")
	}
	return v.Stations[0].State, why
}

func waitState(t *testing.T, r *opsRig, state central.HealthState, reason string) {
	t.Helper()
	agenttest.WaitFor(t, 15*time.Second, string(state)+" "+reason, func() (bool, string) {
		s, why := stationState(t, r.central.URL())
		return s == state && strings.Contains(why, reason), string(s) + ": " + why
	})
}

// playFor keeps a simulated analyser connected until the returned stop is
// called.
func playFor(t *testing.T, r *opsRig, gen sim.GeneratorConfig, now func() time.Time) (stop func() *sim.Player) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	gen.Now = now
	p := sim.NewPlayer(sim.Config{
		Addr: r.agent.AnalyserAddr(), Protocol: analyser.ProtocolNDJSON, Station: agenttest.Station, Profile: agenttest.DeviceProfile(t),
		Generator: gen, Rate: 40, AckTimeout: 2 * time.Second, Now: now,
		Backoff: analyser.Backoff{Min: 20 * time.Millisecond, Max: 300 * time.Millisecond}, Logger: agenttest.Logger(t).With("side", "sim"),
	})
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(cancel)
	return func() *sim.Player { cancel(); <-done; return p }
}

func alerts(t *testing.T, r *opsRig, f central.AlertFilter) []*central.Alert {
	t.Helper()
	as, err := r.central.Ops().Alerts(context.Background(), &central.Officer{Username: "t", Role: central.RoleAuditor}, f)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func cases(t *testing.T, r *opsRig) []central.Case {
	t.Helper()
	cs, err := agenttest.Cases(context.Background(), r.central.URL())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func hasFlag(c central.Case, code string) *central.CaseFlag {
	for i := range c.Flags {
		if c.Flags[i].Code == code {
			return &c.Flags[i]
		}
	}
	return nil
}

// TestStationFaults drives a simulated station (a real edge agent and a
// real central over loopback) through each fault and checks the state
// central shows, the alerts it raised and the flags on the evidence.
func TestStationFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	t.Run("AnalyserLinkLost", func(t *testing.T) {
		r := startOpsRig(t, nil, agent.HealthOptions{}, nil)
		// A cold start is "starting" while the analyser has time to
		// connect, and raises no alert; past the grace it is degraded.
		waitState(t, r, central.HealthStarting, "waiting for the analyser")
		if n := len(alerts(t, r, central.AlertFilter{Source: central.AlertHealth})); n != 0 {
			t.Errorf("%d health alerts while starting, want none", n)
		}
		waitState(t, r, central.HealthDegraded, "analyser link lost")
		stop := playFor(t, r, sim.GeneratorConfig{Seed: 1}, nil)
		waitState(t, r, central.HealthUp, "")
		stop()
		waitState(t, r, central.HealthDegraded, "analyser link lost")
		if n := len(alerts(t, r, central.AlertFilter{Source: central.AlertHealth})); n < 3 {
			t.Errorf("%d health alerts for degraded → up → degraded, want at least 3", n)
		}
	})
	t.Run("StationDown", func(t *testing.T) {
		r := startOpsRig(t, nil, agent.HealthOptions{}, nil)
		waitState(t, r, central.HealthDegraded, "analyser link lost")
		r.agent.Close()
		waitState(t, r, central.HealthDown, "no heartbeat")
	})
	t.Run("CameraFrozen", func(t *testing.T) {
		cams := func() []plume.CameraHealth {
			return []plume.CameraHealth{{Name: "rear", Connected: true, FPS: 25, Frozen: true, Reconnects: 2}}
		}
		r := startOpsRig(t, nil, agent.HealthOptions{CameraHealth: cams}, nil)
		stop := playFor(t, r, sim.GeneratorConfig{Seed: 2}, nil)
		defer stop()
		waitState(t, r, central.HealthDegraded, "camera rear frozen")
	})
	t.Run("DiskNearlyFull", func(t *testing.T) {
		r := startOpsRig(t, nil, agent.HealthOptions{DiskFree: func() (int64, bool) { return 300 << 20, true }}, nil)
		stop := playFor(t, r, sim.GeneratorConfig{Seed: 3}, nil)
		defer stop()
		waitState(t, r, central.HealthDegraded, "disk nearly full")
	})
	t.Run("ClockOff3s", func(t *testing.T) {
		now := func() time.Time { return time.Now().Add(3 * time.Second) }
		r := startOpsRig(t, now, agent.HealthOptions{}, nil)
		waitState(t, r, central.HealthDegraded, "clock off by 3.0")
		stop := playFor(t, r, sim.GeneratorConfig{Seed: 4}, now)
		agenttest.WaitFor(t, 30*time.Second, "violation cases", func() (bool, string) {
			n := len(cases(t, r))
			return n >= 3, fmt.Sprintf("%d cases", n)
		})
		stop()
		for _, c := range cases(t, r) {
			f := hasFlag(c, central.FlagClockOffset)
			if f == nil || !f.Blocks {
				t.Fatalf("case %s captured 3 s off is not flagged as blocking: %+v", c.Number, c.Flags)
			}
			err := r.central.Ops().Enforceable(context.Background(), &c)
			if plume.ErrorCode(err) != plume.ECONFLICT || !strings.Contains(plume.ErrorMessage(err), "1.0 s") {
				t.Fatalf("case %s: Enforceable = %v, want a conflict citing the 1.0 s limit", c.Number, err)
			}
		}
	})
	t.Run("ClockGood", func(t *testing.T) {
		r := startOpsRig(t, nil, agent.HealthOptions{}, nil)
		waitState(t, r, central.HealthDegraded, "analyser link lost") // heartbeats measured the clock first
		stop := playFor(t, r, sim.GeneratorConfig{Seed: 4}, nil)
		agenttest.WaitFor(t, 30*time.Second, "violation cases", func() (bool, string) { return len(cases(t, r)) >= 3, "" })
		stop()
		for _, c := range cases(t, r) {
			if f := hasFlag(c, central.FlagClockOffset); f != nil {
				t.Fatalf("case %s flagged with a good clock: %s", c.Number, f.Message)
			}
			if hasFlag(c, central.FlagClockUnknown) != nil {
				t.Fatalf("case %s: clock unknown although heartbeats measured it", c.Number)
			}
		}
	})
	t.Run("AuditFailed", func(t *testing.T) {
		r := startOpsRig(t, nil, agent.HealthOptions{}, nil)
		stop := playFor(t, r, sim.GeneratorConfig{Seed: 5, AuditEvery: 2, FailAudits: true}, nil)
		waitState(t, r, central.HealthDegraded, "audit failed")
		agenttest.WaitFor(t, 30*time.Second, "violation cases", func() (bool, string) { return len(cases(t, r)) >= 3, "" })
		stop()
		blocked := 0
		agenttest.WaitFor(t, 15*time.Second, "a case blocked by the failed audit", func() (bool, string) {
			blocked = 0
			for _, c := range cases(t, r) {
				err := r.central.Ops().Enforceable(context.Background(), &c)
				if plume.ErrorCode(err) == plume.ECONFLICT && strings.Contains(plume.ErrorMessage(err), "FAILED") {
					blocked++
				}
			}
			return blocked > 0, ""
		})
	})
}

// TestIntegrityAlertAtCentral injects a constant NO output (恒值) into a
// simulated analyser behind a real edge agent: central's wired integrity
// engine must raise the constant-value alert, with its chart and the
// records that fired it, and an officer can escalate it (audited).
func TestIntegrityAlertAtCentral(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	r := startOpsRig(t, nil, agent.HealthOptions{}, nil)
	tamper := &sim.Tamper{Kind: sim.TamperConstant, Field: "no", Value: 320, From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour)}
	stop := playFor(t, r, sim.GeneratorConfig{Seed: 6, Tamper: tamper}, nil)
	defer stop()
	var got *central.Alert
	agenttest.WaitFor(t, 30*time.Second, "a constant-value alert at central", func() (bool, string) {
		for _, a := range alerts(t, r, central.AlertFilter{Source: central.AlertIntegrity}) {
			if strings.HasPrefix(a.Rule, "constant-value@") {
				got = a
				return true, ""
			}
		}
		return false, "no constant-value alert yet"
	})
	if got.Station != agenttest.Station || len(got.Records) < 10 || got.State != central.AlertOpen {
		t.Fatalf("alert %+v", got)
	}
	ia, err := r.central.Ops().IntegrityDetailOf(got)
	if err != nil || !strings.Contains(ia.SVG(), "<svg") {
		t.Fatalf("alert has no chart: %v", err)
	}
	officer := &central.Officer{Username: "inspector", Role: central.RoleSupervisor}
	a, err := r.central.Ops().Act(context.Background(), officer, "127.0.0.1", got.ID, "escalate", "constant NO over 10 vehicles")
	if err != nil || a.State != central.AlertEscalated {
		t.Fatalf("escalate: %v %+v", err, a)
	}
	evs, _, err := r.central.Store().Audit(context.Background(), central.AuditFilter{Target: got.ID})
	if err != nil || len(evs) != 1 || evs[0].Action != "alert.escalate" {
		t.Fatalf("audit log for the alert: %v %+v", err, evs)
	}
}
