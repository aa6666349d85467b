package live

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// camera is one camera's encoder, shared by every viewer: the first viewer
// whose media path comes up starts it, and it stops when the last one goes.
// The encoded samples go to one pion track that every viewer's
// PeerConnection is bound to, so N viewers cost one encode per frame plus N
// packetisations and encryptions.
type camera struct {
	name  string
	src   FrameSource
	track *sharedTrack
	opts  *Options
	log   *slog.Logger

	mu      sync.Mutex
	viewers int
	stop    context.CancelFunc
	done    chan struct{}

	wantKey  atomic.Bool
	lastKey  atomic.Int64 // Now().UnixNano() of the last forced keyframe
	frames   atomic.Int64
	keys     atomic.Int64
	bytes    atomic.Int64
	cpu      atomic.Int64 // encoder thread CPU, ns
	runs     atomic.Int64 // how many times the encoder started
	running  atomic.Bool
	lastWall atomic.Int64 // encode wall time of the last frame, ns
}

func newCamera(name string, src FrameSource, opts *Options, log *slog.Logger) (*camera, error) {
	inner, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: h264Fmtp,
	}, "video-"+name, "plume-"+name)
	if err != nil {
		return nil, err
	}
	c := &camera{name: name, src: src, opts: opts, log: log.With("camera", name)}
	c.track = &sharedTrack{TrackLocalStaticSample: inner, cam: c}
	return c, nil
}

// sharedTrack counts the PeerConnections bound to the camera's track: pion
// binds a track when a viewer's transport is up and unbinds it when the
// sender stops.
type sharedTrack struct {
	*webrtc.TrackLocalStaticSample
	cam *camera
}

func (t *sharedTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	p, err := t.TrackLocalStaticSample.Bind(ctx)
	if err == nil {
		t.cam.attach()
	}
	return p, err
}

func (t *sharedTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	err := t.TrackLocalStaticSample.Unbind(ctx)
	t.cam.detach()
	return err
}

func (c *camera) attach() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.viewers++
	c.wantKey.Store(true) // a new viewer needs an IDR to start decoding
	if c.viewers == 1 {
		ctx, cancel := context.WithCancel(context.Background())
		c.stop, c.done = cancel, make(chan struct{})
		c.runs.Add(1)
		c.running.Store(true)
		go c.run(ctx, c.done)
		c.log.Info("encoder started")
	}
}

func (c *camera) detach() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.viewers == 0 {
		return
	}
	c.viewers--
	if c.viewers == 0 {
		c.stop()
		c.log.Info("encoder stopping: nobody watches")
	}
}

// close stops the encoder whatever the viewers, and waits for it.
func (c *camera) close() {
	c.mu.Lock()
	stop, done := c.stop, c.done
	c.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// keyframe asks for an IDR (a viewer sent PLI or FIR). Requests closer
// together than a third of a second share one IDR.
func (c *camera) keyframe() {
	now := c.opts.Now().UnixNano()
	if last := c.lastKey.Load(); now-last < int64(time.Second/3) {
		return
	}
	c.wantKey.Store(true)
}

// run encodes frames until ctx ends. It keeps to one OS thread so the
// thread's CPU clock measures the encoder alone (x264 runs single-threaded
// in the calling thread).
func (c *camera) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	defer c.running.Store(false)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	frames, cancel := c.src.Subscribe()
	defer cancel()
	var enc *h264Encoder
	defer func() {
		if enc != nil {
			enc.Close()
		}
	}()
	var prev time.Time
	for {
		var f Frame
		var ok bool
		select {
		case <-ctx.Done():
			return
		case f, ok = <-frames:
			if !ok {
				c.log.Warn("camera source ended")
				return
			}
		}
		if f.Image == nil {
			continue
		}
		if enc == nil || enc.width != f.Image.Rect.Dx() || enc.height != f.Image.Rect.Dy() {
			if enc != nil {
				enc.Close()
			}
			var err error
			enc, err = newH264Encoder(f.Image.Rect.Dx(), f.Image.Rect.Dy(), c.opts.FPS, c.opts.BitrateKbps, c.opts.KeyframeEvery*c.opts.FPS)
			if err != nil {
				c.log.Error("encoder failed", "err", err)
				return
			}
			c.wantKey.Store(true)
		}
		idr := c.wantKey.Swap(false)
		cpu0, wall0 := threadCPU(), time.Now()
		au, key, err := enc.Encode(f.Image, idr)
		c.cpu.Add(int64(threadCPU() - cpu0))
		c.lastWall.Store(int64(time.Since(wall0)))
		if err != nil {
			c.log.Error("encode failed", "err", err)
			return
		}
		if idr {
			c.lastKey.Store(c.opts.Now().UnixNano())
		}
		if au == nil {
			continue
		}
		dur := time.Second / time.Duration(c.opts.FPS)
		if !prev.IsZero() && f.Captured.After(prev) && f.Captured.Sub(prev) < time.Second {
			dur = f.Captured.Sub(prev)
		}
		prev = f.Captured
		c.frames.Add(1)
		c.bytes.Add(int64(len(au)))
		if key {
			c.keys.Add(1)
		}
		if err := c.track.WriteSample(media.Sample{Data: au, Duration: dur, Timestamp: f.Captured}); err != nil {
			c.log.Debug("write sample", "err", err)
		}
	}
}
