package live

import (
	"bytes"
	"image"
	"testing"
	"time"
)

func TestTimecodeRoundTrip(t *testing.T) {
	img := image.NewYCbCr(image.Rect(0, 0, 640, 360), image.YCbCrSubsampleRatio420)
	want := time.UnixMilli(1767225600123)
	drawPattern(img, 7)
	DrawTimecode(img, want)
	got, ok := ReadTimecode(img)
	if !ok || !got.Equal(want) {
		t.Fatalf("ReadTimecode = %v, %v; want %v", got, ok, want)
	}
	img.Y[8*img.YStride+4*16+8] ^= 0xff // flip one bit of the time
	if _, ok := ReadTimecode(img); ok {
		t.Fatal("a corrupted time code was accepted")
	}
}

// TestEncoderConstrainedBaseline checks the SPS: Chromium's WebRTC
// receiver decodes constrained baseline (42e0..), not High.
func TestEncoderConstrainedBaseline(t *testing.T) {
	enc, err := newH264Encoder(640, 360, 15, 600, 60)
	if err != nil {
		t.Skipf("no encoder: %v", err)
	}
	defer enc.Close()
	img := image.NewYCbCr(image.Rect(0, 0, 640, 360), image.YCbCrSubsampleRatio420)
	var total int
	for i := range 15 {
		drawPattern(img, i)
		DrawTimecode(img, time.Now())
		au, key, err := enc.Encode(img, i == 10)
		if err != nil {
			t.Fatal(err)
		}
		total += len(au)
		if i == 0 || i == 10 {
			if !key {
				t.Fatalf("frame %d: want an IDR", i)
			}
			sps := bytes.Index(au, []byte{0, 0, 1, 0x67})
			if sps < 0 {
				t.Fatalf("frame %d: no SPS before the IDR", i)
			}
			if p, c := au[sps+4], au[sps+5]; p != 66 || c&0x40 == 0 {
				t.Fatalf("SPS profile_idc %d constraints %#x; want 66 with constraint_set1 (constrained baseline)", p, c)
			}
		}
	}
	if kbps := float64(total) * 8 / 1000; kbps > 1500 {
		t.Errorf("one second of video is %.0f kbit, far over the 600 kbit/s target", kbps)
	}
}

func BenchmarkEncode640x360(b *testing.B) {
	enc, err := newH264Encoder(640, 360, 15, 600, 60)
	if err != nil {
		b.Skip(err)
	}
	defer enc.Close()
	img := image.NewYCbCr(image.Rect(0, 0, 640, 360), image.YCbCrSubsampleRatio420)
	for i := 0; b.Loop(); i++ {
		drawPattern(img, i)
		if _, _, err := enc.Encode(img, false); err != nil {
			b.Fatal(err)
		}
	}
}
