package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/edge/agent"
	"github.com/plume-emissions/plume/edge/agent/agenttest"
	"github.com/plume-emissions/plume/edge/config"
	"github.com/plume-emissions/plume/edge/sim"
	firmwareconfig "github.com/plume-emissions/plume/firmware-config"
)

// latestHealth reads the station's latest heartbeat as central holds it,
// through the JSON API.
func latestHealth(t *testing.T, base string) *central.StationHealth {
	t.Helper()
	b, err := agenttest.Get(context.Background(), base+"/api/v1/ops/stations/"+string(agenttest.Station)+"/health?limit=1")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		History []*central.StationHealth `json:"history"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("health history: %v: %s", err, b)
	}
	if len(v.History) == 0 {
		return nil
	}
	return v.History[0]
}

// remoteProfile is a remote configuration that replaces the diesel
// profile with the shipped one at another version and a tighter NO limit.
func remoteProfile(t *testing.T) []byte {
	t.Helper()
	b, err := firmwareconfig.FS.ReadFile("profiles/hj845-2017-diesel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := strings.Replace(string(b), `version: "2026.11-1"`, `version: "2026.12-remote"`, 1)
	p = strings.Replace(p, "{pollutant: no, max: 1500,", "{pollutant: no, max: 1200,", 1)
	if !strings.Contains(p, "2026.12-remote") || !strings.Contains(p, "max: 1200") {
		t.Fatal("the shipped diesel profile changed; update remoteProfile")
	}
	var out strings.Builder
	out.WriteString("profiles:\n  diesel:\n")
	for _, line := range strings.Split(strings.TrimRight(p, "\n"), "\n") {
		out.WriteString("    " + line + "\n")
	}
	return []byte(out.String())
}

// TestRemoteConfiguration: central holds a station's desired
// configuration; the real edge agent learns its hash from the heartbeat
// reply, fetches it (signed GET), validates it, stores it atomically,
// captures with it and reports its hash. A bad configuration is refused on
// the edge with a clear reason that central shows (station degraded, a
// config alert), and the last good one keeps running, across a restart
// too.
func TestRemoteConfiguration(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	ctx := context.Background()
	r := startOpsRig(t, nil, agent.HealthOptions{}, nil)
	dataDir := r.agentDataDir(t)
	good := remoteProfile(t)
	dc, err := r.central.Ops().SetDesiredConfig(ctx, "admin", agenttest.Station, good)
	if err != nil {
		t.Fatal(err)
	}
	if dc.Hash != config.HashRemote(good) {
		t.Fatalf("central's hash %s is not the edge's %s for the same bytes", dc.Hash, config.HashRemote(good))
	}
	agenttest.WaitFor(t, 15*time.Second, "the station running the desired configuration", func() (bool, string) {
		h := latestHealth(t, r.central.URL())
		if h == nil {
			return false, "no heartbeat"
		}
		return h.Heartbeat.ConfigHash == dc.Hash, h.Heartbeat.ConfigHash + " " + h.Heartbeat.ConfigError
	})
	if b, err := os.ReadFile(filepath.Join(dataDir, config.RemoteFile)); err != nil || string(b) != string(good) {
		t.Fatalf("the applied configuration is not stored: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dataDir, ".remote-config-*")); len(left) > 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
	// Passes are now judged with the delivered profile.
	stop := playFor(t, r, sim.GeneratorConfig{Seed: 11}, nil)
	agenttest.WaitFor(t, 30*time.Second, "a diesel pass judged with the delivered profile", func() (bool, string) {
		ps, err := agenttest.Passes(ctx, r.central.URL())
		if err != nil {
			return false, err.Error()
		}
		for _, p := range ps {
			if p.Fuel == plume.FuelDiesel && p.Profile == "hj845-2017-diesel@2026.12-remote" {
				return true, ""
			}
		}
		return false, "passes: " + strings.Repeat(".", len(ps))
	})
	stop()

	// A bad configuration: a camera the station does not have.
	bad := []byte("cameras:\n  - name: side\n    trigger_y: 400\n")
	dcBad, err := r.central.Ops().SetDesiredConfig(ctx, "admin", agenttest.Station, bad)
	if err != nil {
		t.Fatal(err)
	}
	var h *central.StationHealth
	agenttest.WaitFor(t, 15*time.Second, "the station rejecting the bad configuration", func() (bool, string) {
		h = latestHealth(t, r.central.URL())
		return h != nil && h.Heartbeat.ConfigRejected == dcBad.Hash, ""
	})
	if !strings.Contains(h.Heartbeat.ConfigError, `no camera "side"`) || h.Heartbeat.ConfigHash != dc.Hash {
		t.Fatalf("rejection: error %q, running %s (want the last good %s)", h.Heartbeat.ConfigError, h.Heartbeat.ConfigHash, dc.Hash)
	}
	if h.State != central.HealthDegraded || !strings.Contains(strings.Join(h.Reasons, ";"), `configuration rejected: remote configuration: the station has no camera "side"`) {
		t.Fatalf("central judged %s: %v", h.State, h.Reasons)
	}
	// The alert is raised beside the health judgement; give it a moment.
	var as []*central.Alert
	agenttest.WaitFor(t, 10*time.Second, "the configuration alert", func() (bool, string) {
		as = alerts(t, r, central.AlertFilter{Source: central.AlertConfig})
		return len(as) > 0, ""
	})
	if len(as) != 1 || !strings.Contains(as[0].Explanation, `no camera "side"`) || !strings.Contains(as[0].Explanation, dc.Hash[:12]) {
		t.Fatalf("config alerts: %+v", as)
	}
	if b, _ := os.ReadFile(filepath.Join(dataDir, config.RemoteFile)); string(b) != string(good) {
		t.Fatal("the rejected configuration replaced the last good one on disk")
	}

	// Restarted, the agent runs the last good configuration at once.
	if err := r.agent.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := restartAgent(t, r)
	if hb := r2.Heartbeat(); hb.ConfigHash != dc.Hash {
		t.Fatalf("after a restart the agent runs %s, want the last good %s", hb.ConfigHash, dc.Hash)
	}
}
