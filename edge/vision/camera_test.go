package vision

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/plume-emissions/plume"
)

// sceneClip returns a committed scene clip and its ground truth.
func sceneClip(tb testing.TB, name string) (string, SceneTruth) {
	tb.Helper()
	dir := filepath.Join(repoRoot(tb), "testdata", "scenes")
	var truth SceneTruth
	data, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		tb.Skipf("no scene %s: %v (make it with plume-scenes)", name, err)
	}
	if err := json.Unmarshal(data, &truth); err != nil {
		tb.Fatal(err)
	}
	return filepath.Join(dir, name+".mp4"), truth
}

// runClip plays a clip through a Camera and a Pipeline and returns the
// sightings.
func runClip(tb testing.TB, clip string, truth SceneTruth, start time.Time) ([]*Sighting, *Camera, *Pipeline) {
	tb.Helper()
	cam, err := NewCamera(CameraConfig{Name: "rear", Source: clip, FPS: truth.Spec.FPS, Start: start})
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var got []*Sighting
	p, err := NewPipeline(PipelineConfig{Camera: "rear", LaneX: truth.LaneX[:], Lanes: []int{1, 2}, TriggerY: truth.TriggerY,
		MinGrade: 1, ClipBefore: 2 * time.Second, ClipAfter: time.Second}, cam.Ring(), func(s *Sighting) {
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	err = cam.Run(ctx, func(f Frame) error { return p.Process(ctx, f) })
	if !errors.Is(err, ErrSourceEnded) {
		tb.Fatalf("run: %v, want ErrSourceEnded", err)
	}
	p.Flush()
	return got, cam, p
}

func TestCameraPipelineClip(t *testing.T) {
	clip, truth := sceneClip(t, "smoky")
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	got, cam, p := runClip(t, clip, truth, start)
	st := cam.Stats()
	if st.Frames != int64(truth.Frames) || st.DecodeErrors != 0 || st.Frozen || st.Black {
		t.Fatalf("camera stats %+v, want %d clean frames", st, truth.Frames)
	}
	if st.Ring.Bytes > 96<<20 || st.Ring.Frames == 0 {
		t.Fatalf("ring %+v", st.Ring)
	}
	t.Logf("pipeline %+v, %d sightings", p.Stats(), len(got))
	for _, s := range got {
		t.Logf("sighting lane %d at %.2fs smoky %v grade %d", s.Lane, s.Crossed.Sub(start).Seconds(), s.Smoke.Smoky, s.Smoke.Grade)
	}
	missed, caught, smoky, falseAlarms := 0, 0, 0, 0
	// Every smoky vehicle is seen crossing in its lane within 0.5 s and
	// judged smoky.
	for _, v := range truth.Vehicles {
		at := start.Add(time.Duration(v.CrossSec * float64(time.Second)))
		var match *Sighting
		for _, s := range got {
			if s.Lane == v.Lane && s.Crossed.Sub(at).Abs() < 500*time.Millisecond {
				match = s
			}
		}
		if v.Smoky {
			smoky++
		}
		if match == nil {
			t.Logf("vehicle %d (lane %d at %.2fs, smoky %v) not sighted", v.ID, v.Lane, v.CrossSec, v.Smoky)
			missed++
			continue
		}
		if v.Smoky && match.Smoke.Smoky {
			caught++
		}
		if !v.Smoky && match.Smoke.Smoky {
			falseAlarms++
		}
	}
	// The tracker's known limits (see track_smoke.go) allow one miss.
	if missed > 1 || caught < smoky-1 || falseAlarms > 0 {
		t.Fatalf("missed %d of %d vehicles, caught %d of %d smoky, %d false alarms", missed, len(truth.Vehicles), caught, smoky, falseAlarms)
	}
	// Evidence for the first smoky sighting.
	for _, s := range got {
		if !s.Smoke.Smoky {
			continue
		}
		dir := t.TempDir()
		files, err := WriteEvidence(context.Background(), s, dir, EvidenceInfo{Station: "DEMO-0001", Place: "Demo Road km 12.4",
			Lane: s.Lane, Time: s.Crossed, Zone: time.UTC, Font: stripFont(t), Plate: "粤B12345", Grade: "Ringelmann 3", Measured: []string{"CO 0.4%"}, Reason: "smoke"})
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[plume.MediaKind]int{}
		for _, f := range files {
			kinds[f.Kind]++
			fi, err := os.Stat(f.Path)
			if err != nil || fi.Size() == 0 {
				t.Fatalf("%s: %v", f.Name, err)
			}
			if f.Kind == plume.MediaScene {
				m, err := decodeFrame(mustRead(t, f.Path))
				if err != nil {
					t.Fatal(err)
				}
				if m.Cols() < 1280 || m.Rows() < 720+40 {
					t.Errorf("%s is %dx%d, want ≥ 1280×720 plus a strip", f.Name, m.Cols(), m.Rows())
				}
				m.Close()
			}
		}
		if kinds[plume.MediaScene] < 2 || kinds[plume.MediaPlate] != 1 || kinds[plume.MediaSmoke] != 1 || kinds[plume.MediaClip] != 1 {
			t.Fatalf("media kinds %v", kinds)
		}
		if os.Getenv("PLUME_KEEP_EVIDENCE") != "" {
			for _, f := range files {
				data := mustRead(t, f.Path)
				os.WriteFile(filepath.Join(os.Getenv("PLUME_KEEP_EVIDENCE"), f.Name), data, 0o644)
			}
		}
		break
	}
}

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// A camera whose source is missing or garbage keeps reconnecting with
// backoff and reports it, without failing its caller.
func TestCameraBadSources(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mp4")
	os.WriteFile(garbage, []byte("\x00\x00\x00\x18ftypmp42 this is not a video at all"), 0o644)
	for name, src := range map[string]string{"Missing": filepath.Join(dir, "nope.mp4"), "Garbage": garbage, "BadURL": "rtsp://127.0.0.1:1/none"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var sleeps []time.Duration
			cam, err := NewCamera(CameraConfig{Name: name, Source: src, BackoffMin: time.Second, BackoffMax: 4 * time.Second,
				Sleep: func(ctx context.Context, d time.Duration) error {
					sleeps = append(sleeps, d)
					if len(sleeps) >= 4 {
						cancel()
					}
					return ctx.Err()
				}})
			if err != nil {
				t.Fatal(err)
			}
			err = cam.Run(ctx, func(Frame) error { t.Error("a frame from a bad source"); return nil })
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("run: %v", err)
			}
			want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
			if len(sleeps) != 4 || sleeps[2] != want[2] || sleeps[3] != want[3] {
				t.Fatalf("backoff %v, want %v", sleeps, want)
			}
			if st := cam.Stats(); st.Reconnects < 3 || st.LastError == "" || st.Connected {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestRingBounds(t *testing.T) {
	r, err := NewRing(RingConfig{Width: 320, MaxFrames: 5, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	img, err := decodeFrame(smokePNG(t, 640, 360))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	t0 := time.Unix(0, 0)
	for i := 0; i < 12; i++ {
		if err := r.Add(img, int64(i), t0.Add(time.Duration(i)*40*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	st := r.Stats()
	if st.Frames != 5 || st.Evicted != 7 {
		t.Fatalf("stats %+v, want 5 frames and 7 evicted", st)
	}
	f, ok := r.Nearest(t0.Add(400 * time.Millisecond))
	if !ok || f.Seq != 10 || f.Width != 320 || f.Height != 180 || f.Scale != 2 {
		t.Fatalf("nearest %+v", f)
	}
	if got := r.Between(t0.Add(300*time.Millisecond), t0.Add(380*time.Millisecond)); len(got) != 2 {
		t.Fatalf("between: %d frames", len(got))
	}
	bad := gocv.NewMat()
	defer bad.Close()
	if err := r.Add(bad, 99, t0); err == nil {
		t.Fatal("added an empty frame")
	}
}
