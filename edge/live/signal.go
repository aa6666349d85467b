package live

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/plume-emissions/plume"
)

// Signaller keeps the edge's outbound signalling WebSocket to central open,
// reconnecting with jittered exponential backoff, and hands every message
// to the Streamer. The upgrade request is signed with the station key like
// every other station request (plume.SignRequest over GET and the path), so
// central knows which station holds the socket.
type Signaller struct {
	CentralURL string
	Station    plume.StationID
	Key        ed25519.PrivateKey
	Streamer   *Streamer
	HTTPClient *http.Client // nil: http.DefaultClient
	// BackoffMin and BackoffMax bound the wait between attempts
	// (defaults 1 s and 30 s).
	BackoffMin, BackoffMax time.Duration
	// PingEvery keeps NAT mappings and idle proxies open (default 20 s).
	PingEvery time.Duration
	Logger    *slog.Logger
	Now       func() time.Time

	connected atomic.Bool
	connects  atomic.Int64
}

// Connected reports whether the socket is open now.
func (c *Signaller) Connected() bool { return c.connected.Load() }

// Connects counts successful connections (reconnections included).
func (c *Signaller) Connects() int64 { return c.connects.Load() }

// errRefused means central answered the upgrade with 401 or 403.
var errRefused = errors.New("central refused the station")

// Run connects and reconnects until ctx ends. It returns nil then.
func (c *Signaller) Run(ctx context.Context) error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.PingEvery <= 0 {
		c.PingEvery = 20 * time.Second
	}
	log := c.Logger.With("component", "live-signal")
	wait := c.BackoffMin
	for {
		start := time.Now()
		err := c.runOnce(ctx, log)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > time.Minute {
			wait = c.BackoffMin // it was up a good while: start over
		}
		if errors.Is(err, errRefused) {
			wait = c.BackoffMax
		}
		d := wait/2 + rand.N(wait/2+1) // jitter: reconnecting edges do not stampede
		log.Warn("live signalling disconnected; retrying", "err", err, "in", d.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
		wait = min(wait*2, c.BackoffMax)
	}
}

func (c *Signaller) runOnce(ctx context.Context, log *slog.Logger) error {
	base, err := url.Parse(c.CentralURL)
	if err != nil {
		return fmt.Errorf("central url: %w", err)
	}
	u := *base
	u.Path = strings.TrimSuffix(base.Path, "/") + plume.LiveSignalPath(c.Station)
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	date := plume.FormatRequestDate(c.Now())
	hdr := http.Header{}
	hdr.Set(plume.HeaderStation, string(c.Station))
	hdr.Set(plume.HeaderDate, date)
	hdr.Set(plume.HeaderContentSHA256, plume.EmptySHA256)
	hdr.Set(plume.HeaderSignature, plume.SignRequest(c.Key, http.MethodGet, u.EscapedPath(), date, plume.EmptySHA256))
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	conn, resp, err := websocket.Dial(dctx, u.String(), &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: c.HTTPClient})
	cancel()
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return fmt.Errorf("dial live signalling: %w (%s)", errRefused, resp.Status)
		}
		return fmt.Errorf("dial live signalling: %w", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	c.connected.Store(true)
	defer c.connected.Store(false)
	c.connects.Add(1)
	log.Info("live signalling connected", "central", c.CentralURL)

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		t := time.NewTicker(c.PingEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				log.Warn("live signalling ping failed", "err", err)
				conn.CloseNow()
				return
			}
		}
	}()
	reply := func(m plume.LiveSignal) {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := wsjson.Write(wctx, conn, m); err != nil {
			log.Debug("live signalling write", "err", err)
		}
	}
	for {
		var m plume.LiveSignal
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			return fmt.Errorf("read live signalling: %w", err)
		}
		c.Streamer.Signal(ctx, m, reply)
	}
}
