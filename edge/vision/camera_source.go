package vision

// Camera input.
//
// A Camera reads frames from an RTSP or HTTP URL, a video file or a device
// number through OpenCV's VideoCapture (FFmpeg), stamps each with its
// time, flags frozen and black images, keeps a bounded ring of recent
// frames for evidence clips and hands each frame to a callback. When the
// source fails to open, stops sending or sends frames it cannot decode, the
// camera closes it and reconnects with exponential backoff; it never
// panics and never takes its caller down. Its Stats feed station health.
//
// Timestamps: a live source's frame carries the edge clock (Now) at the
// moment it was grabbed. A file's frame carries Start plus its position in
// the file (frame number / FPS), so a file plays a reproducible timeline;
// with Realtime it is also paced to that timeline on the wall clock (the
// demo plays a clip as a live camera this way).

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

// ErrSourceEnded is returned by Camera.Run when a file source reached its
// end and the camera does not loop.
var ErrSourceEnded = errors.New("camera source ended")

// CameraConfig configures a Camera.
type CameraConfig struct {
	Name   string
	Source string // rtsp://…, http(s)://…, a video file, or a device number
	// FPS is the nominal frame rate, used for files (their own rate when 0)
	// and for the frozen-frame window.
	FPS float64
	// Start is the time of a file's first frame (default Now at Run).
	Start time.Time
	// Realtime paces a file source at FPS on the wall clock.
	Realtime bool
	// Loop restarts a file source at its end, continuing its timeline.
	Loop bool
	// FrozenAfter flags the image as frozen when it has not changed for
	// this long (default 2 s). BlackLevel is the mean luma (0–255) under
	// which an image with little variation is black (default 12).
	FrozenAfter time.Duration
	BlackLevel  float64
	// BackoffMin and BackoffMax bound the reconnect backoff (0.5 s, 30 s).
	BackoffMin, BackoffMax time.Duration
	// Ring configures the buffer of recent frames.
	Ring RingConfig
	Now  func() time.Time
	// Sleep waits for d or until ctx ends (tests inject a fast one).
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger
}

// Frame is one camera frame. Image belongs to the camera and is valid only
// during the callback; Clone it to keep it.
type Frame struct {
	Seq    int64
	At     time.Time
	Image  gocv.Mat
	Frozen bool
	Black  bool
}

// CameraStats is a snapshot of a camera's health counters.
type CameraStats struct {
	Name         string    `json:"name"`
	Connected    bool      `json:"connected"`
	Frames       int64     `json:"frames"`
	FPS          float64   `json:"fps"` // measured over the last few seconds of frames
	Frozen       bool      `json:"frozen"`
	Black        bool      `json:"black"`
	FrozenFrames int64     `json:"frozen_frames"`
	BlackFrames  int64     `json:"black_frames"`
	Reconnects   int64     `json:"reconnects"`
	DecodeErrors int64     `json:"decode_errors"`
	LastFrame    time.Time `json:"last_frame"`
	LastError    string    `json:"last_error,omitempty"`
	Ring         RingStats `json:"ring"`
}

// Camera is one camera source. Run it in its own goroutine.
type Camera struct {
	cfg  CameraConfig
	log  *slog.Logger
	ring *Ring

	mu    sync.Mutex
	stats CameraStats
	fpsT  []time.Time

	// frozen detection: a tiny grey thumbnail of the last changed image
	thumb     []float64
	changedAt time.Time
}

// NewCamera returns a camera; nothing is opened until Run.
func NewCamera(cfg CameraConfig) (*Camera, error) {
	if cfg.Source == "" {
		return nil, errors.New("camera: source is required")
	}
	if cfg.FPS < 0 || cfg.FPS > 240 {
		return nil, fmt.Errorf("camera %s: fps %g out of range", cfg.Name, cfg.FPS)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FrozenAfter <= 0 {
		cfg.FrozenAfter = 2 * time.Second
	}
	if cfg.BlackLevel <= 0 {
		cfg.BlackLevel = 12
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 500 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(cfg.BackoffMin, 30*time.Second)
	}
	ring, err := NewRing(cfg.Ring)
	if err != nil {
		return nil, fmt.Errorf("camera %s: %w", cfg.Name, err)
	}
	return &Camera{cfg: cfg, log: cfg.Logger.With("camera", cfg.Name), ring: ring, stats: CameraStats{Name: cfg.Name}}, nil
}

// Ring returns the camera's buffer of recent frames.
func (c *Camera) Ring() *Ring { return c.ring }

// Stats returns a snapshot of the camera's health.
func (c *Camera) Stats() CameraStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	if n := len(c.fpsT); n > 1 {
		if d := c.fpsT[n-1].Sub(c.fpsT[0]).Seconds(); d > 0 {
			s.FPS = float64(n-1) / d
		}
	}
	s.Ring = c.ring.Stats()
	return s
}

// isFile reports whether source names a file (not a URL or a device).
func isFile(source string) bool {
	if strings.Contains(source, "://") {
		return false
	}
	if _, err := strconv.Atoi(source); err == nil {
		return false
	}
	return true
}

func (c *Camera) open() (*gocv.VideoCapture, error) {
	src := c.cfg.Source
	if isFile(src) {
		st, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		if !st.Mode().IsRegular() || st.Size() == 0 {
			return nil, fmt.Errorf("%s: not a video file", src)
		}
	}
	var (
		vc  *gocv.VideoCapture
		err error
	)
	if id, aerr := strconv.Atoi(src); aerr == nil {
		vc, err = gocv.VideoCaptureDeviceWithAPI(id, gocv.VideoCaptureV4L2)
	} else {
		vc, err = gocv.VideoCaptureFileWithAPI(src, gocv.VideoCaptureFFmpeg)
	}
	if err != nil {
		if vc != nil {
			vc.Close()
		}
		return nil, err
	}
	if !vc.IsOpened() {
		vc.Close()
		return nil, fmt.Errorf("%s: cannot open", src)
	}
	return vc, nil
}

// Run reads frames until ctx ends, handing each to fn; an error from fn
// is logged and counted, never fatal. It reconnects on failure. It returns
// ctx's error, or ErrSourceEnded when a file ends and Loop is off.
func (c *Camera) Run(ctx context.Context, fn func(Frame) error) error {
	file := isFile(c.cfg.Source)
	start := c.cfg.Start
	if start.IsZero() {
		start = c.cfg.Now()
	}
	// A realtime file is paced so that frame time Start+pos plays at wall
	// time Start+pos: the clip stands in for a live camera.
	wallStart := start
	var offset time.Duration // timeline position of the current file pass
	backoff := c.cfg.BackoffMin
	img := gocv.NewMat()
	defer img.Close()
	var seq int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		vc, err := c.open()
		if err != nil {
			c.fail("open", err)
			if err := c.cfg.Sleep(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, c.cfg.BackoffMax)
			c.countReconnect()
			continue
		}
		fps := c.cfg.FPS
		if fps == 0 {
			fps = vc.Get(gocv.VideoCaptureFPS)
		}
		if fps <= 0 || fps > 240 || math.IsNaN(fps) {
			fps = 25
		}
		c.setConnected(true)
		c.log.Info("camera connected", "source", c.cfg.Source, "fps", fps)
		var n int64 // frames from this open
		bad := 0
		ended := false
		for ctx.Err() == nil {
			if ok := vc.Read(&img); !ok || img.Empty() {
				if file && n > 0 && bad == 0 {
					ended = true
				}
				break
			}
			if err := checkFrame(img); err != nil {
				c.countDecodeError(err)
				bad++
				if bad > 25 {
					break
				}
				continue
			}
			bad = 0
			var at time.Time
			if file {
				pos := offset + time.Duration(float64(n)/fps*float64(time.Second))
				at = start.Add(pos)
				if c.cfg.Realtime {
					if err := c.cfg.Sleep(ctx, time.Until(wallStart.Add(pos))); err != nil {
						vc.Close()
						return err
					}
				}
			} else {
				at = c.cfg.Now()
			}
			n++
			seq++
			backoff = c.cfg.BackoffMin
			f := Frame{Seq: seq, At: at, Image: img}
			f.Frozen, f.Black = c.inspect(img, at)
			if err := c.ring.Add(img, seq, at); err != nil {
				c.countDecodeError(err)
			}
			if err := fn(f); err != nil {
				c.log.Warn("frame handler failed", "seq", seq, "err", err)
			}
		}
		vc.Close()
		c.setConnected(false)
		if err := ctx.Err(); err != nil {
			return err
		}
		if ended {
			if !c.cfg.Loop {
				return ErrSourceEnded
			}
			offset += time.Duration(float64(n) / fps * float64(time.Second))
			continue
		}
		c.fail("read", errors.New("stream stopped or sent bad frames"))
		if err := c.cfg.Sleep(ctx, backoff); err != nil {
			return err
		}
		backoff = min(2*backoff, c.cfg.BackoffMax)
		c.countReconnect()
	}
}

// inspect updates the frozen and black flags from a 16×9 grey thumbnail.
func (c *Camera) inspect(img gocv.Mat, at time.Time) (frozen, black bool) {
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(img, &small, image.Pt(16, 9), 0, 0, gocv.InterpolationArea)
	grey := gocv.NewMat()
	defer grey.Close()
	gocv.CvtColor(small, &grey, gocv.ColorBGRToGray)
	px := grey.ToBytes()
	th := make([]float64, len(px))
	var mean, diff float64
	for i, p := range px {
		th[i] = float64(p)
		mean += th[i]
	}
	mean /= float64(max(1, len(px)))
	var sd float64
	for _, v := range th {
		sd += (v - mean) * (v - mean)
	}
	sd = math.Sqrt(sd / float64(max(1, len(px))))
	black = mean < c.cfg.BlackLevel && sd < 6
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.thumb) == len(th) {
		for i := range th {
			diff += math.Abs(th[i] - c.thumb[i])
		}
		diff /= float64(len(th))
	} else {
		diff = math.Inf(1)
	}
	// Sensor noise alone changes a live image by more than this; a frozen
	// encoder repeats it exactly.
	if diff > 0.05 || c.changedAt.IsZero() {
		c.thumb, c.changedAt = th, at
	}
	frozen = at.Sub(c.changedAt) >= c.cfg.FrozenAfter
	c.stats.Frames++
	c.stats.LastFrame = at
	c.stats.Frozen, c.stats.Black = frozen, black
	if frozen {
		c.stats.FrozenFrames++
	}
	if black {
		c.stats.BlackFrames++
	}
	c.fpsT = append(c.fpsT, time.Now())
	if len(c.fpsT) > 50 {
		c.fpsT = c.fpsT[len(c.fpsT)-50:]
	}
	return frozen, black
}

func (c *Camera) fail(what string, err error) {
	c.mu.Lock()
	c.stats.LastError = what + ": " + err.Error()
	c.mu.Unlock()
	c.log.Warn("camera "+what+" failed", "source", c.cfg.Source, "err", err)
}

func (c *Camera) setConnected(v bool) {
	c.mu.Lock()
	c.stats.Connected = v
	c.mu.Unlock()
}

func (c *Camera) countReconnect() {
	c.mu.Lock()
	c.stats.Reconnects++
	c.mu.Unlock()
}

func (c *Camera) countDecodeError(err error) {
	c.mu.Lock()
	c.stats.DecodeErrors++
	c.stats.LastError = err.Error()
	c.mu.Unlock()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
