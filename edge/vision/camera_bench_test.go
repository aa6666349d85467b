package vision

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

var (
	bench1080Once sync.Once
	bench1080Path string
	bench1080Err  error
)

// bench1080Clip renders a 4 s 1080p smoky scene once per test binary.
func bench1080Clip(b *testing.B) string {
	b.Helper()
	bench1080Once.Do(func() {
		dir, err := os.MkdirTemp("", "plume-bench-")
		if err != nil {
			bench1080Err = err
			return
		}
		bench1080Path = filepath.Join(dir, "smoky1080.mp4")
		_, bench1080Err = WriteSceneClip(context.Background(), SceneSpec{Case: SceneSmoky, Seed: 5, Width: 1920, Height: 1080, FPS: 25, Seconds: 4, Vehicles: 3}, bench1080Path, nil)
	})
	if bench1080Err != nil {
		b.Fatal(bench1080Err)
	}
	return bench1080Path
}

// oneCore runs Go on one thread. gocv v0.31 cannot set OpenCV's or
// FFmpeg's thread counts, so run the benchmark under `taskset -c 0` to
// hold the whole process to one core.
func oneCore(b *testing.B) {
	prev := runtime.GOMAXPROCS(1)
	b.Cleanup(func() { runtime.GOMAXPROCS(prev) })
}

// BenchmarkCameraDecode1080p is the decode cost alone: H.264 1080p frames
// read through VideoCapture (FFmpeg).
func BenchmarkCameraDecode1080p(b *testing.B) {
	clip := bench1080Clip(b)
	oneCore(b)
	vc, err := gocv.VideoCaptureFileWithAPI(clip, gocv.VideoCaptureFFmpeg)
	if err != nil {
		b.Fatal(err)
	}
	defer vc.Close()
	img := gocv.NewMat()
	defer img.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !vc.Read(&img) || img.Empty() {
			b.StopTimer()
			vc.Set(gocv.VideoCapturePosFrames, 0)
			b.StartTimer()
			if !vc.Read(&img) {
				b.Fatal("cannot rewind")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/frame")
}

// BenchmarkCameraPipeline1080p is the whole per-frame camera pipeline on
// 1080p: decode, frozen/black check, ring (shrink to 1280 wide + JPEG),
// tracker with smoke judgement and sightings. x-realtime is the real-time
// factor at 25 fps: 40 ms divided by the time per frame (≥ 1 keeps up).
func BenchmarkCameraPipeline1080p(b *testing.B) {
	clip := bench1080Clip(b)
	oneCore(b)
	cam, err := NewCamera(CameraConfig{Name: "bench", Source: clip, FPS: 25, Loop: true})
	if err != nil {
		b.Fatal(err)
	}
	sightings := 0
	p, err := NewPipeline(PipelineConfig{Camera: "bench", LaneX: []int{345, 960, 1574}, Lanes: []int{1, 2}, TriggerY: 594, MinGrade: 1,
		ClipBefore: 3 * time.Second, ClipAfter: 2 * time.Second}, cam.Ring(), func(*Sighting) { sightings++ })
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	b.ResetTimer()
	cam.Run(ctx, func(f Frame) error {
		if n++; n >= b.N {
			cancel()
		}
		return p.Process(ctx, f)
	})
	b.StopTimer()
	perFrame := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(perFrame*1000, "ms/frame")
	b.ReportMetric(0.040/perFrame, "x-realtime")
}
