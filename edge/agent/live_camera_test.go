package agent_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/plume-emissions/plume/edge/agent"
	"github.com/plume-emissions/plume/edge/agent/agenttest"
	"github.com/plume-emissions/plume/edge/live"
)

// With cameras and live view on, live view streams the real camera: a
// subscriber to the station camera's source receives 640×360 pictures of
// the generated clip, in capture order, whose content changes as the
// vehicles drive through, and its channel closes when it cancels.
func TestLiveViewStreamsCamera(t *testing.T) {
	clip, _ := sceneTruth(t, "smoky")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	c := startSmokeCentral(t, filepath.Join(dir, "central"))
	enr := agenttest.Enroll(t, c, filepath.Join(dir, "edge"))
	st := agenttest.StationConfig(t, filepath.Join(dir, "edge"))
	st.Cameras[0].Source = clip
	a, err := agent.Open(ctx, agent.Config{
		Station: st, Enrollment: enr, Logger: agenttest.Logger(t).With("side", "edge"),
		AnalyserAddr: "127.0.0.1:0", MetricsAddr: "-", FlushTimeout: 5 * time.Second,
		Cameras: agent.CameraOptions{Realtime: true, Loop: true},
		Live:    agent.LiveConfig{Enabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srcs := a.LiveSources()
	if _, ok := srcs["test"]; ok || len(srcs) != 1 {
		t.Fatalf("live sources %v: want the station camera only", srcs)
	}
	src, ok := srcs[st.Cameras[0].Name]
	if !ok {
		t.Fatalf("no live source for camera %q", st.Cameras[0].Name)
	}
	frames, stop := src.Subscribe()
	var got []live.Frame
	deadline := time.After(20 * time.Second)
	for len(got) < 40 {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("frames closed early")
			}
			got = append(got, f)
		case <-deadline:
			t.Fatalf("only %d live frames in 20 s", len(got))
		}
	}
	stop()
	for range frames { // drains, then ends: the channel is closed
	}
	first, last := got[0], got[len(got)-1]
	if b := first.Image.Bounds(); b.Dx() != 640 || b.Dy() != 360 {
		t.Fatalf("live picture %v, want 640x360", b)
	}
	for i := 1; i < len(got); i++ {
		if !got[i].Captured.After(got[i-1].Captured) {
			t.Fatalf("frame %d captured %v, not after %v", i, got[i].Captured, got[i-1].Captured)
		}
	}
	// The clip plays at 25 fps, live view takes at most 15.
	span := last.Captured.Sub(first.Captured)
	if rate := float64(len(got)-1) / span.Seconds(); rate > 16 {
		t.Errorf("%.1f pictures a second, want at most 15", rate)
	}
	diff := 0
	for i := range first.Image.Y {
		d := int(first.Image.Y[i]) - int(last.Image.Y[i])
		if d > 24 || d < -24 {
			diff++
		}
	}
	t.Logf("%d pictures over %v; %d%% of luma pixels changed", len(got), span, 100*diff/len(first.Image.Y))
	if diff < len(first.Image.Y)/100 {
		t.Errorf("only %d luma pixels changed over %v: not the moving camera picture", diff, span)
	}
}
