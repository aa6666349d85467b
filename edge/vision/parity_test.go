package vision

import (
	"encoding/binary"
	"encoding/json"
	"image"
	"math"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

func blobZeros(tb testing.TB) gocv.Mat {
	tb.Helper()
	m := gocv.NewMatWithSizesWithScalar([]int{1, 3, InputH, InputW}, gocv.MatTypeCV32F, gocv.NewScalar(0, 0, 0, 0))
	tb.Cleanup(func() { m.Close() })
	return m
}

type parityManifest struct {
	InputShape  []int    `json:"input_shape"`
	OutputShape []int    `json:"output_shape"`
	Texts       []string `json:"texts"`
}

func floats(tb testing.TB, b []byte) []float32 {
	tb.Helper()
	if len(b)%4 != 0 {
		tb.Fatalf("float file of %d bytes", len(b))
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// TestParity: the inputs and PyTorch outputs written by models/plates/train.py
// give the same logits (within 1e-4) and the same text through OpenCV DNN in
// Go, and the Go preprocessing of the saved model-input images gives the
// same input tensors.
func TestParity(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "testdata", "plates", "parity")
	var man parityManifest
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, "manifest.json")), &man); err != nil {
		t.Fatal(err)
	}
	in := floats(t, readFile(t, filepath.Join(dir, "input.f32")))
	want := floats(t, readFile(t, filepath.Join(dir, "output.f32")))
	n := man.InputShape[0]
	per := len(in) / n
	perOut := len(want) / n
	if per != 3*InputH*InputW || len(man.Texts) != n {
		t.Fatalf("fixture shapes %v %v, %d texts", man.InputShape, man.OutputShape, len(man.Texts))
	}
	rec, err := OpenRecogniser(modelPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	for i := 0; i < n; i++ {
		raw := make([]byte, 4*per)
		for k, v := range in[i*per : (i+1)*per] {
			binary.LittleEndian.PutUint32(raw[4*k:], math.Float32bits(v))
		}
		blob, err := gocv.NewMatWithSizesFromBytes([]int{1, 3, InputH, InputW}, gocv.MatTypeCV32F, raw)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rec.Logits(blob)
		blob.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != perOut {
			t.Fatalf("sample %d: %d logits, want %d", i, len(got), perOut)
		}
		worst := 0.0
		for k := range got {
			worst = max(worst, math.Abs(float64(got[k]-want[i*perOut+k])))
		}
		if worst > 1e-4 {
			t.Errorf("sample %d: max |go - pytorch| = %g, want <= 1e-4", i, worst)
		}
		if txt := DecodeCTC(got, len(charset)+1).Text; txt != man.Texts[i] {
			t.Errorf("sample %d: go decodes %q, pytorch %q", i, txt, man.Texts[i])
		}
		// Preprocessing parity: the saved model input (PNG, lossless).
		img, err := DecodeImage(readFile(t, filepath.Join(dir, "input-"+string(rune('0'+i))+".png")))
		if err != nil {
			t.Fatal(err)
		}
		pre, err := prepareInput(img, false)
		img.Close()
		if err != nil {
			t.Fatal(err)
		}
		b := gocv.BlobFromImage(pre, 1/127.5, image.Pt(InputW, InputH), gocv.NewScalar(127.5, 127.5, 127.5, 0), false, false)
		pre.Close()
		data, err := b.DataPtrFloat32()
		if err != nil {
			t.Fatal(err)
		}
		worstIn := 0.0
		for k := range data {
			worstIn = max(worstIn, math.Abs(float64(data[k]-in[i*per+k])))
		}
		b.Close()
		if worstIn > 1e-6 {
			t.Errorf("sample %d: preprocessing differs by %g", i, worstIn)
		}
	}
}
