package vision

// Live pictures from a camera: the frames the pipeline already decodes,
// shrunk for live view and converted to 4:2:0 YCbCr, for any number of
// subscribers.
//
// A LiveTap costs one atomic load per frame while nobody subscribes. With
// subscribers, each offered frame (at most MaxFPS a second) is resized
// once, optionally annotated with the pipeline's detections, converted
// once to I420 and handed to every subscriber as the same immutable
// picture. A subscriber that has not taken the previous picture loses the
// new one: a slow viewer never slows the camera.

import (
	"fmt"
	"image"
	"image/color"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"
)

// LiveFrame is one picture for live view. Image must not be changed: all
// subscribers share it.
type LiveFrame struct {
	Image    *image.YCbCr
	Captured time.Time
}

// LiveMark is a detection drawn on live pictures, in full-frame pixels.
type LiveMark struct {
	Box   image.Rectangle
	Label string // ASCII; other runes are drawn as '?'
	Smoky bool   // drawn red rather than green
}

// LiveTapConfig configures a LiveTap; zero values take the defaults.
type LiveTapConfig struct {
	Width, Height int     // picture size (default 640×360; rounded down to even)
	MaxFPS        float64 // at most this many pictures a second (default 15)
}

// LiveTap fans a camera's frames out to live-view subscribers. Offer is
// called from the camera's goroutine; Subscribe from any.
type LiveTap struct {
	cfg   LiveTapConfig
	nsubs atomic.Int64

	mu   sync.Mutex
	subs map[int]chan LiveFrame
	next int
	last time.Time // capture time of the last picture made

	// Used only by Offer (one goroutine).
	small, yuv gocv.Mat
	made       atomic.Int64
}

// NewLiveTap returns a tap; Close releases its buffers.
func NewLiveTap(cfg LiveTapConfig) *LiveTap {
	if cfg.Width <= 0 || cfg.Height <= 0 {
		cfg.Width, cfg.Height = 640, 360
	}
	cfg.Width, cfg.Height = max(16, cfg.Width&^1), max(16, cfg.Height&^1)
	if cfg.MaxFPS <= 0 {
		cfg.MaxFPS = 15
	}
	return &LiveTap{cfg: cfg, subs: map[int]chan LiveFrame{}, small: gocv.NewMat(), yuv: gocv.NewMat()}
}

// Subscribers returns how many subscriptions are open.
func (t *LiveTap) Subscribers() int { return int(t.nsubs.Load()) }

// Pictures returns how many pictures the tap has made (0 while nobody
// subscribed: the cost-nothing check).
func (t *LiveTap) Pictures() int64 { return t.made.Load() }

// Subscribe returns a channel of pictures and a cancel function, which may
// be called more than once; the channel is closed after it.
func (t *LiveTap) Subscribe() (<-chan LiveFrame, func()) {
	ch := make(chan LiveFrame, 1)
	t.mu.Lock()
	id := t.next
	t.next++
	t.subs[id] = ch
	t.nsubs.Add(1)
	t.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			if _, ok := t.subs[id]; ok { // not already closed by Close
				delete(t.subs, id)
				t.nsubs.Add(-1)
				close(ch)
			}
		})
	}
}

// Offer hands one camera frame (BGR) to the subscribers, drawing marks on
// it when marks is not nil (called only when a picture is made). It does
// nothing without subscribers, or when the last picture is more recent
// than 1/MaxFPS.
func (t *LiveTap) Offer(img gocv.Mat, at time.Time, marks func() []LiveMark) error {
	if t.nsubs.Load() == 0 {
		return nil
	}
	t.mu.Lock()
	due := t.last.IsZero() || at.Sub(t.last) >= time.Duration(float64(time.Second)/t.cfg.MaxFPS)-time.Millisecond || at.Before(t.last)
	if due {
		t.last = at
	}
	t.mu.Unlock()
	if !due {
		return nil
	}
	if err := checkFrame(img); err != nil {
		return fmt.Errorf("live tap: %w", err)
	}
	w, h := t.cfg.Width, t.cfg.Height
	gocv.Resize(img, &t.small, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	if marks != nil {
		sx, sy := float64(w)/float64(img.Cols()), float64(h)/float64(img.Rows())
		for _, m := range marks() {
			drawLiveMark(&t.small, m, sx, sy)
		}
	}
	gocv.CvtColor(t.small, &t.yuv, gocv.ColorBGRToYUVI420)
	b := t.yuv.ToBytes()
	if len(b) != w*h*3/2 {
		return fmt.Errorf("live tap: %d I420 bytes for %dx%d", len(b), w, h)
	}
	pic := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	n := w * h
	copy(pic.Y, b[:n])
	copy(pic.Cb, b[n:n+n/4])
	copy(pic.Cr, b[n+n/4:])
	t.made.Add(1)
	fr := LiveFrame{Image: pic, Captured: at}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ch := range t.subs {
		select {
		case ch <- fr:
		default: // behind: this subscriber loses the picture
		}
	}
	return nil
}

var (
	liveGreen = color.RGBA{R: 40, G: 220, B: 60, A: 255}
	liveRed   = color.RGBA{R: 240, G: 40, B: 40, A: 255}
)

func drawLiveMark(img *gocv.Mat, m LiveMark, sx, sy float64) {
	r := image.Rect(int(float64(m.Box.Min.X)*sx), int(float64(m.Box.Min.Y)*sy), int(float64(m.Box.Max.X)*sx), int(float64(m.Box.Max.Y)*sy))
	r = r.Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
	if r.Dx() < 2 || r.Dy() < 2 {
		return
	}
	c := liveGreen
	if m.Smoky {
		c = liveRed
	}
	gocv.Rectangle(img, r, c, 2)
	if m.Label == "" {
		return
	}
	label := []rune(m.Label)
	for i, ch := range label {
		if ch < 0x20 || ch > 0x7e {
			label[i] = '?'
		}
	}
	y := r.Min.Y - 4
	if y < 12 {
		y = r.Min.Y + 14
	}
	gocv.PutText(img, string(label), image.Pt(r.Min.X+2, y), gocv.FontHersheySimplex, 0.45, c, 1)
}

// Close releases the tap's buffers and closes every subscription. Offer
// must not be running or called after it.
func (t *LiveTap) Close() error {
	t.mu.Lock()
	for id, ch := range t.subs {
		delete(t.subs, id)
		t.nsubs.Add(-1)
		close(ch)
	}
	t.mu.Unlock()
	t.small.Close()
	return t.yuv.Close()
}
