package live_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/edge/agent"
	"github.com/plume-emissions/plume/edge/agent/agenttest"
	"github.com/plume-emissions/plume/edge/live"
)

// The done-means run with the real edge agent playing a generated
// clip as its camera: a real central relays the session, headless Chromium
// decodes the camera's pictures and receives the data channel, and closing
// the viewer stops the encoder and the camera's live pictures.
func TestLiveViewAgentCameraInBrowser(t *testing.T) {
	clip, err := filepath.Abs(filepath.Join("..", "..", "testdata", "scenes", "smoky.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	c := startCentral(t, hostIP(), server.LiveConfig{})
	enr, err := c.Enroll(context.Background(), station, "live camera test", nil)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	st := agenttest.StationConfig(t, dataDir)
	if len(st.Cameras) == 0 {
		t.Fatal("the demo station has no camera to stream")
	}
	st.Cameras = st.Cameras[:1]
	st.Cameras[0].Source = clip
	a, err := agent.Open(context.Background(), agent.Config{
		Station: st, Enrollment: enr, Logger: agenttest.Logger(t).With("side", "edge"),
		AnalyserAddr: "127.0.0.1:0", MetricsAddr: "-", FlushTimeout: 2 * time.Second,
		Cameras: agent.CameraOptions{Realtime: true, Loop: true},
		Live:    agent.LiveConfig{Enabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	streamer, signaller := a.Live()
	agenttest.WaitFor(t, 15*time.Second, "edge signalling connected", func() (bool, string) { return signaller.Connected(), "" })
	src, ok := a.LiveSources()[st.Cameras[0].Name].(interface{ Subscribers() int })
	if !ok {
		t.Fatalf("camera %q is not streamed from the camera pipeline", st.Cameras[0].Name)
	}
	checkViewingSource(t, c, func() (live.Stats, int) { return streamer.Stats(), src.Subscribers() }, "", false)
}
