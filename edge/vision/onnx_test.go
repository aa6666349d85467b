package vision

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenRecogniserBadModel: files that would make OpenCV throw (and abort
// the process) are refused in Go with ErrBadModel.
func TestOpenRecogniserBadModel(t *testing.T) {
	good := readFile(t, modelPath(t))
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct{ name, path string }{
		{"ErrMissing", filepath.Join(dir, "nope.onnx")},
		{"ErrDirectory", dir},
		{"ErrEmpty", write("empty.onnx", nil)},
		{"ErrText", write("text.onnx", []byte("this is not a model\n"))},
		{"ErrJPEG", write("jpeg.onnx", jpegBytes(t, 8, 8))},
		{"ErrTruncated", write("trunc.onnx", good[:len(good)/2])},
		{"ErrTruncatedHead", write("head.onnx", good[:64])},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := OpenRecogniser(tt.path)
			if err == nil {
				r.Close()
				t.Fatal("bad model accepted")
			}
			if !errors.Is(err, ErrBadModel) {
				t.Fatalf("err = %v, want ErrBadModel", err)
			}
		})
	}
	t.Run("OK", func(t *testing.T) {
		r, err := OpenRecogniser(modelPath(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Logits(blobZeros(t)); !errors.Is(err, ErrClosed) {
			t.Fatalf("after Close: %v, want ErrClosed", err)
		}
	})
}

func FuzzCheckONNX(f *testing.F) {
	f.Add([]byte{0x08, 0x07, 0x3a, 0x02, 0x0a, 0x00})
	f.Add([]byte("not onnx"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = checkONNX(b) // must not panic
	})
}
