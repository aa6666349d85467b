package vision

import (
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
