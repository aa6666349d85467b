//go:build matprofile

package vision

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

// TestNoMatLeaks runs the whole pipeline — decoding, localisation (both
// locators), rectification, recognition, crops, bad input — and checks that
// every Mat it created was closed. Run with: go test -tags matprofile ./edge/vision/
func TestNoMatLeaks(t *testing.T) {
	start := gocv.MatProfile.Count()
	func() {
		r := openReader(t, Options{KeepCrop: true})
		defer r.Close()
		ctx := context.Background()
		dir, metas := scenes(t)
		for _, m := range metas {
			if _, err := r.ReadImage(ctx, readFile(t, filepath.Join(dir, m.File))); err != nil {
				t.Fatal(err)
			}
			img := gocv.IMRead(filepath.Join(dir, m.File), gocv.IMReadColor)
			if _, err := LocateRows(img, LocateOptions{}); err != nil {
				t.Fatal(err)
			}
			img.Close()
		}
		inputs := [][]byte{nil, []byte("junk"), pngClaiming(t, 30000, 30000), pngBytes(t, 94, 24), pngBytes(t, 3, 3), jpegBytes(t, 640, 480)}
		if crops, err := filepath.Glob(filepath.Join(repoRoot(t), "..", "shared", "data", "plates", "lprnet-crops", "*.jpg")); err == nil && len(crops) > 0 {
			b, _ := os.ReadFile(crops[0])
			inputs = append(inputs, b)
		}
		for _, in := range inputs {
			_, _ = r.ReadImage(ctx, in)
		}
		empty := gocv.NewMat()
		_, _ = r.Read(ctx, empty)
		empty.Close()
		if _, err := OpenRecogniser(filepath.Join(t.TempDir(), "none.onnx")); err == nil {
			t.Fatal("opened a missing model")
		}
	}()
	if n := gocv.MatProfile.Count(); n != start {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Fatalf("Mat count %d, started at %d: leaked\n%s", n, start, b.String())
	}
}
