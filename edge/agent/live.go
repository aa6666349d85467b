package agent

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/live"
)

// LiveConfig turns on live view: the agent keeps an outbound, signed
// signalling WebSocket to central and streams its cameras to authorised
// officers over WebRTC (edge/live).
type LiveConfig struct {
	Enabled bool
	// Cameras are the frame sources by camera name. Empty: the station's
	// cameras, fed by the camera pipeline's decoded frames (640×360, at
	// most 15 fps, with the detections drawn); with no cameras either, one
	// synthetic test-pattern camera named "test".
	Cameras map[string]live.FrameSource
	// ICEServers, UDPPort, RelayOnly and BitrateKbps: see live.Options.
	ICEServers  []plume.LiveICEServer
	UDPPort     int
	RelayOnly   bool
	BitrateKbps int
	// BackoffMax bounds the reconnect wait (default 30 s).
	BackoffMax time.Duration
}

// liveView is the agent's running live view.
type liveView struct {
	streamer  *live.Streamer
	sources   map[string]live.FrameSource
	signaller *live.Signaller
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// PassEvent is the data-channel message for one analyser pass: the
// readings and the verdict, as they happen.
type PassEvent struct {
	Type    string         `json:"type"` // "pass"
	Pass    plume.PassID   `json:"pass"`
	Reading *plume.Reading `json:"reading"`
	Plate   *plume.Plate   `json:"plate,omitempty"`
	Verdict plume.Verdict  `json:"verdict"`
}

func (a *Agent) startLive(ctx context.Context, key ed25519.PrivateKey) error {
	lc := a.cfg.Live
	if !lc.Enabled {
		return nil
	}
	cams := lc.Cameras
	if len(cams) == 0 && a.cameras != nil {
		cams = a.cameras.liveSources()
	}
	if len(cams) == 0 {
		cams = map[string]live.FrameSource{"test": &live.Synthetic{Now: a.cfg.Now}}
	}
	s, err := live.NewStreamer(live.Options{
		Cameras: cams, ICEServers: lc.ICEServers, UDPPort: lc.UDPPort, RelayOnly: lc.RelayOnly,
		BitrateKbps: lc.BitrateKbps, Logger: a.cfg.Logger, Now: a.cfg.Now,
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	lv := &liveView{streamer: s, sources: cams, signaller: &live.Signaller{
		CentralURL: a.cfg.Enrollment.CentralURL, Station: a.cfg.Enrollment.Station, Key: key, Streamer: s,
		BackoffMax: lc.BackoffMax, Logger: a.cfg.Logger, Now: a.cfg.Now,
	}}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	lv.cancel = cancel
	lv.wg.Go(func() { lv.signaller.Run(runCtx) })
	a.live = lv
	return nil
}

// publishPass sends a pass to live viewers; without live view or viewers
// it does nothing.
func (a *Agent) publishPass(p *plume.Pass) {
	if a.live == nil || p == nil {
		return
	}
	a.live.streamer.Publish(PassEvent{Type: "pass", Pass: p.ID, Reading: &p.Reading, Plate: p.Plate, Verdict: p.Verdict})
}

func (a *Agent) stopLive() {
	if a.live == nil {
		return
	}
	a.live.cancel()
	a.live.wg.Wait()
	if err := a.live.streamer.Close(); err != nil {
		a.log.Warn("close live view", "err", err)
	}
}

// LiveSources returns the frame sources live view streams, by camera
// name, or nil when live view is off.
func (a *Agent) LiveSources() map[string]live.FrameSource {
	if a.live == nil {
		return nil
	}
	return a.live.sources
}

// Live returns the live-view streamer and signaller, or nils when live
// view is off.
func (a *Agent) Live() (*live.Streamer, *live.Signaller) {
	if a.live == nil {
		return nil, nil
	}
	return a.live.streamer, a.live.signaller
}
