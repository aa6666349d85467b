package live_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/plume-emissions/plume"
	liveview "github.com/plume-emissions/plume/central/live"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/edge/agent/agenttest"
	"github.com/plume-emissions/plume/edge/live"
)

const station = agenttest.Station

// hostIP returns an IPv4 address of an up, non-loopback interface, where
// both Chromium and pion gather host candidates; loopback otherwise.
func hostIP() string {
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

type testCentral struct {
	*server.Server
	token string
	base  string // URL browsers and edges use
}

// startCentral starts a real central listening on ip with live view
// configured by lc.
func startCentral(t *testing.T, ip string, lc server.LiveConfig) *testCentral {
	t.Helper()
	cfg := server.NewConfig()
	cfg.Addr, cfg.DataDir, cfg.Logger, cfg.Live = net.JoinHostPort(ip, "0"), t.TempDir(), agenttest.Logger(t).With("side", "central"), lc
	s, err := server.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start central: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	tok, err := os.ReadFile(filepath.Join(cfg.DataDir, liveview.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return &testCentral{Server: s, token: strings.TrimSpace(string(tok)), base: s.URL()}
}

func enroll(t *testing.T, c *testCentral, id plume.StationID) ed25519.PrivateKey {
	t.Helper()
	e, err := c.Enroll(context.Background(), id, "live test", nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := e.PrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

type testEdge struct {
	streamer  *live.Streamer
	signaller *live.Signaller
	source    *live.Synthetic
}

// startEdgeNoWait starts an edge from its key seed without waiting for it
// to connect (the NAT test's helper process).
func startEdgeNoWait(t *testing.T, centralURL string, seed []byte) *testEdge {
	t.Helper()
	return startEdgeOpts(t, centralURL, ed25519.NewKeyFromSeed(seed), live.Options{}, false)
}

func startEdge(t *testing.T, centralURL string, key ed25519.PrivateKey, opts live.Options) *testEdge {
	t.Helper()
	return startEdgeOpts(t, centralURL, key, opts, true)
}

func startEdgeOpts(t *testing.T, centralURL string, key ed25519.PrivateKey, opts live.Options, wait bool) *testEdge {
	t.Helper()
	src := &live.Synthetic{}
	opts.Cameras = map[string]live.FrameSource{"main": src}
	opts.Logger = agenttest.Logger(t).With("side", "edge")
	s, err := live.NewStreamer(opts)
	if err != nil {
		t.Fatal(err)
	}
	sig := &live.Signaller{CentralURL: centralURL, Station: station, Key: key, Streamer: s, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second, Logger: opts.Logger}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sig.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	if wait {
		agenttest.WaitFor(t, 10*time.Second, "edge signalling connected", func() (bool, string) { return sig.Connected(), "" })
	}
	return &testEdge{streamer: s, signaller: sig, source: src}
}

// newBrowser starts headless Chromium with the flags this machine needs
// (no sandbox as root; no background networking on a closed network).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("live view browser test needs %s: %v", chromium, err)
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Show real host addresses instead of mDNS names, as a page
		// with camera permission would.
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.UserDataDir(t.TempDir()),
	)
	bctx, bcancel := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil {
		cancel()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() { bcancel(); cancel() })
	return bctx
}

// pageState is window.plumeLive.
type pageState struct {
	State         string `json:"state"`
	FramesDecoded int    `json:"framesDecoded"`
	Messages      int    `json:"messages"`
	Latencies     []int  `json:"latencies"`
	Online        bool   `json:"online"`
	Errors        []any  `json:"errors"`
	LastEvent     any    `json:"lastEvent"`
	Candidate     string `json:"-"`
}

// openViewer opens the live page in a new tab; cancel closes the tab.
func openViewer(t *testing.T, browser context.Context, c *testCentral) (context.Context, context.CancelFunc) {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	// The all-stations live token travels as the plume_live cookie, never in
	// the query string (central/live refuses it there).
	_, err := chromedp.Call(tab, network.SetCookie, network.SetCookieParams{Name: liveview.TokenCookie, Value: c.token, URL: c.base})
	if err == nil {
		err = chromedp.Do(tab, chromedp.Navigate(c.base+"/live/"+string(station)))
	}
	if err != nil {
		cancel()
		t.Fatalf("open live page: %v", err)
	}
	return tab, cancel
}

func state(tab context.Context) (pageState, error) {
	ctx, cancel := context.WithTimeout(tab, 5*time.Second)
	defer cancel()
	st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](`window.plumeLive`))
	if err != nil {
		return st, err
	}
	st.Candidate, err = chromedp.Run(ctx, chromedp.Evaluate[string](`window.plumeLive.candidateType()`, chromedp.EvalAwaitPromise))
	return st, err
}

// waitPlaying waits until the tab decodes frames and gets data-channel
// messages.
func waitPlaying(t *testing.T, tab context.Context) pageState {
	t.Helper()
	var st pageState
	agenttest.WaitFor(t, 30*time.Second, "video decoded and events received", func() (bool, string) {
		var err error
		st, err = state(tab)
		if err != nil {
			return false, err.Error()
		}
		b, _ := json.Marshal(st)
		return st.State == "connected" && st.FramesDecoded >= 10 && st.Messages > 0, string(b)
	})
	return st
}

func median(xs []int) (int, int) {
	if len(xs) == 0 {
		return 0, 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)*95/100]
}

// checkViewing is the whole done-means run against one central and edge:
// frames decoded and rising, data-channel messages, latency, and closing
// the viewer stopping the encoder.
func checkViewing(t *testing.T, c *testCentral, e *testEdge, wantCandidate string) {
	checkViewingStats(t, c, func() (live.Stats, int) { return e.streamer.Stats(), e.source.Subscribers() }, wantCandidate)
}

// checkViewingStats is checkViewing for an edge known by its counters:
// the Streamer's stats and the source's subscriptions.
func checkViewingStats(t *testing.T, c *testCentral, edgeStats func() (live.Stats, int), wantCandidate string) {
	checkViewingSource(t, c, edgeStats, wantCandidate, true)
}

// checkViewingSource is checkViewingStats for any camera; timecode says
// whether its pictures carry the time code that latency is measured by
// (the synthetic source's do, a real camera's don't).
func checkViewingSource(t *testing.T, c *testCentral, edgeStats func() (live.Stats, int), wantCandidate string, timecode bool) {
	browser := newBrowser(t)
	tab, closeTab := openViewer(t, browser, c)
	defer closeTab()
	st := waitPlaying(t, tab)
	time.Sleep(1500 * time.Millisecond)
	st2, err := state(tab)
	if err != nil {
		t.Fatal(err)
	}
	if st2.FramesDecoded <= st.FramesDecoded {
		t.Fatalf("framesDecoded not rising: %d then %d", st.FramesDecoded, st2.FramesDecoded)
	}
	if want, not := strings.CutPrefix(wantCandidate, "!"); not && st2.Candidate == want || !not && wantCandidate != "" && st2.Candidate != wantCandidate {
		t.Fatalf("selected local candidate is %q, want %q", st2.Candidate, wantCandidate)
	}
	med, p95 := median(st2.Latencies)
	es, subs := edgeStats()
	t.Logf("decoded %d frames, %d messages, candidate %s, glass-to-glass median %d ms p95 %d ms over %d frames; encoder %d frames %d keyframes %.1f ms CPU/frame",
		st2.FramesDecoded, st2.Messages, st2.Candidate, med, p95, len(st2.Latencies), es.Frames, es.Keyframes, float64(es.EncodeCPU.Microseconds())/1000/float64(max(es.Frames, 1)))
	if timecode && len(st2.Latencies) == 0 {
		t.Errorf("the page read no time code from the video")
	}
	if es.Encoding != 1 || subs != 1 {
		t.Fatalf("while watched: %d encoders, %d source subscriptions; want 1 and 1", es.Encoding, subs)
	}

	closeTab()
	agenttest.WaitFor(t, 15*time.Second, "encoder stopped after the viewer closed", func() (bool, string) {
		s, subs := edgeStats()
		b, _ := json.Marshal(s)
		return s.Encoding == 0 && s.Sessions == 0 && subs == 0, string(b)
	})
}

func TestLiveViewInBrowser(t *testing.T) {
	ip := hostIP()
	t.Run("Direct", func(t *testing.T) {
		c := startCentral(t, ip, server.LiveConfig{})
		e := startEdge(t, c.base, enroll(t, c, station), live.Options{})
		checkViewing(t, c, e, "")
	})
	t.Run("RelayOnlyThroughTURN", func(t *testing.T) {
		c := startCentral(t, ip, server.LiveConfig{TURNAddr: net.JoinHostPort(ip, "0"), TURNPublicIP: ip, RelayOnly: true})
		e := startEdge(t, c.base, enroll(t, c, station), live.Options{})
		checkViewing(t, c, e, "relay")
	})
}

// TestLiveViewCost measures glass-to-glass latency and CPU with 1, 2 and 4
// viewers of one camera. It takes half a minute of both cores, so it runs
// only with PLUME_LIVE_COST=1.
func TestLiveViewCost(t *testing.T) {
	if os.Getenv("PLUME_LIVE_COST") == "" {
		t.Skip("set PLUME_LIVE_COST=1 to measure live view latency and CPU per viewer count")
	}
	ip := hostIP()
	c := startCentral(t, ip, server.LiveConfig{})
	e := startEdge(t, c.base, enroll(t, c, station), live.Options{})
	browser := newBrowser(t)
	var tabs []context.Context
	for _, n := range []int{1, 2, 4} {
		for len(tabs) < n {
			tab, cancel := openViewer(t, browser, c)
			defer cancel()
			waitPlaying(t, tab)
			tabs = append(tabs, tab)
		}
		time.Sleep(time.Second)
		s0, ru0, t0 := e.streamer.Stats(), rusage(), time.Now()
		time.Sleep(4 * time.Second)
		s1, ru1, el := e.streamer.Stats(), rusage(), time.Since(t0)
		var lat []int
		for _, tab := range tabs {
			st, err := state(tab)
			if err != nil {
				t.Fatal(err)
			}
			lat = append(lat, st.Latencies[max(0, len(st.Latencies)-40):]...)
		}
		med, p95 := median(lat)
		frames := s1.Frames - s0.Frames
		t.Logf("viewers=%d encoders=%d: encoder %.1f%% of a core (%.2f ms/frame, %d frames), edge+central process %.1f%% of a core, %.0f kbit/s, glass-to-glass median %d ms p95 %d ms",
			n, s1.Encoding, float64(s1.EncodeCPU-s0.EncodeCPU)/float64(el)*100, float64((s1.EncodeCPU-s0.EncodeCPU).Microseconds())/1000/float64(max(frames, 1)), frames,
			float64(ru1-ru0)/float64(el)*100, float64(s1.Bytes-s0.Bytes)*8/1000/el.Seconds(), med, p95)
		if s1.Encoding != 1 {
			t.Errorf("%d viewers: %d encoders run, want 1", n, s1.Encoding)
		}
	}
}

func rusage() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestLiveRefuses checks that central refuses an unauthorised officer, a
// forged edge connection and forged signalling messages.
func TestLiveRefuses(t *testing.T) {
	c := startCentral(t, "127.0.0.1", server.LiveConfig{})
	key := enroll(t, c, station)
	enroll(t, c, "OTHER-0002")
	ctx := context.Background()

	t.Run("UnauthorisedOfficer", func(t *testing.T) {
		for _, tc := range []struct {
			url  string
			auth string
			want int
		}{
			{"/live/" + string(station), "", http.StatusUnauthorized},
			{"/live/" + string(station), "Bearer wrong-token-0123456789", http.StatusForbidden},
			{"/live/" + string(station) + "/ws", "", http.StatusUnauthorized},
			{"/live/" + string(station) + "?token=wrong-token-0123456789", "", http.StatusUnauthorized}, // never read from a URL
		} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+tc.url, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET %s (%q): %s, want %d", tc.url, tc.auth, resp.Status, tc.want)
			}
		}
		_, resp, err := websocket.Dial(ctx, wsURL(c.base)+"/live/"+string(station)+"/ws", nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("viewer socket without credentials: err %v, resp %v; want 401", err, resp)
		}
	})

	t.Run("ForgedEdge", func(t *testing.T) {
		_, forged, _ := ed25519.GenerateKey(rand.Reader)
		if _, resp, err := dialEdge(ctx, c, station, station, forged); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("edge socket signed with the wrong key: %v; want 401", err)
		}
		// A real station's valid signature, but for another station's path.
		if _, resp, err := dialEdge(ctx, c, station, "OTHER-0002", key); err == nil || resp == nil || resp.StatusCode == http.StatusSwitchingProtocols {
			t.Errorf("edge socket for another station's path: %v, want refused", err)
		}
		if c.Live().Online(station) {
			t.Fatal("a refused edge counts as online")
		}
	})

	t.Run("ForgedMessages", func(t *testing.T) {
		edge, _, err := dialEdge(ctx, c, station, station, key)
		if err != nil {
			t.Fatal(err)
		}
		defer edge.CloseNow()
		agenttest.WaitFor(t, 5*time.Second, "edge online", func() (bool, string) { return c.Live().Online(station), "" })
		hdr := http.Header{"Authorization": {"Bearer " + c.token}}
		page, _, err := websocket.Dial(ctx, wsURL(c.base)+"/live/"+string(station)+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
		if err != nil {
			t.Fatal(err)
		}
		defer page.CloseNow()
		var cfg plume.LiveSignal
		if err := wsjson.Read(ctx, page, &cfg); err != nil || cfg.Type != plume.LiveConfig || !cfg.Online {
			t.Fatalf("viewer config: %+v, %v", cfg, err)
		}
		before := c.Live().Stats().Refused

		// The edge answers a session that is not one of its station's.
		wsjson.Write(ctx, edge, plume.LiveSignal{Type: plume.LiveAnswer, Session: "0123456789abcdef0123456789abcdef", SDP: "v=0"})
		expectError(t, edge, "unknown session")
		// The edge sends a type only central may send.
		wsjson.Write(ctx, edge, plume.LiveSignal{Type: plume.LiveConfig, Session: cfg.Session})
		expectError(t, edge, "may not send")
		// The page sends an answer, as if it were the edge.
		wsjson.Write(ctx, page, plume.LiveSignal{Type: plume.LiveAnswer, Session: cfg.Session, SDP: "v=0"})
		expectError(t, page, "may not send")
		// The page offers into another session.
		wsjson.Write(ctx, page, plume.LiveSignal{Type: plume.LiveOffer, Session: "ffffffffffffffffffffffffffffffff", SDP: "v=0"})
		expectError(t, page, "not your session")

		if got := c.Live().Stats().Refused - before; got != 4 {
			t.Errorf("refused %d messages, want 4", got)
		}
		// A well-formed offer reaches the edge, stamped with the
		// session and officer by central.
		wsjson.Write(ctx, page, plume.LiveSignal{Type: plume.LiveOffer, SDP: "v=0"})
		var got plume.LiveSignal
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := wsjson.Read(rctx, edge, &got); err != nil || got.Type != plume.LiveOffer || got.Session != cfg.Session || got.Officer == "" {
			t.Fatalf("relayed offer: %+v, %v", got, err)
		}
	})
}

func expectError(t *testing.T, conn *websocket.Conn, contains string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var m plume.LiveSignal
	if err := wsjson.Read(ctx, conn, &m); err != nil {
		t.Fatalf("want an error message: %v", err)
	}
	if m.Type != plume.LiveError || !strings.Contains(m.Error, contains) {
		t.Fatalf("got %+v, want an error containing %q", m, contains)
	}
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") }

// dialEdge opens the edge signalling socket at path's station, claiming
// to be as and signing with key.
func dialEdge(ctx context.Context, c *testCentral, as, path plume.StationID, key ed25519.PrivateKey) (*websocket.Conn, *http.Response, error) {
	p := plume.LiveSignalPath(path)
	date := plume.FormatRequestDate(time.Now())
	hdr := http.Header{}
	hdr.Set(plume.HeaderStation, string(as))
	hdr.Set(plume.HeaderDate, date)
	hdr.Set(plume.HeaderContentSHA256, plume.EmptySHA256)
	hdr.Set(plume.HeaderSignature, plume.SignRequest(key, http.MethodGet, p, date, plume.EmptySHA256))
	return websocket.Dial(ctx, wsURL(c.base)+p, &websocket.DialOptions{HTTPHeader: hdr})
}
