package vision

import (
	"context"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkReadRealFrames reads the real full frames of
// ../shared/data/plates (tollbooth, 650×580 to 1600×1200; ccpd, 720×1160)
// and reports the median and 90th-percentile time per frame: decoding
// excluded, localisation and recognition included, the reader's defaults.
// This is the speed figure of the model card; run it single-threaded:
//
//	OPENCV_FOR_THREADS_NUM=1 GOMAXPROCS=1 go test -run '^$' -bench RealFrames -benchtime 1x ./edge/vision/
//
// One benchmark iteration reads every frame once.
func BenchmarkReadRealFrames(b *testing.B) {
	r := openReader(b, Options{})
	var paths []string
	for _, set := range []string{"tollbooth", "ccpd"} {
		err := filepath.WalkDir(sharedPlates(b, set), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if n := strings.ToLower(d.Name()); !d.IsDir() && (strings.HasSuffix(n, ".jpg") || strings.HasSuffix(n, ".png")) {
				paths = append(paths, p)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	imgs := make([][]byte, len(paths))
	for i, p := range paths {
		imgs[i] = readFile(b, p)
	}
	var times []float64
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for _, data := range imgs {
			b.StopTimer()
			img, err := DecodeImage(data)
			if err != nil {
				img.Close()
				continue
			}
			b.StartTimer()
			t0 := time.Now()
			if _, err := r.Read(context.Background(), img); err != nil {
				b.Fatal(err)
			}
			times = append(times, float64(time.Since(t0).Microseconds())/1000)
			img.Close()
		}
	}
	slices.Sort(times)
	at := func(q float64) float64 { return times[min(len(times)-1, int(q*float64(len(times))))] }
	b.ReportMetric(at(0.5), "median-ms/frame")
	b.ReportMetric(at(0.9), "p90-ms/frame")
	b.ReportMetric(float64(len(imgs)), "frames")
}
