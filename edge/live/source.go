package live

import (
	"image"
	"sync"
	"sync/atomic"
	"time"
)

// Frame is one decoded camera picture. Image is 4:2:0 and must not be
// changed by subscribers: every subscriber of a source may see the same
// Frame.
type Frame struct {
	Image    *image.YCbCr
	Captured time.Time // when the camera took it (edge clock)
}

// FrameSource is a camera as live view sees it: the camera pipeline (or a
// synthetic source) delivers decoded frames to each subscriber until it
// cancels. A subscriber that falls behind loses frames rather than slowing
// the pipeline. cancel may be called more than once; the channel is closed
// after it.
type FrameSource interface {
	Subscribe() (frames <-chan Frame, cancel func())
}

// Synthetic is a pure-Go FrameSource for tests and the demo: a moving test
// pattern with the capture time drawn as a machine-readable time code (see
// DrawTimecode), so the page can measure glass-to-glass latency.
type Synthetic struct {
	Width, Height int // default 640×360
	FPS           int // default 15
	Now           func() time.Time

	subs atomic.Int64
}

// Subscribers returns how many subscriptions are open; live view holds one
// per camera while anyone watches.
func (s *Synthetic) Subscribers() int { return int(s.subs.Load()) }

// Subscribe implements FrameSource.
func (s *Synthetic) Subscribe() (<-chan Frame, func()) {
	w, h, fps := s.Width, s.Height, s.FPS
	if w <= 0 || h <= 0 {
		w, h = 640, 360
	}
	if fps <= 0 {
		fps = 15
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	s.subs.Add(1)
	ch := make(chan Frame, 1)
	stop := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(ch)
		defer s.subs.Add(-1)
		t := time.NewTicker(time.Second / time.Duration(fps))
		defer t.Stop()
		for n := 0; ; n++ {
			captured := now()
			img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
			drawPattern(img, n)
			DrawTimecode(img, captured)
			select {
			case ch <- Frame{Image: img, Captured: captured}:
			default: // the subscriber is behind: drop, as a camera would
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return ch, func() { once.Do(func() { close(stop) }) }
}

// drawPattern draws frame n of a moving test pattern: a sliding luma ramp,
// colour bars, and a box crossing the picture.
func drawPattern(img *image.YCbCr, n int) {
	b := img.Rect
	w, h := b.Dx(), b.Dy()
	for y := 0; y < h; y++ {
		row := img.Y[y*img.YStride : y*img.YStride+w]
		for x := range row {
			row[x] = uint8(48 + (x+y+4*n)%128)
		}
	}
	for y := 0; y < h/2; y++ {
		cb := img.Cb[y*img.CStride : y*img.CStride+w/2]
		cr := img.Cr[y*img.CStride : y*img.CStride+w/2]
		for x := range cb {
			bar := (x * 8 / (w / 2)) & 7
			cb[x] = uint8(64 + 24*bar)
			cr[x] = uint8(224 - 20*bar)
		}
	}
	size := h / 4
	bx := (n * 6) % max(w-size, 1)
	by := h/2 - size/2
	for y := by; y < by+size; y++ {
		for x := bx; x < bx+size; x++ {
			img.Y[y*img.YStride+x] = 235
		}
	}
}

// Time code layout: two rows of timecodeCols blocks of timecodeBlock
// pixels at the top left. Blocks are white (1) or black (0): the start
// pattern 1010, then the capture time as 48 bits of Unix milliseconds, most
// significant first, then an 8-bit check. Blocks this size survive 4G
// bitrates; the page and ReadTimecode sample each block's centre.
const (
	timecodeBlock = 16
	timecodeCols  = 30
	timecodeBits  = 60
)

var timecodeStart = [4]bool{true, false, true, false}

func timecodeBitsOf(t time.Time) [timecodeBits]bool {
	var bits [timecodeBits]bool
	copy(bits[:], timecodeStart[:])
	ms := uint64(t.UnixMilli()) & (1<<48 - 1)
	var check byte = 0xA5
	for i := range 48 {
		bits[4+i] = ms>>(47-i)&1 == 1
	}
	for i := range 6 {
		check ^= byte(ms >> (8 * i))
	}
	for i := range 8 {
		bits[52+i] = check>>(7-i)&1 == 1
	}
	return bits
}

// DrawTimecode draws t as a time code over the top-left corner of img,
// which must be at least 480×32 pixels.
func DrawTimecode(img *image.YCbCr, t time.Time) {
	bits := timecodeBitsOf(t)
	for i, bit := range bits {
		bx, by := (i%timecodeCols)*timecodeBlock, (i/timecodeCols)*timecodeBlock
		v := uint8(16)
		if bit {
			v = 235
		}
		for y := by; y < by+timecodeBlock; y++ {
			for x := bx; x < bx+timecodeBlock; x++ {
				img.Y[y*img.YStride+x] = v
			}
		}
		for y := by / 2; y < (by+timecodeBlock)/2; y++ {
			for x := bx / 2; x < (bx+timecodeBlock)/2; x++ {
				img.Cb[y*img.CStride+x], img.Cr[y*img.CStride+x] = 128, 128
			}
		}
	}
}

// ReadTimecode reads the time code DrawTimecode drew. ok is false when the
// start pattern or the check does not match.
func ReadTimecode(img *image.YCbCr) (t time.Time, ok bool) {
	var got [timecodeBits]bool
	for i := range got {
		x := (i%timecodeCols)*timecodeBlock + timecodeBlock/2
		y := (i/timecodeCols)*timecodeBlock + timecodeBlock/2
		got[i] = img.Y[y*img.YStride+x] > 128
	}
	if [4]bool(got[:4]) != timecodeStart {
		return time.Time{}, false
	}
	var ms uint64
	for i := range 48 {
		ms <<= 1
		if got[4+i] {
			ms |= 1
		}
	}
	t = time.UnixMilli(int64(ms))
	if timecodeBitsOf(t) != got {
		return time.Time{}, false
	}
	return t, true
}
