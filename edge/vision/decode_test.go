package vision

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
)

func pngBytes(tb testing.TB, w, h int) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 100, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(tb testing.TB, w, h int) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// pngClaiming returns a small PNG whose header claims w x h (a
// decompression bomb, as far as the header goes).
func pngClaiming(tb testing.TB, w, h uint32) []byte {
	b := pngBytes(tb, 4, 4)
	// IHDR data starts at 16 (8 signature + 4 length + 4 type).
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func TestDecodeImage(t *testing.T) {
	good := pngBytes(t, 40, 20)
	corruptBody := append([]byte{}, good...)
	for i := 41; i < len(corruptBody)-12; i++ { // IDAT payload, keep IEND
		corruptBody[i] ^= 0x5a
	}
	for _, tt := range []struct {
		name string
		data []byte
		err  error
	}{
		{"OKPNG", good, nil},
		{"OKJPEG", jpegBytes(t, 64, 32), nil},
		{"ErrEmpty", nil, ErrEmptyImage},
		{"ErrFormatGIF", []byte("GIF89a\x01\x00\x01\x00"), ErrImageFormat},
		{"ErrFormatText", []byte("hello, world"), ErrImageFormat},
		{"ErrTooLargeHeader", pngClaiming(t, 20000, 20000), ErrImageTooLarge},
		{"ErrTooLargePixels", pngClaiming(t, 10000, 9000), ErrImageTooLarge},
		{"ErrTooLargeBytes", append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, MaxImageBytes)...), ErrImageTooLarge},
		{"ErrZeroWidth", pngClaiming(t, 0, 10), ErrDecode},
		{"ErrTruncatedHeader", good[:20], ErrDecode},
		{"ErrCorruptBody", corruptBody, ErrDecode},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeImage(tt.data)
			//lint:ignore SA5001 the function returns a Mat to close even with its error (gocv), so the deferred Close comes first
			defer m.Close()
			if tt.err == nil {
				if err != nil {
					t.Fatalf("DecodeImage: %v", err)
				}
				if m.Empty() || m.Channels() != 3 {
					t.Fatalf("decoded %dx%d with %d channels", m.Cols(), m.Rows(), m.Channels())
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("DecodeImage = %v, want %v", err, tt.err)
			}
			if !m.Empty() {
				t.Fatal("non-empty Mat returned with an error")
			}
		})
	}
}

// FuzzDecodeImage feeds arbitrary bytes to the image-decoding entry point:
// it must return an error or a valid BGR image, never crash the process.
func FuzzDecodeImage(f *testing.F) {
	f.Add(pngBytes(f, 8, 8))
	f.Add(jpegBytes(f, 16, 8))
	j := jpegBytes(f, 16, 16)
	f.Add(j[:len(j)/2])
	f.Add(pngClaiming(f, 1<<20, 1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeImage(data)
		//lint:ignore SA5001 the function returns a Mat to close even with its error (gocv), so the deferred Close comes first
		defer m.Close()
		if err == nil && (m.Empty() || m.Channels() != 3) {
			t.Fatalf("no error but %dx%d/%d", m.Cols(), m.Rows(), m.Channels())
		}
	})
}
