//go:build matprofile

package vision

import (
	"context"
	"image"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// TestCameraNoMatLeaks plays a clip through the camera, ring, tracker and
// pipeline, writes a sighting's evidence (scenes, close-ups, clip), feeds
// bad sources, and checks every Mat it made was closed. Run with:
// go test -tags matprofile -run NoMatLeaks ./edge/vision/
func TestCameraNoMatLeaks(t *testing.T) {
	clip, truth := sceneClip(t, "smoky")
	start := gocv.MatProfile.Count()
	func() {
		got, _, _ := runClip(t, clip, truth, time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
		if len(got) == 0 {
			t.Fatal("no sightings")
		}
		for i, s := range got[:min(2, len(got))] {
			dir := filepath.Join(t.TempDir(), "ev")
			os.MkdirAll(dir, 0o755)
			if _, err := WriteEvidence(context.Background(), s, dir, EvidenceInfo{Station: "S", Lane: i + 1, Measured: []string{"x"}, Font: stripFont(t)}); err != nil {
				t.Fatal(err)
			}
		}
		strip, err := RenderStrip(stripFont(t), 10, nil)
		strip.Close()
		if err == nil {
			t.Fatal("a strip from nothing")
		}
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		cam, _ := NewCamera(CameraConfig{Source: filepath.Join(t.TempDir(), "none.mp4"), Sleep: func(ctx context.Context, d time.Duration) error {
			if n++; n > 2 {
				cancel()
			}
			return ctx.Err()
		}})
		cam.Run(ctx, func(Frame) error { return nil })
		// Live view's tap, with a subscriber and drawn marks.
		tap := NewLiveTap(LiveTapConfig{})
		_, stop := tap.Subscribe()
		frame := gocv.NewMatWithSize(720, 1280, gocv.MatTypeCV8UC3)
		for i := range 5 {
			tap.Offer(frame, time.Unix(int64(i), 0), func() []LiveMark { return []LiveMark{{Box: image.Rect(10, 10, 300, 300), Label: "x"}} })
		}
		frame.Close()
		stop()
		tap.Close()
	}()
	if end := gocv.MatProfile.Count(); end != start {
		var b []byte
		buf := &byteWriter{&b}
		gocv.MatProfile.WriteTo(buf, 1)
		t.Fatalf("Mat count %d at start, %d after the camera pipeline:\n%s", start, end, b)
	}
}

type byteWriter struct{ b *[]byte }

func (w *byteWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }
