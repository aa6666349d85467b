package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/plume-emissions/plume"
)

// h264Fmtp is the only video format the edge offers: constrained baseline
// level 3.1, which every WebRTC browser decodes (Chromium has no High
// profile for WebRTC).
const h264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"

// Options configures a Streamer.
type Options struct {
	// Cameras maps camera names to their frame sources. Only the names
	// are ever sent to central.
	Cameras map[string]FrameSource
	// FPS, BitrateKbps and KeyframeEvery (seconds) set the encoder;
	// defaults 15 fps, 600 kbit/s and 4 s, suited to a 4G uplink.
	FPS, BitrateKbps, KeyframeEvery int
	// ICEServers are the edge's own STUN/TURN servers, used beside those
	// central sends with each offer.
	ICEServers []plume.LiveICEServer
	// UDPPort, when set, carries all media on this one UDP port (for
	// firewalls that open a single port).
	UDPPort int
	// RelayOnly makes the edge use TURN relays only, whatever central says.
	RelayOnly bool
	// MaxViewers bounds concurrent sessions (default 8).
	MaxViewers int
	// StatsEvery is how often each viewer's data channel gets a "stream"
	// message with the encoder's figures (default 1 s).
	StatsEvery time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// Streamer answers viewers' offers with the cameras' shared encoders and
// carries the event feed on each viewer's data channel.
type Streamer struct {
	opts    Options
	log     *slog.Logger
	api     *webrtc.API
	udpMux  ice.UDPMux
	cameras map[string]*camera
	first   string

	mu       sync.Mutex
	sessions map[string]*session
	closed   bool

	published atomic.Int64
	refused   atomic.Int64
	stopStats chan struct{}
	statsDone chan struct{}
}

// session is one viewer's PeerConnection.
type session struct {
	id    string
	pc    *webrtc.PeerConnection
	reply func(plume.LiveSignal)

	mu       sync.Mutex
	answered bool
	pending  []plume.LiveSignal // candidates gathered before the answer went out
	dc       *webrtc.DataChannel
}

// NewStreamer returns a Streamer for opts.Cameras.
func NewStreamer(opts Options) (*Streamer, error) {
	if len(opts.Cameras) == 0 {
		return nil, errors.New("live: no cameras")
	}
	if opts.FPS <= 0 {
		opts.FPS = 15
	}
	if opts.BitrateKbps <= 0 {
		opts.BitrateKbps = 600
	}
	if opts.KeyframeEvery <= 0 {
		opts.KeyframeEvery = 4
	}
	if opts.MaxViewers <= 0 {
		opts.MaxViewers = 8
	}
	if opts.StatsEvery <= 0 {
		opts.StatsEvery = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Streamer{
		opts: opts, log: opts.Logger.With("component", "live"), cameras: map[string]*camera{},
		sessions: map[string]*session{}, stopStats: make(chan struct{}), statsDone: make(chan struct{}),
	}
	names := make([]string, 0, len(opts.Cameras))
	for name := range opts.Cameras {
		names = append(names, name)
	}
	slices.Sort(names)
	s.first = names[0]
	for _, name := range names {
		c, err := newCamera(name, opts.Cameras[name], &s.opts, s.log)
		if err != nil {
			return nil, fmt.Errorf("live: camera %s: %w", name, err)
		}
		s.cameras[name] = c
	}

	var me webrtc.MediaEngine
	fb := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: h264Fmtp, RTCPFeedback: fb},
		PayloadType:        102,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("live: register h264: %w", err)
	}
	var reg interceptor.Registry
	if err := webrtc.RegisterDefaultInterceptors(&me, &reg); err != nil {
		return nil, fmt.Errorf("live: interceptors: %w", err)
	}
	var se webrtc.SettingEngine
	if opts.UDPPort > 0 {
		mux, err := ice.NewMultiUDPMuxFromPort(opts.UDPPort)
		if err != nil {
			return nil, fmt.Errorf("live: udp port %d: %w", opts.UDPPort, err)
		}
		s.udpMux = mux
		se.SetICEUDPMux(mux)
	}
	s.api = webrtc.NewAPI(webrtc.WithMediaEngine(&me), webrtc.WithInterceptorRegistry(&reg), webrtc.WithSettingEngine(se))
	go s.statsLoop()
	return s, nil
}

// Signal handles one message relayed by central; reply sends messages back
// to the same viewer. Signal is called from one goroutine, in order.
func (s *Streamer) Signal(ctx context.Context, m plume.LiveSignal, reply func(plume.LiveSignal)) {
	refuse := func(format string, args ...any) {
		s.refused.Add(1)
		msg := fmt.Sprintf(format, args...)
		s.log.Warn("signalling message refused", "type", m.Type, "session", m.Session, "reason", msg)
		reply(plume.LiveSignal{Type: plume.LiveError, Session: m.Session, Error: msg})
	}
	if m.Session == "" {
		refuse("message without a session")
		return
	}
	switch m.Type {
	case plume.LiveOffer:
		if err := s.offer(ctx, m, reply); err != nil {
			refuse("offer: %v", err)
		}
	case plume.LiveCandidate:
		ss := s.session(m.Session)
		if ss == nil {
			refuse("unknown session")
			return
		}
		if len(m.Candidate) == 0 || string(m.Candidate) == "null" {
			return
		}
		var c webrtc.ICECandidateInit
		if err := json.Unmarshal(m.Candidate, &c); err != nil {
			refuse("bad candidate")
			return
		}
		if err := ss.pc.AddICECandidate(c); err != nil {
			s.log.Debug("add ice candidate", "session", m.Session, "err", err)
		}
	case plume.LiveBye:
		s.drop(m.Session, "viewer left")
	case plume.LiveError:
		s.log.Warn("central refused a message", "session", m.Session, "error", m.Error)
	default:
		refuse("unexpected message type %q", m.Type)
	}
}

func (s *Streamer) session(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

func (s *Streamer) offer(ctx context.Context, m plume.LiveSignal, reply func(plume.LiveSignal)) error {
	name := m.Camera
	if name == "" {
		name = s.first
	}
	cam := s.cameras[name]
	if cam == nil {
		return fmt.Errorf("no camera %q", name)
	}
	// A new offer in a session replaces its PeerConnection (the page
	// restarts after ICE fails).
	s.drop(m.Session, "renegotiated")
	s.mu.Lock()
	n, closed := len(s.sessions), s.closed
	s.mu.Unlock()
	if closed {
		return errors.New("shutting down")
	}
	if n >= s.opts.MaxViewers {
		return fmt.Errorf("%d viewers already watch", n)
	}

	cfg := webrtc.Configuration{}
	for _, is := range append(slices.Clone(s.opts.ICEServers), m.ICEServers...) {
		cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{URLs: is.URLs, Username: is.Username, Credential: is.Credential})
	}
	if s.opts.RelayOnly || m.RelayOnly {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := s.api.NewPeerConnection(cfg)
	if err != nil {
		return fmt.Errorf("new peer connection: %w", err)
	}
	ss := &session{id: m.Session, pc: pc, reply: reply}
	sender, err := pc.AddTrack(cam.track)
	if err != nil {
		pc.Close()
		return fmt.Errorf("add track: %w", err)
	}
	go readRTCP(sender, cam)
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		b, err := json.Marshal(c.ToJSON())
		if err != nil {
			return
		}
		ss.send(plume.LiveSignal{Type: plume.LiveCandidate, Session: ss.id, Candidate: b})
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.log.Info("viewer connection", "session", ss.id, "state", st.String())
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			go s.dropIf(ss, "connection "+st.String())
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		ss.mu.Lock()
		ss.dc = dc
		ss.mu.Unlock()
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
		pc.Close()
		return fmt.Errorf("set offer: %w", err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		pc.Close()
		return fmt.Errorf("create answer: %w", err)
	}
	s.mu.Lock()
	s.sessions[ss.id] = ss
	s.mu.Unlock()
	if err := pc.SetLocalDescription(answer); err != nil {
		s.drop(ss.id, "set answer failed")
		return fmt.Errorf("set answer: %w", err)
	}
	reply(plume.LiveSignal{Type: plume.LiveAnswer, Session: ss.id, SDP: pc.LocalDescription().SDP, Camera: name})
	ss.mu.Lock()
	ss.answered = true
	pending := ss.pending
	ss.pending = nil
	ss.mu.Unlock()
	for _, p := range pending {
		reply(p)
	}
	s.log.Info("viewer session opened", "session", ss.id, "camera", name, "officer", m.Officer, "relay_only", cfg.ICETransportPolicy == webrtc.ICETransportPolicyRelay)
	return nil
}

// send sends a candidate, holding it back until the answer has gone out.
func (ss *session) send(m plume.LiveSignal) {
	ss.mu.Lock()
	if !ss.answered {
		ss.pending = append(ss.pending, m)
		ss.mu.Unlock()
		return
	}
	ss.mu.Unlock()
	ss.reply(m)
}

// readRTCP drains a viewer's RTCP (the interceptors need it read) and turns
// picture-loss reports into keyframe requests.
func readRTCP(sender *webrtc.RTPSender, cam *camera) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				cam.keyframe()
			}
		}
	}
}

func (s *Streamer) drop(id, why string) {
	s.mu.Lock()
	ss := s.sessions[id]
	delete(s.sessions, id)
	s.mu.Unlock()
	if ss != nil {
		s.log.Info("viewer session closed", "session", id, "why", why)
		ss.pc.Close()
	}
}

// dropIf drops ss if it is still the session under its ID.
func (s *Streamer) dropIf(ss *session, why string) {
	s.mu.Lock()
	cur := s.sessions[ss.id]
	s.mu.Unlock()
	if cur == ss {
		s.drop(ss.id, why)
	}
}

// Publish sends v as JSON to every viewer's data channel. The agent
// publishes analyser readings and verdicts here; without viewers it costs
// a map lookup.
func (s *Streamer) Publish(v any) {
	chans := s.openChannels()
	if len(chans) == 0 {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Warn("publish: encode event", "err", err)
		return
	}
	for _, dc := range chans {
		if err := dc.SendText(string(b)); err == nil {
			s.published.Add(1)
		}
	}
}

func (s *Streamer) openChannels() []*webrtc.DataChannel {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*webrtc.DataChannel
	for _, ss := range s.sessions {
		ss.mu.Lock()
		if ss.dc != nil && ss.dc.ReadyState() == webrtc.DataChannelStateOpen {
			out = append(out, ss.dc)
		}
		ss.mu.Unlock()
	}
	return out
}

// StreamEvent is the "stream" message each viewer's data channel gets every
// StatsEvery: the encoder's own figures.
type StreamEvent struct {
	Type         string    `json:"type"` // "stream"
	Time         time.Time `json:"time"`
	Camera       string    `json:"camera"`
	Viewers      int       `json:"viewers"`
	Frames       int64     `json:"frames"`
	Keyframes    int64     `json:"keyframes"`
	KbitPerSec   float64   `json:"kbps"`
	EncodeCPUPct float64   `json:"encode_cpu_pct"` // of one core, over the last interval
}

func (s *Streamer) statsLoop() {
	defer close(s.statsDone)
	t := time.NewTicker(s.opts.StatsEvery)
	defer t.Stop()
	type last struct{ bytes, cpu int64 }
	prev := map[string]last{}
	for {
		select {
		case <-s.stopStats:
			return
		case <-t.C:
		}
		for name, c := range s.cameras {
			b, cpu := c.bytes.Load(), c.cpu.Load()
			p := prev[name]
			prev[name] = last{b, cpu}
			c.mu.Lock()
			viewers := c.viewers
			c.mu.Unlock()
			if viewers == 0 {
				continue
			}
			sec := s.opts.StatsEvery.Seconds()
			s.Publish(StreamEvent{
				Type: "stream", Time: s.opts.Now().UTC(), Camera: name, Viewers: viewers,
				Frames: c.frames.Load(), Keyframes: c.keys.Load(),
				KbitPerSec: float64(b-p.bytes) * 8 / 1000 / sec, EncodeCPUPct: float64(cpu-p.cpu) / 1e9 / sec * 100,
			})
		}
	}
}

// Stats is a snapshot of live view's counters.
type Stats struct {
	Sessions  int           // viewer sessions (PeerConnections)
	Viewers   int           // viewers whose media path is up, over all cameras
	Encoding  int           // cameras whose encoder runs
	Starts    int64         // encoder starts since the Streamer opened
	Frames    int64         // frames encoded
	Keyframes int64         // of which IDR
	Bytes     int64         // H.264 bytes produced
	EncodeCPU time.Duration // encoder thread CPU time
	Published int64         // data-channel messages sent
	Refused   int64         // signalling messages refused
}

// Stats returns a snapshot of the counters.
func (s *Streamer) Stats() Stats {
	s.mu.Lock()
	st := Stats{Sessions: len(s.sessions)}
	s.mu.Unlock()
	for _, c := range s.cameras {
		c.mu.Lock()
		st.Viewers += c.viewers
		c.mu.Unlock()
		if c.running.Load() {
			st.Encoding++
		}
		st.Starts += c.runs.Load()
		st.Frames += c.frames.Load()
		st.Keyframes += c.keys.Load()
		st.Bytes += c.bytes.Load()
		st.EncodeCPU += time.Duration(c.cpu.Load())
	}
	st.Published, st.Refused = s.published.Load(), s.refused.Load()
	return st
}

// Close ends every session and stops the encoders.
func (s *Streamer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ids := make([]string, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.drop(id, "shutting down")
	}
	close(s.stopStats)
	<-s.statsDone
	for _, c := range s.cameras {
		c.close()
	}
	if s.udpMux != nil {
		return s.udpMux.Close()
	}
	return nil
}
