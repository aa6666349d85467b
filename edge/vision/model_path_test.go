package vision

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFindPlateModelOutsideRepo: run from a directory outside the
// repository with no flag or environment variable, the reader falls back to
// the recogniser compiled into the binary, and that recogniser loads. (The
// systemd unit starts plume-edge in /; before the model was embedded this
// failed with "stat models/plates/plate-rec.onnx".)
func TestFindPlateModelOutsideRepo(t *testing.T) {
	t.Setenv("PLUME_PLATE_MODEL", "")
	t.Chdir(t.TempDir())
	got := FindPlateModel("")
	if got != EmbeddedPlateModel {
		t.Fatalf("FindPlateModel outside the repository = %q, want %q", got, EmbeddedPlateModel)
	}
	r, err := Open(got, Options{}, nil)
	if err != nil {
		t.Fatalf("open the embedded recogniser: %v", err)
	}
	r.Close()
}

// TestFindPlateModelOrder: an explicit path wins, then $PLUME_PLATE_MODEL,
// then a file found from the working directory upwards.
func TestFindPlateModelOrder(t *testing.T) {
	dir := t.TempDir()
	onDisk := filepath.Join(dir, DefaultPlateModel)
	if err := os.MkdirAll(filepath.Dir(onDisk), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(onDisk, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	t.Setenv("PLUME_PLATE_MODEL", "")
	if got := FindPlateModel(""); got != onDisk {
		t.Errorf("from below a checkout: %q, want %q", got, onDisk)
	}
	t.Setenv("PLUME_PLATE_MODEL", "/env/model.onnx")
	if got := FindPlateModel(""); got != "/env/model.onnx" {
		t.Errorf("with $PLUME_PLATE_MODEL: %q", got)
	}
	if got := FindPlateModel("/flag.onnx"); got != "/flag.onnx" {
		t.Errorf("explicit: %q", got)
	}
}
