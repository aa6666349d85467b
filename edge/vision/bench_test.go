package vision

import (
	"context"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

// Benchmarks of the per-frame vision cost. Run single-threaded with
//
//	OPENCV_FOR_THREADS_NUM=1 GOMAXPROCS=1 go test -run '^$' -bench . ./edge/vision/

// BenchmarkRecognise: recognition of one rectified plate crop.
func BenchmarkRecognise(b *testing.B) {
	r := openReader(b, Options{})
	dir, metas := scenes(b)
	img, err := DecodeImage(readFile(b, filepath.Join(dir, metas[0].File)))
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	cands, err := Locate(img, LocateOptions{})
	if err != nil || len(cands) == 0 {
		b.Fatalf("locate: %v, %d candidates", err, len(cands))
	}
	rect, err := rectify(img, cands[0].Corners, false)
	if err != nil {
		b.Fatal(err)
	}
	defer rect.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.rec.Recognise(rect, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadFrame1080p: localisation plus recognition of a 1920x1080
// frame with one plate (decoding excluded).
func BenchmarkReadFrame1080p(b *testing.B) {
	r := openReader(b, Options{})
	dir, metas := scenes(b)
	img, err := DecodeImage(readFile(b, filepath.Join(dir, metas[0].File)))
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	benchRead(b, r, img, metas[0].Text)
}

func benchRead(b *testing.B, r *Reader, img gocv.Mat, want string) {
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := r.Read(context.Background(), img)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Plates) == 0 || res.Plates[0].Text != want {
			b.Fatalf("misread: %+v", res.Plates)
		}
	}
}

// BenchmarkLocate1080p: localisation alone.
func BenchmarkLocate1080p(b *testing.B) { benchLocate(b, Locate) }

// BenchmarkLocateRows1080p: the fallback locator on a 1920×1080 scene (run
// by Reader only when Locate's candidates gave no grammatical read).
func BenchmarkLocateRows1080p(b *testing.B) { benchLocate(b, LocateRows) }

func benchLocate(b *testing.B, locate func(gocv.Mat, LocateOptions) ([]Candidate, error)) {
	dir, metas := scenes(b)
	img, err := DecodeImage(readFile(b, filepath.Join(dir, metas[0].File)))
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := locate(img, LocateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
