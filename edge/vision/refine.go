package vision

import (
	"image"
	"image/color"
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
	var gp [4]image.Point
	for i, p := range g {
		gp[i] = image.Pt(int(math.Round(p[0])), int(math.Round(p[1])))
	}
	lim := 4 * max(img.Cols(), img.Rows())
	for _, p := range gp {
		if p.X < -lim || p.Y < -lim || p.X > lim || p.Y > lim {
			return q, false
		}
	}
	if quadArea(gp) < 16 {
		return q, false
	}
	src := make([]gocv.Point2f, 4)
	for i, p := range gp {
		src[i] = gocv.Point2f{X: float32(p.X), Y: float32(p.Y)}
	}
	dst := []gocv.Point2f{{X: 0, Y: 0}, {X: w, Y: 0}, {X: w, Y: h}, {X: 0, Y: h}}
	sv := gocv.NewPoint2fVectorFromPoints(src)
	defer sv.Close()
	dv := gocv.NewPoint2fVectorFromPoints(dst)
	defer dv.Close()
	m := gocv.GetPerspectiveTransform2f(sv, dv)
	defer m.Close()
	warped := gocv.NewMat()
	defer warped.Close()
	gocv.WarpPerspectiveWithParams(img, &warped, m, image.Pt(w, h), gocv.InterpolationLinear, gocv.BorderReplicate, color.RGBA{})
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
