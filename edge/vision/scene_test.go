package vision

import (
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

func TestSceneRender(t *testing.T) {
	for _, c := range []string{SceneSmoky, SceneShadows, SceneWet, SceneDust, SceneLight, SceneNight} {
		t.Run(c, func(t *testing.T) {
			s, err := NewScene(SceneSpec{Case: c, Seed: 1, Width: 640, Height: 360, FPS: 25, Seconds: 4, Vehicles: 2})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for {
				m, ok, err := s.Next()
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					m.Close()
					break
				}
				if m.Cols() != 640 || m.Rows() != 360 || m.Type() != gocv.MatTypeCV8UC3 {
					t.Fatalf("frame %dx%d %v", m.Cols(), m.Rows(), m.Type())
				}
				if dir := os.Getenv("SCENE_DUMP"); dir != "" && n == 60 {
					gocv.IMWrite(filepath.Join(dir, c+".png"), m)
				}
				m.Close()
				n++
			}
			if n != s.Truth.Frames || n != 100 {
				t.Fatalf("%d frames, truth %d", n, s.Truth.Frames)
			}
		})
	}
	if _, err := NewScene(SceneSpec{Width: 10}); err == nil {
		t.Fatal("bad spec accepted")
	}
}

func TestTrackerOnScenes(t *testing.T) {
	if testing.Short() {
		t.Skip("renders and tracks several scenes")
	}
	for _, c := range []string{SceneSmoky, SceneShadows, SceneWet, SceneDust, SceneLight, SceneNight} {
		s, err := EvaluateScene(t.Context(), SceneSpec{Case: c, Seed: 7, Width: 640, Height: 360, FPS: 25, Seconds: 20, Vehicles: 8}, 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v", s)
	}
}

var (
	sceneMinutes  = flag.Float64("scene-minutes", 0, "TestTrackerLongEval: minutes of clean traffic to render and track (e.g. 60)")
	sceneMinGrade = flag.Int("scene-min-grade", 2, "TestTrackerLongEval: Ringelmann grade that makes a pass smoky, in the truth and for the tracker (the limit profiles use 2)")
)

// TestTrackerLongEval renders long runs of traffic in memory (nothing is
// written) and reports the video metrics:
//
//   - detection rate: smoky passes (true grade ≥ -scene-min-grade, by
//     default 2, the grade at which the limit profiles make a candidate:
//     smoke above Ringelmann 1) whose track is judged
//     smoky / smoky passes, over smoky and mixed scenes (a fifth of the
//     clean minutes, 1 min each, seeds 100…);
//
//   - false alarms per hour: smoky verdicts on clean vehicles or on no
//     vehicle, per hour of the clean scenes (shadows and dark vehicles,
//     wet road and spray, dust and light smoke, passing clouds, night, in
//     equal parts, 1 min each, seeds 200…);
//
//   - grade within ±1: caught plumes graded within one of the truth /
//     caught;
//
//   - tracked: truth vehicles matched to a crossing track / vehicles.
//
//     go test ./edge/vision/ -run TestTrackerLongEval -scene-minutes 60 -v
func TestTrackerLongEval(t *testing.T) {
	if *sceneMinutes <= 0 {
		t.Skip("set -scene-minutes")
	}
	clean := []string{SceneShadows, SceneWet, SceneDust, SceneLight, SceneNight}
	smoky := []string{SceneSmoky, SceneMixed}
	run := func(c string, seed int64) SceneScore {
		s, err := EvaluateScene(t.Context(), SceneSpec{Case: c, Seed: seed, Width: 480, Height: 270, FPS: 25, Seconds: 60, Vehicles: 26}, *sceneMinGrade)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var fa, faSmoky, passes, caught, within, vehicles, tracked int
	var cleanSeconds float64
	n := int(math.Ceil(*sceneMinutes))
	for i := range n {
		c := clean[i%len(clean)]
		s := run(c, int64(200+i))
		fa += s.FalseAlarms
		cleanSeconds += s.Seconds
		vehicles += s.Vehicles
		tracked += s.Tracked
		t.Logf("clean %-8s seed %d: tracked %d/%d, false alarms %d", c, 200+i, s.Tracked, s.Vehicles, s.FalseAlarms)
	}
	for i := range max(2, n/5) {
		c := smoky[i%len(smoky)]
		s := run(c, int64(100+i))
		passes += s.SmokyPasses
		caught += s.Caught
		within += s.GradeWithin1
		faSmoky += s.FalseAlarms
		vehicles += s.Vehicles
		tracked += s.Tracked
		t.Logf("smoky %-8s seed %d: caught %d/%d, grade ±1 %d, tracked %d/%d, false alarms %d", c, 100+i, s.Caught, s.SmokyPasses, s.GradeWithin1, s.Tracked, s.Vehicles, s.FalseAlarms)
	}
	t.Logf("false alarms in the smoky scenes (not counted per hour): %d", faSmoky)
	t.Logf("detection rate %d/%d = %.3f; false alarms %d in %.1f min of clean traffic = %.2f/h; grade within ±1 %d/%d = %.3f; tracked %d/%d = %.3f",
		caught, passes, float64(caught)/float64(max(1, passes)), fa, cleanSeconds/60, float64(fa)/(cleanSeconds/3600),
		within, caught, float64(within)/float64(max(1, caught)), tracked, vehicles, float64(tracked)/float64(max(1, vehicles)))
}
