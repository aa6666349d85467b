package vision

// The ring buffer of recent frames.
//
// Every frame is shrunk to at most RingConfig.Width pixels wide (default
// 1280, the GA/T 832-2014 minimum for scene images) and kept as JPEG, so a
// clip and scene images can cover time before the trigger. Memory is
// bounded twice: at most MaxFrames frames and MaxBytes bytes of JPEG
// (defaults: 20 s at 25 fps = 500 frames, 96 MiB); the oldest go first.
// A 1280×720 road frame at quality 85 is 60–150 kB, so 96 MiB holds
// 10–20 s. The bound per camera is MaxBytes plus about 100 bytes a frame.

import (
	"errors"
	"fmt"
	"image"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

// RingConfig bounds a Ring.
type RingConfig struct {
	Width     int // frames wider than this are shrunk (0 means 1280)
	Quality   int // JPEG quality (0 means 85)
	MaxFrames int // 0 means 500
	MaxBytes  int // 0 means 96 MiB
}

// RingFrame is one buffered frame.
type RingFrame struct {
	Seq    int64
	At     time.Time
	Width  int
	Height int
	Scale  float64 // full-frame pixels per ring pixel
	JPEG   []byte  // immutable once stored
}

// RingStats describe a ring's use.
type RingStats struct {
	Frames  int   `json:"frames"`
	Bytes   int   `json:"bytes"`
	Evicted int64 `json:"evicted"`
}

// Ring holds recent frames. It is safe for concurrent use.
type Ring struct {
	cfg     RingConfig
	mu      sync.Mutex
	frames  []RingFrame // oldest first
	bytes   int
	evicted int64
}

// NewRing returns an empty ring.
func NewRing(cfg RingConfig) (*Ring, error) {
	if cfg.Width == 0 {
		cfg.Width = 1280
	}
	if cfg.Quality == 0 {
		cfg.Quality = 85
	}
	if cfg.MaxFrames == 0 {
		cfg.MaxFrames = 500
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 96 << 20
	}
	if cfg.Width < 160 || cfg.Quality < 10 || cfg.Quality > 100 || cfg.MaxFrames < 1 || cfg.MaxBytes < 1<<20 {
		return nil, fmt.Errorf("ring: bad config %+v", cfg)
	}
	return &Ring{cfg: cfg}, nil
}

// Add encodes img and appends it, evicting the oldest frames over the
// bounds.
func (r *Ring) Add(img gocv.Mat, seq int64, at time.Time) error {
	if err := checkFrame(img); err != nil {
		return fmt.Errorf("ring: %w", err)
	}
	src := img
	scale := 1.0
	if img.Cols() > r.cfg.Width {
		scale = float64(img.Cols()) / float64(r.cfg.Width)
		h := int(float64(img.Rows())/scale) &^ 1
		small := gocv.NewMat()
		defer small.Close()
		gocv.Resize(img, &small, image.Pt(r.cfg.Width, max(2, h)), 0, 0, gocv.InterpolationArea)
		src = small
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, src, []int{gocv.IMWriteJpegQuality, r.cfg.Quality})
	if err != nil {
		return fmt.Errorf("ring: encode: %w", err)
	}
	data := append([]byte(nil), buf.GetBytes()...)
	buf.Close()
	f := RingFrame{Seq: seq, At: at, Width: src.Cols(), Height: src.Rows(), Scale: scale, JPEG: data}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, f)
	r.bytes += len(data)
	drop := 0
	for len(r.frames)-drop > r.cfg.MaxFrames || (r.bytes > r.cfg.MaxBytes && len(r.frames)-drop > 1) {
		r.bytes -= len(r.frames[drop].JPEG)
		r.frames[drop] = RingFrame{}
		drop++
	}
	if drop > 0 {
		r.evicted += int64(drop)
		r.frames = append(r.frames[:0], r.frames[drop:]...)
	}
	return nil
}

// Between returns the frames with from ≤ At ≤ to, oldest first.
func (r *Ring) Between(from, to time.Time) []RingFrame {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []RingFrame
	for _, f := range r.frames {
		if !f.At.Before(from) && !f.At.After(to) {
			out = append(out, f)
		}
	}
	return out
}

// Nearest returns the frame closest in time to at.
func (r *Ring) Nearest(at time.Time) (RingFrame, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	best, bestD := -1, time.Duration(0)
	for i, f := range r.frames {
		d := f.At.Sub(at)
		if d < 0 {
			d = -d
		}
		if best < 0 || d < bestD {
			best, bestD = i, d
		}
	}
	if best < 0 {
		return RingFrame{}, false
	}
	return r.frames[best], true
}

// Stats returns the ring's use.
func (r *Ring) Stats() RingStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RingStats{Frames: len(r.frames), Bytes: r.bytes, Evicted: r.evicted}
}

// Decode returns the frame as a BGR Mat the caller must close.
func (f RingFrame) Decode() (gocv.Mat, error) {
	if len(f.JPEG) == 0 {
		return gocv.NewMat(), errors.New("ring frame: empty")
	}
	m, err := decodeFrame(f.JPEG)
	if err != nil {
		return m, fmt.Errorf("ring frame: %w", err)
	}
	return m, nil
}
