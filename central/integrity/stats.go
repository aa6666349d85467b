package integrity

import (
	"math"
	"slices"
)

// median returns the median of xs, reordering xs. It returns NaN for none.
func median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// robustSigma returns 1.4826·MAD of xs around m, a standard deviation that
// a few outliers do not move. It reorders xs.
func robustSigma(xs []float64, m float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	dev := make([]float64, len(xs))
	for i, x := range xs {
		dev[i] = math.Abs(x - m)
	}
	return 1.4826 * median(dev)
}

// binomialUpperTail returns P(X ≥ k) for X ~ Binomial(n, p), summed in
// log space so it stays exact for tiny tails.
func binomialUpperTail(k, n int, p float64) float64 {
	switch {
	case k <= 0:
		return 1
	case k > n:
		return 0
	case p <= 0:
		return 0
	case p >= 1:
		return 1
	}
	lp, lq := math.Log(p), math.Log1p(-p)
	lgn, _ := math.Lgamma(float64(n + 1))
	sum := 0.0
	for i := k; i <= n; i++ {
		a, _ := math.Lgamma(float64(i + 1))
		b, _ := math.Lgamma(float64(n - i + 1))
		term := math.Exp(lgn - a - b + float64(i)*lp + float64(n-i)*lq)
		sum += term
		if term < sum*1e-17 && float64(i) > float64(n)*p {
			break
		}
	}
	return math.Min(1, sum)
}
