package vision

import (
	"context"
	"io/fs"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
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
	// CPU time of this thread as well as wall time: on a shared machine
	// the wall time measures the neighbours too.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var times, cpu []float64
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
			c0 := threadCPU()
			t0 := time.Now()
			if _, err := r.Read(context.Background(), img); err != nil {
				b.Fatal(err)
			}
			times = append(times, float64(time.Since(t0).Microseconds())/1000)
			cpu = append(cpu, float64((threadCPU()-c0).Microseconds())/1000)
			img.Close()
		}
	}
	at := func(xs []float64, q float64) float64 {
		slices.Sort(xs)
		return xs[min(len(xs)-1, int(q*float64(len(xs))))]
	}
	b.ReportMetric(at(times, 0.5), "median-ms/frame")
	b.ReportMetric(at(times, 0.9), "p90-ms/frame")
	b.ReportMetric(at(cpu, 0.5), "median-cpu-ms/frame")
	b.ReportMetric(at(cpu, 0.9), "p90-cpu-ms/frame")
	b.ReportMetric(float64(len(imgs)), "frames")
}

// threadCPU is the CPU time the calling OS thread has used.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
