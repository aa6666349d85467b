package vision

import (
	"image"
	"math"
	"slices"

	"gocv.io/x/gocv"

	"github.com/plume-emissions/plume"
)

// fitToCharacters re-estimates a plate's corners from the characters inside
// a rough quad (of a double-row plate, from its bottom row). A colour
// outline is only as good as its mask: it spills onto a same-coloured car
// body, misses the pale top of a new-energy plate, or follows a dirty edge,
// and the recogniser then reads a skewed or loose crop. The characters are
// what the recogniser needs, and they sit between two straight lines at
// fixed GA 36 distances from the plate's edges. The quad's region, grown,
// is straightened into a strip; the character-sized blobs of the plate's
// ink polarity that share a height and a line give the tilt, the slant and
// the top and bottom lines; matching their centres to the layout's
// character slots gives the ends (the province character, which often
// falls apart into strokes, is not needed). The fit is run twice, the
// second time from the first fit's quad. It reports false, and returns q,
// when no row of at least four characters fits the layout.
func fitToCharacters(img gocv.Mat, q [4]image.Point, colour plume.PlateColour, double bool) ([4]image.Point, bool) {
	layouts := []plateLayout{singleLayout, energyLayout}
	switch {
	case double:
		layouts = []plateLayout{doubleLayout}
	case colour == plume.PlateGreen:
		layouts = []plateLayout{energyLayout, singleLayout}
	}
	out, n, ok := fitOnce(img, q, colour, layouts)
	if !ok {
		return q, false
	}
	// The second pass sees the plate straightened, but also more of what
	// is beside it; it is kept only when it places as many characters.
	if again, n2, ok := fitOnce(img, out, colour, layouts); ok && n2 >= n {
		out = again
	}
	return out, true
}

// fitStrip is the straightened region around a rough quad: strip pixel
// (x, y) is image point c + (x-w/2)/s·u + (y-h/2)/s·v.
type fitStrip struct {
	cx, cy, ux, uy, vx, vy, s float64
	w, h                      int
}

func (f fitStrip) toImage(x, y float64) image.Point {
	dx, dy := (x-float64(f.w)/2)/f.s, (y-float64(f.h)/2)/f.s
	return image.Pt(int(math.Round(f.cx+dx*f.ux+dy*f.vx)), int(math.Round(f.cy+dx*f.uy+dy*f.vy)))
}

// stripPlateH is the rough plate height in strip pixels.
const stripPlateH = 40.0

// fitOnce fits once and also returns how many characters were placed.
func fitOnce(img gocv.Mat, q [4]image.Point, colour plume.PlateColour, layouts []plateLayout) ([4]image.Point, int, bool) {
	var f [4][2]float64
	for i, p := range q {
		f[i] = [2]float64{float64(p.X), float64(p.Y)}
	}
	ux, uy := (f[1][0]-f[0][0]+f[2][0]-f[3][0])/2, (f[1][1]-f[0][1]+f[2][1]-f[3][1])/2
	w := math.Hypot(ux, uy)
	if w < 8 {
		return q, 0, false
	}
	ux, uy = ux/w, uy/w
	vx, vy := -uy, ux
	h := ((f[3][0]-f[0][0]+f[2][0]-f[1][0])*vx + (f[3][1]-f[0][1]+f[2][1]-f[1][1])*vy) / 2
	if h < 4 || w/h > 12 {
		return q, 0, false
	}
	// The strip's scale makes the characters the size they have on a
	// single-row plate stripPlateH high, whatever the layout.
	l0 := layouts[0]
	ph := stripPlateH * (singleLayout.charH / singleLayout.height()) / (l0.charH / l0.height())
	st := fitStrip{
		cx: (f[0][0] + f[1][0] + f[2][0] + f[3][0]) / 4, cy: (f[0][1] + f[1][1] + f[2][1] + f[3][1]) / 4,
		ux: ux, uy: uy, vx: vx, vy: vy, s: ph / h,
	}
	st.w = min(512, int(math.Round(ph*w/h*1.3)))
	st.h = int(math.Round(ph * 2.2))
	if st.w < 16 {
		return q, 0, false // taller than wide: no row of characters
	}
	var strip [4]image.Point
	for i, xy := range [4][2]float64{{0, 0}, {float64(st.w), 0}, {float64(st.w), float64(st.h)}, {0, float64(st.h)}} {
		strip[i] = st.toImage(xy[0], xy[1])
	}
	warped, err := warpQuad(img, strip, st.w, st.h)
	//lint:ignore SA5001 the function returns a Mat to close even with its error (gocv), so the deferred Close comes first
	defer warped.Close()
	if err != nil {
		return q, 0, false
	}
	bgr := warped.ToBytes()
	if len(bgr) != st.w*st.h*3 {
		return q, 0, false
	}
	// Dark ink on yellow, green and white plates; light ink on blue and
	// black ones. The other polarity is tried when the first finds no row.
	dark := colour == plume.PlateYellow || colour == plume.PlateGreen || colour == plume.PlateWhite
	// On a white plate any dark channel is ink: the police plate's red 警.
	red := colour == plume.PlateWhite
	row, ok := findCharRow(inkMap(bgr, dark, red), st.w, st.h)
	if !ok {
		if row, ok = findCharRow(inkMap(bgr, !dark, false), st.w, st.h); !ok {
			return q, 0, false
		}
	}
	var left, right float64
	var n int
	var l plateLayout
	placed := false
	for _, l = range layouts {
		if left, right, n, placed = l.place(row, float64(st.w)/2-w*st.s/2, float64(st.w)/2+w*st.s/2); placed {
			break
		}
	}
	if !placed {
		return q, 0, false
	}
	kv := row.height / l.charH // strip pixels per millimetre, vertically
	top := func(x float64) float64 { return row.top + row.slope*x - l.above*kv }
	bot := func(x float64) float64 { return row.bottom + row.slope*x + l.below*kv }
	// The plate's ends lean with its characters: x moves by slant·(y-mid).
	mid := func(x float64) float64 { return (row.top+row.bottom)/2 + row.slope*x }
	at := func(x float64, y func(float64) float64) image.Point {
		return st.toImage(x+row.slant*(y(x)-mid(x)), y(x))
	}
	return [4]image.Point{at(left, top), at(right, top), at(right, bot), at(left, bot)}, n, true
}

// plateLayout is the GA 36 geometry of the row of characters fitted, in
// millimetres: the plate's width, the row's character height, the plate
// above and below the row, and the centres of its characters from the
// plate's left end.
type plateLayout struct {
	width, charH, above, below float64
	centres                    []float64
}

func (l plateLayout) height() float64 { return l.above + l.charH + l.below }

var (
	// 440×140: 45×90 mm characters at 57 mm pitch, the separator after
	// the second, 15.5 mm from each end.
	singleLayout = plateLayout{440, 90, 25, 25, []float64{38, 95, 174, 231, 288, 345, 402}}
	// New energy, 480×140: eight 43×90 mm characters at 52 mm pitch.
	energyLayout = plateLayout{480, 90, 25, 25, []float64{37, 89, 183, 235, 287, 339, 391, 443}}
	// Double row, 440×220: the bottom row's five 65×110 mm characters at
	// 80 mm pitch, 90 mm below the plate's top (the province and letter
	// row above them) and 20 above its bottom.
	doubleLayout = plateLayout{440, 110, 90, 20, []float64{60, 140, 220, 300, 380}}
)

// place finds the plate's left and right ends (strip pixels) by matching
// the row's characters to the layout's slots. Every two blobs matched to
// every two slots propose an offset and a scale (0.75 to 1.35 times what
// the character height gives: blur and bold strokes make that height a
// poor ruler over a whole plate); the proposal that puts most blobs
// within 7 mm of a slot wins, and a least-squares fit of its matches
// refines it. The province character, which often breaks into strokes,
// and a character lost to the frame then cost nothing. Among proposals
// that match as many blobs, the one whose ends are nearest the rough
// quad's (roughL, roughR) wins: a row that lost its first or last
// character matches the layout shifted by one slot as well as unshifted.
func (l plateLayout) place(row charRow, roughL, roughR float64) (left, right float64, matched int, ok bool) {
	k0 := row.height / l.charH
	match := func(o, k float64) (n int, res float64, pairs [][2]float64) {
		for _, x := range row.xs {
			best, bj := math.Inf(1), -1
			for j, c := range l.centres {
				if d := math.Abs(x - (o + c*k)); d < best {
					best, bj = d, j
				}
			}
			if best <= 7*k {
				n++
				res += best / k
				pairs = append(pairs, [2]float64{l.centres[bj], x})
			}
		}
		return n, res, pairs
	}
	bestN, bestCost := 0, math.Inf(1)
	var bestPairs [][2]float64
	for i, xi := range row.xs {
		for _, xj := range row.xs[i+1:] {
			for a, ca := range l.centres {
				for _, cb := range l.centres[a+1:] {
					k := (xj - xi) / (cb - ca)
					if k < 0.75*k0 || k > 1.35*k0 {
						continue
					}
					o := xi - ca*k
					n, res, pairs := match(o, k)
					if n == 0 {
						continue
					}
					// Mean distance from the slots (mm), plus the ends'
					// distance from the rough quad's as a fraction of the
					// plate's width, weighted so that one slot's shift
					// (about 0.2) outweighs a few millimetres of fit.
					cost := res/float64(n) + 40*(math.Abs(o-roughL)+math.Abs(o+l.width*k-roughR))/(l.width*k)
					if n > bestN || (n == bestN && cost < bestCost) {
						bestN, bestCost, bestPairs = n, cost, pairs
					}
				}
			}
		}
	}
	if bestN < 4 || bestN < len(row.xs)-2 {
		return 0, 0, 0, false
	}
	var sc, sx, scc, scx float64
	for _, p := range bestPairs {
		sc += p[0]
		sx += p[1]
		scc += p[0] * p[0]
		scx += p[0] * p[1]
	}
	n := float64(len(bestPairs))
	d := n*scc - sc*sc
	if d <= 0 {
		return 0, 0, 0, false
	}
	k := (n*scx - sc*sx) / d
	o := (sx - k*sc) / n
	if k < 0.7*k0 || k > 1.4*k0 {
		return 0, 0, 0, false
	}
	return o, o + l.width*k, bestN, true
}

// inkMap returns, per pixel, how much it looks like character ink: for dark
// ink 255 minus the brightest channel (a coloured background is bright in
// at least one), or with red 255 minus the darkest (on a white background
// a red character is ink too); for light ink the darkest channel (a white
// character is bright in all three).
func inkMap(bgr []byte, dark, red bool) []byte {
	out := make([]byte, len(bgr)/3)
	for i := range out {
		b, g, r := bgr[3*i], bgr[3*i+1], bgr[3*i+2]
		switch {
		case dark && red:
			out[i] = 255 - min(b, g, r)
		case dark:
			out[i] = 255 - max(b, g, r)
		default:
			out[i] = min(b, g, r)
		}
	}
	return out
}

// charRow is a fitted row of characters in strip pixels: the characters'
// top edge is top + slope·x, their bottom edge bottom + slope·x.
type charRow struct {
	top, bottom, slope float64
	// slant is the characters' median lean (dx/dy): the shear a camera
	// beside the lane gives a plate.
	slant  float64
	height float64   // median character height
	xs     []float64 // the characters' centres
}

type blob struct {
	x0, y0, x1, y1 int // inclusive-exclusive box
	area           int
	// Pixel sums for the slant: Σx, Σy, Σxy, Σy².
	sx, sy, sxy, syy float64
}

// slant is the blob's lean, dx/dy of the regression of x on y over its
// pixels: 0 for an upright character, positive when it leans right.
func (b blob) slant() float64 {
	n := float64(b.area)
	d := n*b.syy - b.sy*b.sy
	if d <= 0 {
		return 0
	}
	return (n*b.sxy - b.sx*b.sy) / d
}

func (b blob) cx() float64 { return float64(b.x0+b.x1) / 2 }
func (b blob) cy() float64 { return float64(b.y0+b.y1) / 2 }
func (b blob) h() float64  { return float64(b.y1 - b.y0) }

// findCharRow thresholds the ink map against its local mean (over about a
// character's height: a global threshold splits plate from car body, not
// character from plate) and returns the longest run of character-sized
// blobs that agree in height and lie along one line.
func findCharRow(ink []byte, w, h int) (charRow, bool) {
	bin := localThreshold(ink, w, h, int(stripPlateH*0.35), 10)
	cutLongRuns(bin, w, h, int(stripPlateH*0.85))
	var cands []blob
	for _, b := range components(bin, w, h) {
		bh, bw := b.y1-b.y0, b.x1-b.x0
		if float64(bh) < 0.3*stripPlateH || float64(bh) > 1.1*stripPlateH || float64(bw) > 0.9*float64(bh) {
			continue
		}
		if b.y0 == 0 || b.y1 == h || float64(b.area) < 0.12*float64(bw*bh) {
			continue
		}
		cands = append(cands, b)
	}
	var best []blob
	bestScore, bestRes := 0.0, math.Inf(1)
	for _, seed := range cands {
		var g []blob
		for _, b := range cands {
			if rowMate(seed, b) {
				g = append(g, b)
			}
		}
		g, res := alignRow(g)
		score := rowScore(g)
		if score > bestScore || (score == bestScore && res < bestRes) {
			best, bestScore, bestRes = g, score, res
		}
	}
	if len(best) < 4 {
		return charRow{}, false
	}
	row := measureRow(best)
	if math.Abs(row.slope) > 0.35 {
		return charRow{}, false
	}
	return row, true
}

// rowMate reports whether b could share a row of characters with seed: a
// height within 25 % and a centre within half the seed's height of its line.
func rowMate(seed, b blob) bool {
	return math.Abs(b.h()-seed.h()) <= 0.25*max(b.h(), seed.h()) && math.Abs(b.cy()-seed.cy()) <= 0.5*seed.h()
}

// measureRow fits the lines of a row of characters: the slope of their
// centres, and along it the median top, bottom, height and slant.
func measureRow(g []blob) charRow {
	_, slope := lineFit(g)
	var tops, bots, hs, slants []float64
	row := charRow{slope: slope}
	for _, b := range g {
		slants = append(slants, b.slant())
		tops = append(tops, float64(b.y0)-slope*b.cx())
		bots = append(bots, float64(b.y1)-slope*b.cx())
		hs = append(hs, b.h())
		row.xs = append(row.xs, b.cx())
	}
	row.top, row.bottom, row.height = median(tops), median(bots), median(hs)
	row.slant = max(-0.5, min(0.5, median(slants)))
	return row
}

// rowScore counts a row's blobs, a thin one (narrower than a quarter of its
// height: a 1, or one bar of a radiator grille or a fence) as half: a grille
// above or below the plate is a longer row of equal blobs than the plate's
// own characters, but of bars.
func rowScore(g []blob) float64 {
	s := 0.0
	for _, b := range g {
		if float64(b.x1-b.x0) < 0.25*b.h() {
			s += 0.5
		} else {
			s++
		}
	}
	return s
}

// alignRow keeps the blobs within 15 % of their median height of a line
// through their centres, then the longest run of them with no gap between
// neighbouring centres wider than 1.6 character heights (the widest GA 36
// gap, after the second character of a new-energy plate, is 1.04). It
// returns the run and its mean distance from the line.
func alignRow(g []blob) ([]blob, float64) {
	if len(g) < 2 {
		return g, math.Inf(1)
	}
	var hs []float64
	for _, b := range g {
		hs = append(hs, b.h())
	}
	hm := median(hs)
	a, s := lineFit(g)
	var kept []blob
	for _, b := range g {
		if math.Abs(b.cy()-(a+s*b.cx())) <= 0.15*hm {
			kept = append(kept, b)
		}
	}
	slices.SortFunc(kept, func(x, y blob) int { return x.x0 - y.x0 })
	var run, best []blob
	for i, b := range kept {
		if i > 0 && b.cx()-kept[i-1].cx() > 1.6*hm {
			run = nil
		}
		run = append(run, b)
		if len(run) > len(best) {
			best = slices.Clone(run)
		}
	}
	if len(best) < 2 {
		return best, math.Inf(1)
	}
	a, s = lineFit(best)
	res := 0.0
	for _, b := range best {
		res += math.Abs(b.cy() - (a + s*b.cx()))
	}
	return best, res / float64(len(best))
}

// lineFit is the least-squares line cy = a + s·cx through the blobs' centres.
func lineFit(g []blob) (a, s float64) {
	var sx, sy, sxx, sxy float64
	n := float64(len(g))
	for _, b := range g {
		x, y := b.cx(), b.cy()
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	d := n*sxx - sx*sx
	if n < 2 || d == 0 {
		return sy / max(n, 1), 0
	}
	s = (n*sxy - sx*sy) / d
	return (sy - s*sx) / n, s
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// cutLongRuns clears horizontal and vertical runs longer than n: the
// plate's border line and frame, which would join the characters that
// touch them into one blob. No character is that wide or, at the strip's
// scale, that tall.
func cutLongRuns(bin []bool, w, h, n int) {
	var long []int
	// scan collects the runs longer than n along one line of count
	// pixels starting at start, step apart.
	scan := func(start, step, count int) {
		for i := 0; i < count; {
			e := i
			for e < count && bin[start+e*step] {
				e++
			}
			if e-i > n {
				for j := i; j < e; j++ {
					long = append(long, start+j*step)
				}
			}
			i = e + 1
		}
	}
	for y := 0; y < h; y++ {
		scan(y*w, 1, w)
	}
	for x := 0; x < w; x++ {
		scan(x, w, h)
	}
	for _, i := range long {
		bin[i] = false
	}
}

// localThreshold marks the pixels brighter than the mean of the
// (2r+1)-square around them by more than c.
func localThreshold(v []byte, w, h, r, c int) []bool {
	// Summed-area table with a zero row and column.
	sat := make([]int, (w+1)*(h+1))
	for y := 0; y < h; y++ {
		run := 0
		for x := 0; x < w; x++ {
			run += int(v[y*w+x])
			sat[(y+1)*(w+1)+x+1] = sat[y*(w+1)+x+1] + run
		}
	}
	out := make([]bool, len(v))
	for y := 0; y < h; y++ {
		y0, y1 := max(0, y-r), min(h, y+r+1)
		for x := 0; x < w; x++ {
			x0, x1 := max(0, x-r), min(w, x+r+1)
			sum := sat[y1*(w+1)+x1] - sat[y0*(w+1)+x1] - sat[y1*(w+1)+x0] + sat[y0*(w+1)+x0]
			out[y*w+x] = int(v[y*w+x])*(x1-x0)*(y1-y0) > sum+c*(x1-x0)*(y1-y0)
		}
	}
	return out
}

// components labels the 8-connected regions of bin and returns their boxes.
// It is plain Go rather than gocv.ConnectedComponentsWithStats because the
// slant needs per-region pixel sums that OpenCV's statistics do not give.
func components(bin []bool, w, h int) []blob {
	seen := make([]bool, len(bin))
	var out []blob
	stack := make([]int, 0, 256)
	for i, on := range bin {
		if !on || seen[i] {
			continue
		}
		b := blob{x0: i % w, y0: i / w, x1: i%w + 1, y1: i/w + 1}
		seen[i] = true
		stack = append(stack[:0], i)
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			b.area++
			px, py := p%w, p/w
			fx, fy := float64(px), float64(py)
			b.sx += fx
			b.sy += fy
			b.sxy += fx * fy
			b.syy += fy * fy
			b.x0, b.y0 = min(b.x0, px), min(b.y0, py)
			b.x1, b.y1 = max(b.x1, px+1), max(b.y1, py+1)
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					nx, ny := px+dx, py+dy
					if nx < 0 || ny < 0 || nx >= w || ny >= h {
						continue
					}
					if j := ny*w + nx; bin[j] && !seen[j] {
						seen[j] = true
						stack = append(stack, j)
					}
				}
			}
		}
		out = append(out, b)
	}
	return out
}
