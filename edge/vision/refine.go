package vision

import (
	"image"
	"math"

	"gocv.io/x/gocv"
)

// refineVertical re-estimates the top and bottom of a single-row plate from
// its characters: it rectifies the quad grown to 1.8 times its height,
// finds the band of rows with dense vertical edges (the characters, 90 of
// the plate's 140 mm), and returns the quad of the plate around that band.
// Colour masks often find only part of a plate (the white top of a green
// one, a shadowed half) or spill below it; the band does not.
func refineVertical(img gocv.Mat, q [4]image.Point) ([4]image.Point, bool) {
	const w, h = 128, 64
	var f [4][2]float64
	for i, p := range q {
		f[i] = [2]float64{float64(p.X), float64(p.Y)}
	}
	g := growQuad(f, 0, 0.4)
	data, ok := verticalEdges(img, g, w, h)
	if !ok {
		return q, false
	}
	rows := make([]float64, h)
	peak := 0.0
	for y := 0; y < h; y++ {
		for x := 4; x < w-4; x++ {
			rows[y] += float64(data[y*w+x])
		}
		peak = max(peak, rows[y])
	}
	if peak == 0 {
		return q, false
	}
	// The run of rows above half the peak with the largest total.
	thr := 0.5 * peak
	bestSum, r0, r1 := 0.0, -1, -1
	for y := 0; y < h; {
		if rows[y] < thr {
			y++
			continue
		}
		s, e := 0.0, y
		for e < h && rows[e] >= thr {
			s += rows[e]
			e++
		}
		if s > bestSum {
			bestSum, r0, r1 = s, y, e
		}
		y = e
	}
	band := float64(r1 - r0)
	if r0 < 0 || band < 6 || band > 0.8*h {
		return q, false
	}
	top := (float64(r0) - 0.3*band) / h
	bot := (float64(r1) + 0.3*band) / h
	at := func(a, b [2]float64, t float64) image.Point {
		return image.Pt(int(math.Round(a[0]+t*(b[0]-a[0]))), int(math.Round(a[1]+t*(b[1]-a[1]))))
	}
	return [4]image.Point{at(g[0], g[3], top), at(g[1], g[2], top), at(g[1], g[2], bot), at(g[0], g[3], bot)}, true
}

// refineHorizontal re-estimates the left and right ends of a single-row
// plate from its characters: it rectifies the quad widened by half its
// width on each side, finds the run of columns with dense vertical edges
// (the characters span 409 of the plate's 440 mm), and returns the quad of
// the plate around that run. It finds the part of a plate that a colour
// mask lost (a cast or a shadow over one end) and trims a mask that spilt
// onto a same-coloured car body beside the plate.
func refineHorizontal(img gocv.Mat, q [4]image.Point) ([4]image.Point, bool) {
	const grow = 0.5
	const w, h = 256, 32
	var f [4][2]float64
	for i, p := range q {
		f[i] = [2]float64{float64(p.X), float64(p.Y)}
	}
	g := growQuad(f, grow, 0)
	data, ok := verticalEdges(img, g, w, h)
	if !ok {
		return q, false
	}
	// Column energy over the middle rows (the characters, not the frame).
	cols := make([]float64, w)
	for y := h / 5; y < h-h/5; y++ {
		for x := 0; x < w; x++ {
			cols[x] += float64(data[y*w+x])
		}
	}
	// Smooth over about one character pitch (57 mm on a plate 140 mm
	// high, in the strip's horizontal scale), so that the gaps between
	// characters and the separator dot do not split the run.
	plateW := float64(w) / (1 + 2*grow)
	qw := (math.Hypot(f[1][0]-f[0][0], f[1][1]-f[0][1]) + math.Hypot(f[2][0]-f[3][0], f[2][1]-f[3][1])) / 2
	qh := (math.Hypot(f[3][0]-f[0][0], f[3][1]-f[0][1]) + math.Hypot(f[2][0]-f[1][0], f[2][1]-f[1][1])) / 2
	if qw < 1 || qh < 1 {
		return q, false
	}
	win := max(3, min(w/4, int(math.Round(57.0/140*qh*plateW/qw))))
	sm := make([]float64, w)
	run := 0.0
	for x := 0; x < w; x++ {
		run += cols[x]
		if x >= win {
			run -= cols[x-win]
		}
		sm[max(0, x-win/2)] = run / float64(win)
	}
	peak := 0.0
	for _, v := range sm {
		peak = max(peak, v)
	}
	if peak == 0 {
		return q, false
	}
	// The run above a third of the peak with the largest total.
	thr := peak / 3
	bestSum, c0, c1 := 0.0, -1, -1
	for x := 0; x < w; {
		if sm[x] < thr {
			x++
			continue
		}
		s, e := 0.0, x
		for e < w && sm[e] >= thr {
			s += sm[e]
			e++
		}
		if s > bestSum {
			bestSum, c0, c1 = s, x, e
		}
		x = e
	}
	if c0 < 0 {
		return q, false
	}
	// The smoothing carries the run about a third of its window past the
	// outer characters' edges.
	c0, c1 = c0+win/3, c1-win/3
	span := float64(c1 - c0)
	// The characters of a readable plate cover at least half of the
	// original quad's width and at most the whole widened strip.
	if span < 0.5*plateW || span > 0.97*float64(w) {
		return q, false
	}
	margin := span * (15.5 / 409)
	left := (float64(c0) - margin) / w
	right := (float64(c1) + margin) / w
	at := func(a, b [2]float64, t float64) image.Point {
		return image.Pt(int(math.Round(a[0]+t*(b[0]-a[0]))), int(math.Round(a[1]+t*(b[1]-a[1]))))
	}
	return [4]image.Point{at(g[0], g[1], left), at(g[0], g[1], right), at(g[3], g[2], right), at(g[3], g[2], left)}, true
}

// verticalEdges warps the quad g to w×h and returns the absolute
// horizontal Sobel response of its grey levels, row-major.
func verticalEdges(img gocv.Mat, g [4][2]float64, w, h int) ([]byte, bool) {
	var gp [4]image.Point
	for i, p := range g {
		gp[i] = image.Pt(int(math.Round(p[0])), int(math.Round(p[1])))
	}
	warped, err := warpQuad(img, gp, w, h)
	//lint:ignore SA5001 the function returns a Mat to close even with its error (gocv), so the deferred Close comes first
	defer warped.Close()
	if err != nil {
		return nil, false
	}
	gray := gocv.NewMat()
	defer gray.Close()
	gocv.CvtColor(warped, &gray, gocv.ColorBGRToGray)
	sob := gocv.NewMat()
	defer sob.Close()
	gocv.Sobel(gray, &sob, gocv.MatTypeCV16S, 1, 0, 3, 1, 0, gocv.BorderReplicate)
	abs := gocv.NewMat()
	defer abs.Close()
	gocv.ConvertScaleAbs(sob, &abs, 1, 0)
	data := abs.ToBytes()
	if len(data) != w*h {
		return nil, false
	}
	return data, true
}

// widenToAspect returns the quad q widened to the given aspect (long side
// over short side) three ways: to the left, to the right and about its
// centre. A colour mask that lost one end of a plate (a cast, a shadow,
// a reflection) leaves a quad too short for a plate; the recogniser picks
// the widening that reads best.
func widenToAspect(q [4]image.Point, aspect float64) [][4]image.Point {
	var f [4][2]float64
	for i, p := range q {
		f[i] = [2]float64{float64(p.X), float64(p.Y)}
	}
	qw := (math.Hypot(f[1][0]-f[0][0], f[1][1]-f[0][1]) + math.Hypot(f[2][0]-f[3][0], f[2][1]-f[3][1])) / 2
	qh := (math.Hypot(f[3][0]-f[0][0], f[3][1]-f[0][1]) + math.Hypot(f[2][0]-f[1][0], f[2][1]-f[1][1])) / 2
	if qw < 1 || qh < 1 || qw >= aspect*qh {
		return nil
	}
	grow := aspect*qh/qw - 1 // of the width, in total
	at := func(a, b [2]float64, t float64) image.Point {
		return image.Pt(int(math.Round(a[0]+t*(b[0]-a[0]))), int(math.Round(a[1]+t*(b[1]-a[1]))))
	}
	var out [][4]image.Point
	for _, left := range []float64{grow, 0, grow / 2} {
		l, r := -left, 1+grow-left
		out = append(out, [4]image.Point{at(f[0], f[1], l), at(f[0], f[1], r), at(f[3], f[2], r), at(f[3], f[2], l)})
	}
	return out
}
