package vision

import (
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var fitSmoke = flag.Bool("fit-smoke", false, "refit the smoke model on ../shared/data and print smokeWeights")

// smokeRepoRoot finds the module root above the package directory.
func smokeRepoRoot(tb testing.TB) string {
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

// sharedData returns ../shared/data beside the repository or skips.
func sharedData(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(smokeRepoRoot(tb), "..", "shared", "data")
	if _, err := os.Stat(filepath.Join(p, "smoke")); err != nil {
		tb.Skipf("real smoke stills not available at %s (see shared/data/README.md): %v", p, err)
	}
	return p
}

type stillSample struct {
	still SmokeStill
	feats [][]float64
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
		_, feats, err := stillFeatures(img)
		img.Close()
		if err != nil {
			tb.Fatalf("%s: %v", s.Path, err)
		}
		smp := stillSample{still: s}
		for _, f := range feats {
			smp.feats = append(smp.feats, f.vector())
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

// fitSmokeModel fits the logistic plume model by multiple-instance
// learning: every component of a clean image is a negative; the
// best-scoring component of a smoky image is its positive (re-chosen each
// round). Negatives are weighted up by negWeight, since a false accusation
// costs more than a miss. L2 regularised, plain gradient descent.
func fitSmokeModel(samples []stillSample, negWeight float64) []float64 {
	dim := len(smokeFeatureNames)
	w := make([]float64, dim+1)
	copy(w, smokeWeights)
	// Standardise for conditioning; fold back at the end.
	mean, std := make([]float64, dim), make([]float64, dim)
	n := 0
	for _, s := range samples {
		for _, x := range s.feats {
			for i, v := range x {
				mean[i] += v
			}
			n++
		}
	}
	for i := range mean {
		mean[i] /= float64(max(1, n))
	}
	for _, s := range samples {
		for _, x := range s.feats {
			for i, v := range x {
				std[i] += (v - mean[i]) * (v - mean[i])
			}
		}
	}
	for i := range std {
		std[i] = math.Sqrt(std[i]/float64(max(1, n))) + 1e-6
	}
	z := func(x []float64) []float64 {
		o := make([]float64, dim)
		for i := range x {
			o[i] = (x[i] - mean[i]) / std[i]
		}
		return o
	}
	ws := make([]float64, dim+1)
	for round := 0; round < 6; round++ {
		type ex struct {
			x  []float64
			y  float64
			wt float64
		}
		var exs []ex
		for _, s := range samples {
			if len(s.feats) == 0 {
				continue
			}
			if s.still.Smoky {
				best, bi := -1.0, 0
				for i, x := range s.feats {
					if p := logistic(ws, z(x)); p > best {
						best, bi = p, i
					}
				}
				if round == 0 { // start from the darkest, largest
					bi = 0
					for i, x := range s.feats {
						if x[0]+0.2*x[6] > s.feats[bi][0]+0.2*s.feats[bi][6] {
							bi = i
						}
					}
				}
				exs = append(exs, ex{z(s.feats[bi]), 1, 1})
			} else {
				for _, x := range s.feats {
					exs = append(exs, ex{z(x), 0, negWeight / float64(len(s.feats))})
				}
			}
		}
		for it := 0; it < 3000; it++ {
			g := make([]float64, dim+1)
			for _, e := range exs {
				d := (logistic(ws, e.x) - e.y) * e.wt
				g[0] += d
				for i, v := range e.x {
					g[i+1] += d * v
				}
			}
			for i := range ws {
				reg := 0.0
				if i > 0 {
					reg = 0.01 * ws[i]
				}
				ws[i] -= 0.5 * (g[i]/float64(len(exs)) + reg)
			}
		}
	}
	// Fold the standardisation back into raw-feature weights.
	w[0] = ws[0]
	for i := 0; i < dim; i++ {
		w[i+1] = ws[i+1] / std[i]
		w[0] -= ws[i+1] * mean[i] / std[i]
	}
	return w
}

type prf struct{ tp, fp, fn, tn int }

func (m prf) precision() float64 { return float64(m.tp) / float64(max(1, m.tp+m.fp)) }
func (m prf) recall() float64    { return float64(m.tp) / float64(max(1, m.tp+m.fn)) }
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

// TestFitSmokeModel refits the model with -fit-smoke and prints 5-fold
// cross-validated and leave-one-set-out numbers, then the weights.
//
//	go test ./edge/vision/ -run TestFitSmokeModel -fit-smoke -v
func TestFitSmokeModel(t *testing.T) {
	if !*fitSmoke {
		t.Skip("refit with -fit-smoke")
	}
	samples := loadStillSamples(t)
	rng := rand.New(rand.NewSource(3))
	rng.Shuffle(len(samples), func(i, j int) { samples[i], samples[j] = samples[j], samples[i] })
	negW := 2.0
	for _, thr := range []float64{0.5, 0.6, 0.7} {
		var cv prf
		for k := 0; k < 5; k++ {
			var train, test []stillSample
			for i, s := range samples {
				if i%5 == k {
					test = append(test, s)
				} else {
					train = append(train, s)
				}
			}
			m := score(fitSmokeModel(train, negW), test, thr)
			cv.tp, cv.fp, cv.fn, cv.tn = cv.tp+m.tp, cv.fp+m.fp, cv.fn+m.fn, cv.tn+m.tn
		}
		t.Logf("5-fold CV thr %.2f: P %.3f R %.3f F1 %.3f (%+v)", thr, cv.precision(), cv.recall(), cv.f1(), cv)
	}
	w := fitSmokeModel(samples, negW)
	for _, thr := range []float64{0.5, 0.6, 0.7} {
		m := score(w, samples, thr)
		t.Logf("in-sample thr %.2f: P %.3f R %.3f F1 %.3f (%+v)", thr, m.precision(), m.recall(), m.f1(), m)
	}
	var b strings.Builder
	for i, v := range w {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%.4g", v)
	}
	t.Logf("var smokeWeights = []float64{%s} // bias, %s", b.String(), strings.Join(smokeFeatureNames, ", "))
}

func TestSmokeFeatureDump(t *testing.T) {
	if os.Getenv("SMOKE_DUMP") == "" {
		t.Skip()
	}
	samples := loadStillSamples(t)
	w := smokeWeights
	if os.Getenv("SMOKE_DUMP") == "fit" {
		w = fitSmokeModel(samples, 2)
	}
	type agg struct {
		n, hit int
		f      []float64
	}
	sets := map[string]*agg{}
	for _, s := range samples {
		a := sets[s.still.Set]
		if a == nil {
			a = &agg{f: make([]float64, len(smokeFeatureNames)+1)}
			sets[s.still.Set] = a
		}
		a.n++
		if imageScore(w, s) >= 0.6 {
			a.hit++
		}
		// features of the best component
		best, bi := -1.0, -1
		for i, x := range s.feats {
			if p := logistic(w, x); p > best {
				best, bi = p, i
			}
		}
		a.f[0] += float64(len(s.feats))
		if bi >= 0 {
			for i, v := range s.feats[bi] {
				a.f[i+1] += v
			}
		}
	}
	for k, a := range sets {
		var b strings.Builder
		for i, v := range a.f {
			name := "ncomp"
			if i > 0 {
				name = smokeFeatureNames[i-1]
			}
			fmt.Fprintf(&b, " %s=%.3f", name, v/float64(a.n))
		}
		t.Logf("%-15s n=%d flagged=%d%s", k, a.n, a.hit, b.String())
	}
}
