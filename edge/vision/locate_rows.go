package vision

import (
	"cmp"
	"fmt"
	"image"
	"math"
	"slices"

	"gocv.io/x/gocv"

	"github.com/plume-emissions/plume"
)

// LocateRows finds plate candidates from rows of character-shaped blobs,
// whatever the colour around them: a white police plate on a white car, a
// blue plate on a blue bus, a plate whose colour a cast has moved out of
// every mask. It is slower and less precise than Locate, so Reader only
// uses it when Locate's candidates gave no grammatical read. Each row of
// at least four characters of one height along one line gives a rough
// quad around the plate it would belong to (the character fit in the
// reader then finds the plate's ends).
func LocateRows(img gocv.Mat, opt LocateOptions) ([]Candidate, error) {
	if err := checkBGR(img); err != nil {
		return nil, fmt.Errorf("locate rows: %w", err)
	}
	wf := newPlateFrame(img, &opt)
	defer wf.Close()
	work, hsv, gray, scale := wf.bgr, wf.hsv, wf.gray, wf.scale
	if work.Cols() < 32 || work.Rows() < 16 {
		return nil, nil
	}

	type row struct {
		score float64
		quad  [4][2]float64 // work pixels
	}
	var rows []row
	bin := gocv.NewMat()
	defer bin.Close()
	lines := gocv.NewMat()
	defer lines.Close()
	// Horizontal runs longer than any character is wide are the plate's
	// border and frame, which join the characters that touch them.
	lineK := gocv.GetStructuringElement(gocv.MorphRect, image.Pt(31, 1))
	defer lineK.Close()
	type pass struct {
		tt    gocv.ThresholdType
		block int
	}
	// Dark ink and light ink; a block of 31 pixels suits most plates, 15
	// small ones seen among bright surroundings (a grey frame's blue plate
	// on a white car: the car pulls the wide block's mean above the
	// characters).
	for _, ps := range []pass{{gocv.ThresholdBinaryInv, 31}, {gocv.ThresholdBinary, 31}, {gocv.ThresholdBinaryInv, 15}, {gocv.ThresholdBinary, 15}} {
		gocv.AdaptiveThreshold(gray, &bin, 255, gocv.AdaptiveThresholdMean, ps.tt, ps.block, 12)
		gocv.MorphologyEx(bin, &lines, gocv.MorphOpen, lineK)
		gocv.Subtract(bin, lines, &bin)
		for _, g := range charRows(charBlobs(bin)) {
			cr := measureRow(g)
			top, bot, ch, slope := cr.top, cr.bottom, cr.height, cr.slope
			// GA 36: characters 90 mm high on a 140 mm plate, 25 mm
			// of plate beyond the end characters. A row of fewer than
			// seven blobs has lost a character: most often the province
			// (it falls apart into strokes) one pitch to the left, then
			// a red 警 or 学 to the right.
			lx, rx := 0.35*ch, 0.35*ch
			if len(g) < 7 {
				lx += 0.75 * ch
			}
			if len(g) < 6 {
				rx += 0.75 * ch
			}
			x0 := float64(g[0].x0) - lx
			x1 := float64(g[len(g)-1].x1) + rx
			m := 0.3 * ch
			y := func(x, c float64) float64 { return c + slope*x }
			rows = append(rows, row{score: rowScore(g), quad: [4][2]float64{
				{x0, y(x0, top) - m}, {x1, y(x1, top) - m}, {x1, y(x1, bot) + m}, {x0, y(x0, bot) + m},
			}})
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int { return cmp.Compare(b.score, a.score) })
	var out []Candidate
	for _, r := range rows {
		var q [4]image.Point
		for i, p := range r.quad {
			q[i] = image.Pt(int(math.Round(p[0]/scale)), int(math.Round(p[1]/scale)))
		}
		box := quadBounds(q)
		if slices.ContainsFunc(out, func(c Candidate) bool { return iou(c.Box, box) > 0.3 }) {
			continue // the same row in the other polarity
		}
		wr := scaleRect(box, scale).Intersect(image.Rect(0, 0, work.Cols(), work.Rows()))
		if wr.Dx() < 8 || wr.Dy() < 4 {
			continue
		}
		colour := plume.PlateColour("")
		if cr, ok := dominantColour(hsv, wr); ok {
			colour = cr.colour
		} else {
			reg := work.Region(wr)
			colour = classifyColour(reg)
			reg.Close()
		}
		w := math.Hypot(float64(q[1].X-q[0].X), float64(q[1].Y-q[0].Y))
		h := math.Hypot(float64(q[3].X-q[0].X), float64(q[3].Y-q[0].Y))
		out = append(out, Candidate{
			Box: box, Corners: q, Colour: colour, Aspect: w / max(h, 1),
			Score: 0.5 * clamp01(r.score/7),
		})
		if len(out) == opt.MaxCandidates {
			break
		}
	}
	return out, nil
}

// scaleRect multiplies a rectangle's coordinates by s.
func scaleRect(r image.Rectangle, s float64) image.Rectangle {
	f := func(v int) int { return int(math.Round(float64(v) * s)) }
	return image.Rect(f(r.Min.X), f(r.Min.Y), f(r.Max.X), f(r.Max.Y))
}

// charBlobs returns the connected components of a binary image that are
// shaped like plate characters: 9–60 pixels high, narrower than high, and
// neither a thin outline nor a solid block.
func charBlobs(bin gocv.Mat) []blob {
	labels := gocv.NewMat()
	defer labels.Close()
	stats := gocv.NewMat()
	defer stats.Close()
	centroids := gocv.NewMat()
	defer centroids.Close()
	n := gocv.ConnectedComponentsWithStats(bin, &labels, &stats, &centroids)
	var out []blob
	for i := 1; i < n; i++ {
		x, y := int(stats.GetIntAt(i, 0)), int(stats.GetIntAt(i, 1))
		w, h, area := int(stats.GetIntAt(i, 2)), int(stats.GetIntAt(i, 3)), int(stats.GetIntAt(i, 4))
		if h < 9 || h > 60 || float64(w) > 0.9*float64(h) {
			continue
		}
		if fill := float64(area) / float64(w*h); fill < 0.15 || fill > 0.95 {
			continue
		}
		out = append(out, blob{x0: x, y0: y, x1: x + w, y1: y + h, area: area})
	}
	return out
}

// charRows groups blobs into rows of one height along one line (see
// alignRow) and returns the rows that could be a plate's: at least four
// characters (a thin one counting half) and at most ten blobs.
func charRows(blobs []blob) [][]blob {
	slices.SortFunc(blobs, func(a, b blob) int { return a.x0 - b.x0 })
	var rows [][]blob
	used := make([]bool, len(blobs))
	for i, seed := range blobs {
		if used[i] {
			continue
		}
		var g []blob
		var idx []int
		for j, b := range blobs {
			if rowMate(seed, b) && math.Abs(b.cx()-seed.cx()) <= 9*seed.h() {
				g = append(g, b)
				idx = append(idx, j)
			}
		}
		g, _ = alignRow(g)
		if len(g) > 10 || rowScore(g) < 4 {
			continue
		}
		for _, j := range idx {
			used[j] = used[j] || slices.Contains(g, blobs[j])
		}
		rows = append(rows, g)
	}
	return rows
}
