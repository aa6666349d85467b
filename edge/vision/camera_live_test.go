package vision

import (
	"image"
	"image/color"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// A LiveTap makes nothing while nobody subscribes; with subscribers it
// delivers downscaled 4:2:0 pictures of the frame (a white frame stays
// white, a black one black), at most MaxFPS a second, drops pictures for a
// subscriber that does not read, and closes channels on cancel and Close.
func TestLiveTap(t *testing.T) {
	tap := NewLiveTap(LiveTapConfig{Width: 321, Height: 181, MaxFPS: 10})
	white := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(255, 255, 255, 0), 720, 1280, gocv.MatTypeCV8UC3)
	defer white.Close()
	black := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 0, 0, 0), 720, 1280, gocv.MatTypeCV8UC3)
	defer black.Close()
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for i := range 10 {
		if err := tap.Offer(white, t0.Add(time.Duration(i)*40*time.Millisecond), nil); err != nil {
			t.Fatal(err)
		}
	}
	if tap.Pictures() != 0 {
		t.Fatalf("%d pictures made with nobody watching", tap.Pictures())
	}
	fast, cancelFast := tap.Subscribe()
	slow, cancelSlow := tap.Subscribe()
	if tap.Subscribers() != 2 {
		t.Fatalf("%d subscribers", tap.Subscribers())
	}
	marks := func() []LiveMark {
		return []LiveMark{{Box: image.Rect(100, 100, 600, 500), Label: "#1 L2 皖A12345", Smoky: true}}
	}
	var got []LiveFrame
	for i := range 25 { // one second at 25 fps
		img := white
		if i%2 == 1 {
			img = black
		}
		if err := tap.Offer(img, t0.Add(time.Second+time.Duration(i)*40*time.Millisecond), marks); err != nil {
			t.Fatal(err)
		}
		select {
		case f := <-fast:
			got = append(got, f)
		default:
		}
	}
	if tap.Pictures() < 9 || tap.Pictures() > 11 {
		t.Errorf("%d pictures in a second at MaxFPS 10", tap.Pictures())
	}
	if len(got) != int(tap.Pictures()) {
		t.Errorf("reading subscriber got %d of %d pictures", len(got), tap.Pictures())
	}
	if b := got[0].Image.Bounds(); b.Dx() != 320 || b.Dy() != 180 || got[0].Image.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		t.Fatalf("picture %v %v, want 320x180 4:2:0", b, got[0].Image.SubsampleRatio)
	}
	// Frames alternate white and black; pictures are every other frame or
	// so. A corner away from the mark keeps the frame's level.
	for _, f := range got {
		y := f.Image.YCbCrAt(5, 5).Y
		if y > 20 && y < 235 {
			t.Errorf("corner luma %d: neither the white nor the black frame", y)
		}
	}
	// The smoky mark is drawn red on the picture.
	r, g, _, _ := color.YCbCrModel.Convert(got[0].Image.YCbCrAt(100*320/1280, 150*180/720)).RGBA()
	if !(r>>8 > 150 && g>>8 < 100) {
		t.Errorf("mark edge is rgb(%d,%d,…), want red", r>>8, g>>8)
	}
	// The slow subscriber holds only one picture.
	if n := len(slow); n != 1 {
		t.Errorf("slow subscriber has %d pictures queued, want 1", n)
	}
	cancelFast()
	cancelFast()
	if _, ok := <-fast; ok {
		t.Error("channel open after cancel")
	}
	if err := tap.Close(); err != nil {
		t.Fatal(err)
	}
	<-slow
	if _, ok := <-slow; ok {
		t.Error("channel open after Close")
	}
	cancelSlow() // after Close: no double close
	if tap.Subscribers() != 0 {
		t.Errorf("%d subscribers after Close", tap.Subscribers())
	}
}

// BenchmarkLiveTapOffer1080p is live view's cost per 1080p frame with one
// subscriber (resize to 640×360, marks, I420): paid at most 15 times a
// second, and not at all without viewers.
func BenchmarkLiveTapOffer1080p(b *testing.B) {
	tap := NewLiveTap(LiveTapConfig{MaxFPS: 1e6})
	defer tap.Close()
	frames, cancel := tap.Subscribe()
	defer cancel()
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 120, 150, 0), 1080, 1920, gocv.MatTypeCV8UC3)
	defer img.Close()
	marks := func() []LiveMark { return []LiveMark{{Box: image.Rect(400, 300, 900, 800), Label: "#1 L1 A12345"}} }
	t0 := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := tap.Offer(img, t0.Add(time.Duration(i)*time.Second), marks); err != nil {
			b.Fatal(err)
		}
		<-frames
	}
}
