package ops_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/ops"
	"github.com/plume-emissions/plume/central/store"
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

// TestHealthAlertSpan: a health alert's span (first raised … last seen)
// follows its condition while it persists, including while the station is
// down, and the alert is resolved when the condition clears.
func TestHealthAlertSpan(t *testing.T) {
	ctx := context.Background()
	now := t0
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := ops.New(ops.Config{Store: st, Ops: st, Now: func() time.Time { return now }, Tick: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	station(t, st, "GD-SZ-0001", 22.5, 114.0)
	stn := &central.Station{ID: "GD-SZ-0001"}
	seq := uint64(0)
	beat := func(frozen bool) {
		t.Helper()
		seq++
		hb := &plume.Heartbeat{Station: "GD-SZ-0001", Seq: seq, Time: now, Software: "test",
			Analyser: plume.AnalyserHealth{Connected: true, Records: seq},
			Cameras:  []plume.CameraHealth{{Name: "rear", Connected: true, FPS: 25, Frozen: frozen}}}
		if _, err := svc.Heartbeat(ctx, stn, hb); err != nil {
			t.Fatal(err)
		}
	}
	span := func(want int, i int, from, to time.Time, state central.AlertState) *central.Alert {
		t.Helper()
		as := healthAlerts(t, svc)
		if len(as) != want {
			t.Fatalf("%d health alerts, want %d", len(as), want)
		}
		a := as[len(as)-1-i] // oldest first
		if !a.From.Equal(from) || !a.To.Equal(to) || a.State != state {
			t.Fatalf("alert %s: %s – %s %s, want %s – %s %s", a.Title, a.From, a.To, a.State, from, to, state)
		}
		return a
	}

	beat(true) // degraded from the first heartbeat
	span(1, 0, t0, t0, central.AlertOpen)
	now = t0.Add(time.Minute)
	beat(true)
	now = t0.Add(2 * time.Minute)
	beat(true)
	span(1, 0, t0, t0.Add(2*time.Minute), central.AlertOpen)

	now = t0.Add(3 * time.Minute)
	beat(false) // the camera recovers
	a := span(2, 0, t0, t0.Add(2*time.Minute), central.AlertResolved)
	if len(a.History) != 1 || a.History[0].State != central.AlertResolved || !a.History[0].Time.Equal(now) {
		t.Fatalf("resolved alert's history: %+v", a.History)
	}
	span(2, 1, now, now, central.AlertResolved) // the "up" notice

	// Heartbeats stop: down, and the down alert's span grows with each
	// check until a heartbeat comes.
	now = t0.Add(10 * time.Minute)
	svc.Tick(ctx)
	span(3, 2, now, now, central.AlertOpen)
	now = t0.Add(15 * time.Minute)
	svc.Tick(ctx)
	span(3, 2, t0.Add(10*time.Minute), now, central.AlertOpen)
	now = t0.Add(16 * time.Minute)
	beat(false)
	span(4, 2, t0.Add(10*time.Minute), t0.Add(15*time.Minute), central.AlertResolved)
}
