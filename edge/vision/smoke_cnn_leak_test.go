//go:build matprofile

package vision

import (
	"bytes"
	"image"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

// TestSmokeCNNNoMatLeaks runs the classifier path of DetectSmoke (with the
// hard rules' cues), the explain picture, the parity entry points and bad
// input, and checks that every Mat it created
// was closed. Run with: go test -tags matprofile ./edge/vision/ -run SmokeCNNNoMatLeaks
func TestSmokeCNNNoMatLeaks(t *testing.T) {
	start := gocv.MatProfile.Count()
	func() {
		c, err := OpenSmokeClassifier(filepath.Join(repoRoot(t), "models", "smoke", "smoke-cnn.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		scenePath := filepath.Join(repoRoot(t), "models", "smoke", "parity", "scene.png")
		data, err := os.ReadFile(scenePath)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			res, err := DetectSmokeImage(data, SmokeOptions{Classifier: c, Threshold: 0.01})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ExplainSmokeImage(data, res); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ExplainSmokeImage([]byte("junk"), SmokeResult{}); err == nil {
			t.Fatal("explain accepted junk")
		}
		_, _ = DetectSmokeImage([]byte("junk"), SmokeOptions{Classifier: c})
		scene := gocv.IMRead(scenePath, gocv.IMReadColor)
		defer scene.Close()
		for _, r := range []image.Rectangle{image.Rect(0, 0, 5, 5), image.Rect(-40, -40, 900, 900), image.Rect(300, 200, 320, 240)} {
			if _, err := c.ScorePatch(scene, r); err != nil {
				t.Fatal(err)
			}
		}
		empty := gocv.NewMat()
		_, _ = c.ScorePatch(empty, image.Rect(0, 0, 4, 4))
		empty.Close()
		if _, err := c.ScoreTensor(make([]float32, 3*SmokePatchSide*SmokePatchSide)); err != nil {
			t.Fatal(err)
		}
		_, _ = NewSmokeClassifier([]byte("junk"))
	}()
	if n := gocv.MatProfile.Count() - start; n != 0 {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Fatalf("%d Mat(s) leaked:\n%s", n, b.String())
	}
}
