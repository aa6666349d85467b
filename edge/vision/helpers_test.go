package vision

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// repoRoot finds the module root (the directory holding go.mod) above the
// package directory.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// sharedPlates returns ../shared/data/plates/<sub> beside the repository, or
// skips the test when it is absent (the real images are never in the repo).
func sharedPlates(tb testing.TB, sub string) string {
	tb.Helper()
	p := filepath.Join(repoRoot(tb), "..", "shared", "data", "plates", sub)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("real plate images not available at %s (see shared/data/README.md): %v", p, err)
	}
	return p
}

func modelPath(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(repoRoot(tb), "models", "plates", "plate-rec.onnx")
}

func openReader(tb testing.TB, opt Options) *Reader {
	tb.Helper()
	r, err := Open(modelPath(tb), opt, nil)
	if err != nil {
		tb.Fatalf("open reader: %v", err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

type sceneMeta struct {
	File      string   `json:"file"`
	Text      string   `json:"text"`
	Colour    string   `json:"colour"`
	DoubleRow bool     `json:"double_row"`
	Corners   [][2]int `json:"corners"`
}

// scenes loads the synthetic 1080p fixtures written by
// models/plates/make_fixtures.py.
func scenes(tb testing.TB) (string, []sceneMeta) {
	tb.Helper()
	dir := filepath.Join(repoRoot(tb), "testdata", "plates", "scenes")
	b, err := os.ReadFile(filepath.Join(dir, "scenes.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var m []sceneMeta
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return dir, m
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
