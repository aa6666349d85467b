package vision

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"testing"

	"gocv.io/x/gocv"
)

func TestRingelmann(t *testing.T) {
	for _, c := range []struct {
		b    float64
		want int
	}{{0, 0}, {0.09, 0}, {0.11, 1}, {0.2, 1}, {0.5, 3}, {0.61, 3}, {0.95, 5}, {1.4, 5}, {-1, 0}, {math.NaN(), 0}} {
		if got := Ringelmann(c.b); got != c.want {
			t.Errorf("Ringelmann(%g) = %d, want %d", c.b, got, c.want)
		}
	}
}

// TestDetectSmokeStillsAccuracy measures the detector on the real stills
// and guards against regressions. The numbers are in models/smoke/MODEL_CARD.md.
func TestDetectSmokeStillsAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("reads ~570 real images")
	}
	samples := loadStillSamples(t)
	m := score(smokeWeights, samples, DefaultSmokeThreshold)
	t.Logf("stills at the operating threshold: P %.3f R %.3f F1 %.3f (%+v)", m.precision(), m.recall(), m.f1(), m)
	if m.precision() < 0.95 || m.tp < 25 {
		t.Errorf("operating point regressed: P %.3f, %d caught", m.precision(), m.tp)
	}
	m = score(smokeWeights, samples, ScreeningSmokeThreshold)
	t.Logf("stills at the screening threshold: P %.3f R %.3f F1 %.3f (%+v)", m.precision(), m.recall(), m.f1(), m)
	if m.precision() < 0.88 || m.f1() < 0.86 {
		t.Errorf("screening point regressed: P %.3f F1 %.3f", m.precision(), m.f1())
	}
}

func TestDetectSmokeBadInput(t *testing.T) {
	for name, data := range map[string][]byte{"empty": nil, "junk": []byte("junk"), "huge": smokePNG(t, 17000, 20)} {
		if _, err := DetectSmokeImage(data, SmokeOptions{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if _, err := DetectSmoke(empty, SmokeOptions{}); err == nil {
		t.Error("empty mat accepted")
	}
	tiny := gocv.NewMatWithSize(4, 4, gocv.MatTypeCV8UC3)
	defer tiny.Close()
	if _, err := DetectSmoke(tiny, SmokeOptions{}); err == nil {
		t.Error("4x4 mat accepted")
	}
	grey := gocv.NewMatWithSize(100, 100, gocv.MatTypeCV8U)
	defer grey.Close()
	if _, err := DetectSmoke(grey, SmokeOptions{}); err == nil {
		t.Error("grey mat accepted")
	}
}

// FuzzDetectSmokeImage feeds the image-decoding entry point of smoke
// detection.
func FuzzDetectSmokeImage(f *testing.F) {
	f.Add([]byte{})
	f.Add(smokePNG(f, 64, 48))
	f.Add(smokeJPEG(f, 64, 48))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := DetectSmokeImage(data, SmokeOptions{})
		if err == nil && (res.Grade < 0 || res.Grade > 5 || res.Confidence < 0 || res.Confidence > 1) {
			t.Fatalf("bad result %+v", res)
		}
	})
}

func smokeTestImage(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	return img
}

func smokePNG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, smokeTestImage(w, h)); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func smokeJPEG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, smokeTestImage(w, h), nil); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}
