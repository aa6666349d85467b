//go:build smoketools

// The smoke model's fitting tools: they print weights and feature dumps
// for models/smoke and assert nothing, so they are not part of the test
// suite. Run them with the smoketools tag, for example
//
//	go test -tags smoketools ./edge/vision/ -run TestFitSmokeModel -fit-smoke -v

package vision

import (
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"strings"
	"testing"
)

var fitSmoke = flag.Bool("fit-smoke", false, "refit the smoke model on ../shared/data and print smokeWeights")

// hardNegWeight weighs the components of smoky images that lie away from
// every annotated smoke box as negatives (dark cars, shadows and road of
// the positive sources; 0 leaves them out).
var hardNegWeight = 0.0

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
				// Candidates for the positive: the components on an
				// annotated smoke box (all when it has none or none
				// overlaps). With annotations, components well away from
				// every box are hard negatives from the same source.
				onSmoke := make([]bool, len(s.feats))
				anyOn := false
				for i := range s.feats {
					for _, a := range s.smoke {
						if s.boxes[i].overlaps(a) {
							onSmoke[i], anyOn = true, true
						}
					}
				}
				best, bi := -1.0, 0
				for i, x := range s.feats {
					if anyOn && !onSmoke[i] {
						continue
					}
					if p := logistic(ws, z(x)); p > best {
						best, bi = p, i
					}
				}
				if anyOn && hardNegWeight > 0 {
					for i, x := range s.feats {
						if !onSmoke[i] {
							exs = append(exs, ex{z(x), 0, hardNegWeight})
						}
					}
				}
				if round == 0 { // start from the darkest, largest
					bi = -1
					for i, x := range s.feats {
						if anyOn && !onSmoke[i] {
							continue
						}
						if bi < 0 || x[0]+0.2*x[6] > s.feats[bi][0]+0.2*s.feats[bi][6] {
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

// oofScores returns each sample's image score from a model that did not
// see it: fold(i) names sample i's fold, and every fold is predicted by a
// model fitted on the others.
func oofScores(samples []stillSample, fold func(i int) string, negW float64) []float64 {
	folds := map[string]bool{}
	for i := range samples {
		folds[fold(i)] = true
	}
	out := make([]float64, len(samples))
	for k := range folds {
		var train []stillSample
		for i, s := range samples {
			if fold(i) != k {
				train = append(train, s)
			}
		}
		w := fitSmokeModel(train, negW)
		for i, s := range samples {
			if fold(i) == k {
				out[i] = imageScore(w, s)
			}
		}
	}
	return out
}

// scoreAt counts the verdicts of scores at thr, for the samples in keep
// (all when nil).
func scoreAt(samples []stillSample, scores []float64, thr float64, keep func(s stillSample) bool) prf {
	var m prf
	for i, s := range samples {
		if keep != nil && !keep(s) {
			continue
		}
		pred := scores[i] >= thr
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

// precisionThreshold is the lowest threshold on the grid at which scores
// reach precision p (1 when none does).
func precisionThreshold(samples []stillSample, scores []float64, p float64) float64 {
	for thr := 0.30; thr < 0.995; thr += 0.01 {
		if m := scoreAt(samples, scores, thr, nil); m.tp > 0 && m.precision() >= p {
			return thr
		}
	}
	return 1
}

func logPRF(t *testing.T, what string, m prf) {
	t.Helper()
	t.Logf("%-34s P %.3f R %.3f F1 %.3f (TP %d FP %d FN %d TN %d)", what, m.precision(), m.recall(), m.f1(), m.tp, m.fp, m.fn, m.tn)
}

func logPerFolder(t *testing.T, what string, samples []stillSample, scores []float64, thr float64) {
	t.Helper()
	for _, set := range []string{"web", "overpass-video", "cctv", "tollbooth", "ccpd"} {
		m := scoreAt(samples, scores, thr, func(s stillSample) bool { return s.still.Set == set })
		if s := m.tp + m.fn; s > 0 {
			t.Logf("  %s %-15s smoky flagged %d/%d (recall %.3f)", what, set, m.tp, s, m.recall())
		} else {
			t.Logf("  %s %-15s clean flagged %d/%d (false-positive rate %.3f)", what, set, m.fp, m.fp+m.tn, float64(m.fp)/float64(max(1, m.fp+m.tn)))
		}
	}
}

// TestFitSmokeModel refits the model with -fit-smoke and prints held-out
// numbers, then the weights:
//
//   - 5-fold cross-validation (folds stratified by folder);
//
//   - cross-source: web + tollbooth against overpass-video + cctv + ccpd,
//     every image scored by a model that saw no image of its sources, the
//     stricter estimate for frames from cameras the model never saw;
//
//   - the operating threshold: the lowest at which the 5-fold held-out
//     precision reaches 0.95, and the numbers there, overall and per
//     folder, held-out and in-sample.
//
//     go test ./edge/vision/ -run TestFitSmokeModel -fit-smoke -v
func TestFitSmokeModel(t *testing.T) {
	if !*fitSmoke {
		t.Skip("refit with -fit-smoke")
	}
	samples := loadStillSamples(t)
	negW := 2.0
	// Stratified folds: round-robin within each folder.
	seen := map[string]int{}
	kfold := make([]string, len(samples))
	rng := rand.New(rand.NewSource(3))
	perm := rng.Perm(len(samples))
	for _, i := range perm {
		set := samples[i].still.Set
		kfold[i] = fmt.Sprint(seen[set] % 5)
		seen[set]++
	}
	cv := oofScores(samples, func(i int) string { return kfold[i] }, negW)
	// Cross-source: the web photos and the toll-booth frames against the
	// overpass, CCTV and CCPD frames, each half scored by a model fitted
	// on the other (both halves hold smoky and clean images).
	half := map[string]string{"web": "A", "tollbooth": "A", "overpass-video": "B", "cctv": "B", "ccpd": "B"}
	lofo := oofScores(samples, func(i int) string { return half[samples[i].still.Set] }, negW)
	for _, thr := range []float64{0.5, 0.6, 0.7, 0.8} {
		logPRF(t, fmt.Sprintf("5-fold CV thr %.2f:", thr), scoreAt(samples, cv, thr, nil))
		logPRF(t, fmt.Sprintf("cross-source thr %.2f:", thr), scoreAt(samples, lofo, thr, nil))
	}
	thr := precisionThreshold(samples, cv, 0.95)
	t.Logf("operating threshold (5-fold CV precision >= 0.95): %.2f", thr)
	logPRF(t, "5-fold CV at it:", scoreAt(samples, cv, thr, nil))
	logPerFolder(t, "5-fold CV", samples, cv, thr)
	logPRF(t, "cross-source at it:", scoreAt(samples, lofo, thr, nil))
	logPerFolder(t, "cross-source", samples, lofo, thr)
	w := fitSmokeModel(samples, negW)
	in := make([]float64, len(samples))
	for i, s := range samples {
		in[i] = imageScore(w, s)
	}
	logPRF(t, "in-sample at it:", scoreAt(samples, in, thr, nil))
	logPerFolder(t, "in-sample", samples, in, thr)
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

func (a fracBox) overlaps(b fracBox) bool {
	return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1
}
