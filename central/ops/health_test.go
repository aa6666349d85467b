package ops_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/ops"
)

// coldHeartbeat is a heartbeat of an agent started `up` before its time
// whose analyser has not connected yet; nothing else is wrong.
func coldHeartbeat(seq uint64, at time.Time, up time.Duration) *plume.Heartbeat {
	return &plume.Heartbeat{Station: "GD-SZ-0001", Seq: seq, Time: at, Started: at.Add(-up), Software: "test",
		Disk: plume.DiskHealth{Known: true, FreeBytes: 40 << 30}}
}

func healthAlerts(t *testing.T, svc *ops.Service) []*central.Alert {
	t.Helper()
	return must(svc.Alerts(context.Background(), &central.Officer{Role: central.RoleAuditor}, central.AlertFilter{Source: central.AlertHealth}))
}

// TestStartGrace: a station that has just started and whose analyser has
// not connected yet is "starting" and raises no alert; one whose analyser
// stays away past the grace (default 2 min) is degraded and alerted on, as
// is one whose analyser was connected and went away.
func TestStartGrace(t *testing.T) {
	ctx := context.Background()
	svc, st := newService(t, nil)
	station(t, st, "GD-SZ-0001", 22.5, 114.0)
	stn := &central.Station{ID: "GD-SZ-0001"}

	rep, err := svc.Heartbeat(ctx, stn, coldHeartbeat(1, t0, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if rep.State != central.HealthStarting || !strings.Contains(strings.Join(rep.Reasons, ";"), "waiting for the analyser") {
		t.Fatalf("first heartbeat after a cold start: %s %q, want starting", rep.State, rep.Reasons)
	}
	rep, err = svc.Heartbeat(ctx, stn, coldHeartbeat(2, t0.Add(time.Minute), time.Minute+5*time.Second))
	if err != nil || rep.State != central.HealthStarting {
		t.Fatalf("a minute after start: %v %v, want starting", rep, err)
	}
	if as := healthAlerts(t, svc); len(as) != 0 {
		t.Fatalf("%d health alerts while starting, want none: %s", len(as), as[0].Title)
	}

	rep, err = svc.Heartbeat(ctx, stn, coldHeartbeat(3, t0.Add(2*time.Minute), 2*time.Minute+5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if rep.State != central.HealthDegraded || !strings.Contains(strings.Join(rep.Reasons, ";"), "analyser link lost") {
		t.Fatalf("past the grace: %s %q, want degraded, analyser link lost", rep.State, rep.Reasons)
	}
	if as := healthAlerts(t, svc); len(as) != 1 || as[0].State != central.AlertOpen {
		t.Fatalf("past the grace: %d health alerts, want one open", len(as))
	}

	// Within the grace, but the analyser has already sent records: it
	// connected and was lost, which is a fault.
	hb := coldHeartbeat(1, t0.Add(3*time.Minute), 10*time.Second)
	hb.Analyser.Records = 7
	if _, _, why := judge(svc, hb); !strings.Contains(why, "analyser link lost") {
		t.Fatalf("analyser lost after sending records, within the grace: %q", why)
	}
	// An agent that does not say when it started is judged as before.
	hb = coldHeartbeat(1, t0, 0)
	hb.Started = time.Time{}
	if state, _, _ := judge(svc, hb); state != central.HealthDegraded {
		t.Fatalf("no start time: %s, want degraded", state)
	}
	// Another fault within the grace is not hidden by it.
	hb = coldHeartbeat(1, t0, 5*time.Second)
	hb.Spool.DeadLetters = 1
	if state, _, why := judge(svc, hb); state != central.HealthDegraded || strings.Contains(why, "analyser") {
		t.Fatalf("dead letter while starting: %s %q, want degraded for the dead letter only", state, why)
	}
}

func judge(svc *ops.Service, hb *plume.Heartbeat) (central.HealthState, []string, string) {
	s, why := svc.Judge(hb)
	return s, why, strings.Join(why, ";")
}
