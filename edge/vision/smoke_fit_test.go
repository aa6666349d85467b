package vision

import (
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sharedData returns ../shared/data beside the repository or skips.
func sharedData(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(repoRoot(tb), "..", "shared", "data")
	if _, err := os.Stat(filepath.Join(p, "smoke")); err != nil {
		tb.Skipf("real smoke stills not available at %s (see shared/data/README.md): %v", p, err)
	}
	return p
}

type stillSample struct {
	still SmokeStill
	feats [][]float64
	// boxes are the components' boxes and smoke the annotated smoke (or
	// smoky-vehicle) boxes, as fractions of the image.
	boxes []fracBox
	smoke []fracBox
}

type fracBox struct{ x0, y0, x1, y1 float64 }

// smokeAnnotations reads a still's annotated smoke boxes: Pascal VOC
// "smoke" objects for web/, YOLO class-1 (smoky vehicle) boxes beside the
// image otherwise. None for clean sets or missing files.
func smokeAnnotations(s SmokeStill) []fracBox {
	if !s.Smoky {
		return nil
	}
	base := strings.TrimSuffix(filepath.Base(s.Path), filepath.Ext(s.Path))
	if s.Set == "web" || s.Set == "general" {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(s.Path)), s.Set+"-annotations", base+".xml"))
		if err != nil {
			return nil
		}
		type box struct {
			Name string  `xml:"name"`
			X0   float64 `xml:"bndbox>xmin"`
			Y0   float64 `xml:"bndbox>ymin"`
			X1   float64 `xml:"bndbox>xmax"`
			Y1   float64 `xml:"bndbox>ymax"`
		}
		var doc struct {
			W   float64 `xml:"size>width"`
			H   float64 `xml:"size>height"`
			Obj []box   `xml:"object"`
		}
		if xml.Unmarshal(b, &doc) != nil || doc.W <= 0 || doc.H <= 0 {
			return nil
		}
		var out []fracBox
		for _, o := range doc.Obj {
			if o.Name == "smoke" {
				out = append(out, fracBox{o.X0 / doc.W, o.Y0 / doc.H, o.X1 / doc.W, o.Y1 / doc.H})
			}
		}
		return out
	}
	b, err := os.ReadFile(strings.TrimSuffix(s.Path, filepath.Ext(s.Path)) + ".txt")
	if err != nil {
		return nil
	}
	var out []fracBox
	for _, line := range strings.Split(string(b), "\n") {
		var c int
		var cx, cy, w, h float64
		if n, _ := fmt.Sscan(line, &c, &cx, &cy, &w, &h); n == 5 && c == 1 {
			// The plume trails behind and below the vehicle: widen the
			// box by half and extend it down by its height.
			out = append(out, fracBox{cx - 0.75*w, cy - h/2, cx + 0.75*w, cy + 1.5*h})
		}
	}
	return out
}

func loadStillSamples(tb testing.TB) []stillSample {
	tb.Helper()
	stills, err := SmokeStills(sharedData(tb))
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]stillSample, 0, len(stills))
	for _, s := range stills {
		b, err := os.ReadFile(s.Path)
		if err != nil {
			tb.Fatal(err)
		}
		img, err := decodeFrame(b)
		if err != nil {
			img.Close()
			tb.Fatalf("%s: %v", s.Path, err)
		}
		wf, feats, err := stillFeatures(img, logisticLevels...)
		img.Close()
		if err != nil {
			tb.Fatalf("%s: %v", s.Path, err)
		}
		smp := stillSample{still: s, smoke: smokeAnnotations(s)}
		for _, f := range feats {
			smp.feats = append(smp.feats, f.vector())
			fw, fh := float64(wf.w), float64(wf.h)
			smp.boxes = append(smp.boxes, fracBox{float64(f.box.Min.X) / fw, float64(f.box.Min.Y) / fh, float64(f.box.Max.X) / fw, float64(f.box.Max.Y) / fh})
		}
		out = append(out, smp)
	}
	return out
}

func logistic(w, x []float64) float64 {
	z := w[0]
	for i, v := range x {
		z += w[i+1] * v
	}
	return 1 / (1 + math.Exp(-z))
}

// imageScore is the best component score of an image (0 with none).
func imageScore(w []float64, s stillSample) float64 {
	best := 0.0
	for _, x := range s.feats {
		best = max(best, logistic(w, x))
	}
	return best
}

type prf struct{ tp, fp, fn, tn int }

func (m prf) precision() float64 { return float64(m.tp) / float64(max(1, m.tp+m.fp)) }

func (m prf) recall() float64 { return float64(m.tp) / float64(max(1, m.tp+m.fn)) }

func (m prf) f1() float64 {
	p, r := m.precision(), m.recall()
	if p+r == 0 {
		return 0
	}
	return 2 * p * r / (p + r)
}

func score(w []float64, samples []stillSample, thr float64) prf {
	var m prf
	for _, s := range samples {
		pred := imageScore(w, s) >= thr
		switch {
		case pred && s.still.Smoky:
			m.tp++
		case pred:
			m.fp++
		case s.still.Smoky:
			m.fn++
		default:
			m.tn++
		}
	}
	return m
}

// TestSmokeFeatureNames: the logistic model has one weight per named
// feature, plus its bias, and vector() gives one value per name.
func TestSmokeFeatureNames(t *testing.T) {
	if got, want := len(smokeWeights), len(smokeFeatureNames)+1; got != want {
		t.Fatalf("%d weights for %d features (+1 bias)", got, len(smokeFeatureNames))
	}
	if got := len(smokeFeatures{}.vector()); got != len(smokeFeatureNames) {
		t.Fatalf("vector() has %d entries, %d names", got, len(smokeFeatureNames))
	}
}
