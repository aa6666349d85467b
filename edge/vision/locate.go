package vision

import (
	"fmt"
	"image"
	"math"
	"slices"

	"github.com/plume-emissions/plume"
	"gocv.io/x/gocv"
)

// Candidate is a possible plate found by Locate, in the input image's
// coordinates.
type Candidate struct {
	Box     image.Rectangle
	Corners [4]image.Point // top-left, top-right, bottom-right, bottom-left
	// Alternatives are other estimates of the corners (the minimum-area
	// rectangle when Corners follow the outline); Reader keeps the read
	// with the highest confidence.
	Alternatives [][4]image.Point
	Colour       plume.PlateColour
	DoubleRow    bool
	Aspect       float64 // long side / short side
	Score        float64 // 0–1: shape, fill and edge density
}

// LocateOptions tunes Locate. The zero value uses the defaults.
type LocateOptions struct {
	// WorkWidth is the width the image is scaled down to (never up) for
	// the search; 0 means 960. Corners are returned at full resolution.
	WorkWidth int
	// MaxCandidates bounds the candidates returned, best first; 0 means 10.
	MaxCandidates int
}

type colourRange struct {
	colour plume.PlateColour
	lo, hi gocv.Scalar  // HSV, OpenCV ranges (H 0–180)
	edges  float64      // minimum vertical-edge density
	floors [][2]float64 // (saturation, value) floors tried in turn (nil: lo's)
	// bands are further HSV ranges Locate tries after the floors, for
	// plates whose colour has drifted out of lo–hi: a colour cast from
	// the car or the light, night exposure, the pale new-energy gradient.
	// They are not used to name a region's colour.
	bands []hsvBand
}

type hsvBand struct{ lo, hi gocv.Scalar }

// plateColours are the HSV ranges of plate backgrounds. White and black are
// common in scenes, so they also need dense vertical edges (characters).
var plateColours = []colourRange{
	{plume.PlateBlue, gocv.NewScalar(100, 70, 40, 0), gocv.NewScalar(130, 255, 255, 0), 0.04, [][2]float64{{140, 100}, {110, 22}}, []hsvBand{
		// Blue under sodium or night light turns violet (H up to 140;
		// this band also covers lo–hi at the (70, 40) floor);
		// reflected green from the car turns it cyan (H down to 86, but
		// still strongly saturated).
		{gocv.NewScalar(100, 60, 40, 0), gocv.NewScalar(140, 255, 255, 0)},
		{gocv.NewScalar(86, 120, 35, 0), gocv.NewScalar(140, 255, 255, 0)},
	}},
	{plume.PlateYellow, gocv.NewScalar(11, 70, 70, 0), gocv.NewScalar(34, 255, 255, 0), 0.04, [][2]float64{{70, 70}, {140, 110}}, []hsvBand{
		// A faded or dusty truck plate: the yellow washed out to beige.
		{gocv.NewScalar(12, 40, 90, 0), gocv.NewScalar(30, 255, 255, 0)},
	}},
	{plume.PlateGreen, gocv.NewScalar(35, 35, 70, 0), gocv.NewScalar(88, 255, 255, 0), 0.04, [][2]float64{{35, 70}, {90, 110}}, []hsvBand{
		// A new-energy plate at night: saturated but dark.
		{gocv.NewScalar(50, 90, 25, 0), gocv.NewScalar(95, 255, 255, 0)},
		// The pale end of the white-to-green gradient, in bright light
		// barely tinted.
		{gocv.NewScalar(55, 12, 170, 0), gocv.NewScalar(95, 255, 255, 0)},
	}},
	{plume.PlateWhite, gocv.NewScalar(0, 0, 170, 0), gocv.NewScalar(180, 40, 255, 0), 0.10, nil, nil},
	{plume.PlateBlack, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(180, 255, 55, 0), 0.10, nil, nil},
}

// Locate finds plate candidates in a BGR image.
func Locate(img gocv.Mat, opt LocateOptions) ([]Candidate, error) {
	if err := checkBGR(img); err != nil {
		return nil, fmt.Errorf("locate: %w", err)
	}
	wf := newPlateFrame(img, &opt)
	defer wf.Close()
	work, hsv, gray, scale := wf.bgr, wf.hsv, wf.gray, wf.scale
	if work.Cols() < 16 || work.Rows() < 8 {
		return nil, nil
	}
	// Vertical edges (characters) as a binary map and its integral image.
	sob := gocv.NewMat()
	defer sob.Close()
	gocv.Sobel(gray, &sob, gocv.MatTypeCV16S, 1, 0, 3, 1, 0, gocv.BorderDefault)
	abs := gocv.NewMat()
	defer abs.Close()
	gocv.ConvertScaleAbs(sob, &abs, 1, 0)
	edges := gocv.NewMat()
	defer edges.Close()
	gocv.Threshold(abs, &edges, 60, 1, gocv.ThresholdBinary)
	density := func(r image.Rectangle) float64 {
		r = r.Intersect(image.Rect(0, 0, work.Cols(), work.Rows()))
		if r.Empty() {
			return 0
		}
		reg := edges.Region(r)
		defer reg.Close()
		return float64(gocv.CountNonZero(reg)) / float64(r.Dx()*r.Dy())
	}

	kx := max(5, work.Cols()/70)
	ky := max(3, work.Cols()/240)
	closeK := gocv.GetStructuringElement(gocv.MorphRect, image.Pt(kx, ky))
	defer closeK.Close()
	openK := gocv.GetStructuringElement(gocv.MorphRect, image.Pt(3, 3))
	defer openK.Close()
	mask := gocv.NewMat()
	defer mask.Close()

	var cands []Candidate
	for _, cr := range plateColours {
		// A plate is usually more saturated than a tinted car body around
		// it: a higher floor separates the two when the lower one merges
		// them.
		floors := cr.floors
		if floors == nil {
			floors = [][2]float64{{cr.lo.Val2, cr.lo.Val3}}
		}
		var bands []hsvBand
		for _, f := range floors {
			lo := cr.lo
			lo.Val2, lo.Val3 = f[0], f[1]
			bands = append(bands, hsvBand{lo, cr.hi})
		}
		for _, b := range append(bands, cr.bands...) {
			gocv.InRangeWithScalar(hsv, b.lo, b.hi, &mask)
			gocv.MorphologyEx(mask, &mask, gocv.MorphOpen, openK)
			gocv.MorphologyEx(mask, &mask, gocv.MorphClose, closeK)
			contours := gocv.FindContours(mask, gocv.RetrievalExternal, gocv.ChainApproxSimple)
			for i := 0; i < contours.Size(); i++ {
				c := contours.At(i)
				if c.Size() < 4 {
					continue
				}
				if c, ok := candidate(c, cr, work, scale, density); ok {
					cands = append(cands, c)
				}
			}
			contours.Close()
		}
	}
	// Characters without colour: dense vertical edges closed horizontally
	// into plate-shaped blobs. This finds plates whose colour merges with
	// the vehicle's (a blue plate on a blue truck) and white or black ones;
	// the colour is the region's dominant plate colour.
	ek := gocv.GetStructuringElement(gocv.MorphRect, image.Pt(max(9, work.Cols()/50), max(3, work.Cols()/320)))
	defer ek.Close()
	eo := gocv.GetStructuringElement(gocv.MorphRect, image.Pt(max(5, work.Cols()/160), max(3, work.Cols()/240)))
	defer eo.Close()
	gocv.MorphologyEx(edges, &mask, gocv.MorphClose, ek)
	gocv.MorphologyEx(mask, &mask, gocv.MorphOpen, eo)
	contours := gocv.FindContours(mask, gocv.RetrievalExternal, gocv.ChainApproxSimple)
	for i := 0; i < contours.Size(); i++ {
		c := contours.At(i)
		if c.Size() < 4 {
			continue
		}
		bb := gocv.BoundingRect(c).Intersect(image.Rect(0, 0, work.Cols(), work.Rows()))
		if bb.Dx() < 24 || bb.Dy() < 8 {
			continue
		}
		cr, ok := dominantColour(hsv, bb)
		if !ok {
			continue
		}
		cr.edges = 0.15
		if cand, ok := candidate(c, cr, work, scale, density); ok {
			cand.Score *= 0.9 // colour masks, when they agree, are more precise
			cands = append(cands, cand)
		}
	}
	contours.Close()
	slices.SortFunc(cands, func(a, b Candidate) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	var out []Candidate
	for _, c := range cands {
		dup := false
		for _, o := range out {
			if iou(c.Box, o.Box) > 0.5 {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, c)
		}
		if len(out) == opt.MaxCandidates {
			break
		}
	}
	return out, nil
}

// plateFrame is the image Locate and LocateRows search: scaled down (never
// up) to LocateOptions.WorkWidth, with its HSV and grey versions.
type plateFrame struct {
	bgr, hsv, gray gocv.Mat
	scale          float64 // work pixels per image pixel
	scaled         bool    // bgr was made here; otherwise it is the caller's image
}

// newPlateFrame fills in opt's defaults and makes the work frame; the caller
// closes it.
func newPlateFrame(img gocv.Mat, opt *LocateOptions) plateFrame {
	if opt.WorkWidth <= 0 {
		opt.WorkWidth = 960
	}
	if opt.MaxCandidates <= 0 {
		opt.MaxCandidates = 10
	}
	w := plateFrame{bgr: img, scale: 1, hsv: gocv.NewMat(), gray: gocv.NewMat()}
	if img.Cols() > opt.WorkWidth {
		w.scale = float64(opt.WorkWidth) / float64(img.Cols())
		w.bgr, w.scaled = gocv.NewMat(), true
		gocv.Resize(img, &w.bgr, image.Pt(opt.WorkWidth, int(math.Round(float64(img.Rows())*w.scale))), 0, 0, gocv.InterpolationArea)
	}
	gocv.CvtColor(w.bgr, &w.hsv, gocv.ColorBGRToHSV)
	gocv.CvtColor(w.bgr, &w.gray, gocv.ColorBGRToGray)
	return w
}

func (w plateFrame) Close() {
	if w.scaled {
		w.bgr.Close()
	}
	w.hsv.Close()
	w.gray.Close()
}

func candidate(c gocv.PointVector, cr colourRange, work gocv.Mat, scale float64, density func(image.Rectangle) float64) (Candidate, bool) {
	bb := gocv.BoundingRect(c)
	if bb.Dx() < 24 || bb.Dy() < 8 || bb.Dx() > work.Cols()*7/10 || bb.Dy() > work.Rows()/2 {
		return Candidate{}, false
	}
	rr := gocv.MinAreaRect(c)
	w, h := float64(rr.Width), float64(rr.Height)
	if w < h {
		w, h = h, w
	}
	if h < 8 || w < 24 {
		return Candidate{}, false
	}
	aspect := w / h
	if aspect < 1.4 || aspect > 6.5 {
		return Candidate{}, false
	}
	fill := gocv.ContourArea(c) / (w * h)
	if fill < 0.45 {
		return Candidate{}, false
	}
	quads := quad(c, rr)
	if len(quads) == 0 {
		return Candidate{}, false
	}
	corners := quads[0]
	// The long side must be within 35 degrees of horizontal.
	dx, dy := corners[1][0]-corners[0][0], corners[1][1]-corners[0][1]
	if math.Abs(math.Atan2(dy, dx)) > 35*math.Pi/180 {
		return Candidate{}, false
	}
	ed := density(bb)
	if ed < cr.edges {
		return Candidate{}, false
	}
	double := cr.colour == plume.PlateYellow && aspect < 2.6
	targets := []float64{440.0 / 140, 480.0 / 140}
	if double {
		targets = []float64{2}
	}
	sa := 0.0
	for _, t := range targets {
		l := math.Log(aspect / t)
		sa = max(sa, math.Exp(-l*l/(2*0.3*0.3)))
	}
	sf := clamp01((fill - 0.45) / 0.4)
	se := clamp01(ed / 0.2)
	// Plates narrower than about 70 work pixels are rarely readable.
	ss := clamp01((w - 20) / 50)
	score := math.Pow(sa*sf*se*ss, 0.25)
	// Grow each quad a little (the mask stops at the plate's border) and
	// map it back to full resolution.
	if cr.colour == plume.PlateGreen {
		// The small new-energy plate fades to white at the top, which the
		// mask misses: extend the quad upwards to the plate's shape, and
		// try a taller one too.
		if aspect > 3.7 {
			quads[0] = extendTop(quads[0], w/(480.0/140)-h)
		}
		quads = append(quads, extendTop(quads[0], 0.3*h))
	}
	var full [][4]image.Point
	for _, q := range quads {
		var f [4]image.Point
		for i, p := range growQuad(q, 0.04, 0.08) {
			f[i] = image.Pt(int(math.Round(p[0]/scale)), int(math.Round(p[1]/scale)))
		}
		full = append(full, f)
	}
	return Candidate{Box: quadBounds(full[0]), Corners: full[0], Alternatives: full[1:], Colour: cr.colour, DoubleRow: double, Aspect: aspect, Score: score}, true
}

// quad estimates the plate's four corners, ordered TL, TR, BR, BL: first
// the convex hull simplified to four points when that works (it follows
// perspective and shear), then the minimum-area rectangle.
func quad(c gocv.PointVector, rr gocv.RotatedRect) [][4][2]float64 {
	var out [][4][2]float64
	hull := gocv.NewMat()
	gocv.ConvexHull(c, &hull, true, true)
	if !hull.Empty() && hull.Rows() >= 4 && hull.Type() == gocv.MatTypeCV32SC2 {
		hp := make([]image.Point, hull.Rows())
		for i := range hp {
			v := hull.GetVeciAt(i, 0)
			hp[i] = image.Pt(int(v[0]), int(v[1]))
		}
		hv := gocv.NewPointVectorFromPoints(hp)
		per := gocv.ArcLength(hv, true)
		// The smallest simplification that leaves four corners.
		for eps := 0.01; eps <= 0.1; eps += 0.01 {
			approx := gocv.ApproxPolyDP(hv, eps*per, true)
			n := approx.Size()
			if n == 4 {
				if q, ok := orderQuad(approx.ToPoints()); ok {
					out = append(out, q)
				}
			}
			approx.Close()
			if n <= 4 {
				break
			}
		}
		hv.Close()
	}
	hull.Close()
	if len(rr.Points) == 4 {
		if q, ok := orderQuad(rr.Points); ok {
			if len(out) == 0 || quadDistance(out[0], q) > 0.04*math.Hypot(q[1][0]-q[0][0], q[1][1]-q[0][1]) {
				out = append(out, q)
			}
		}
	}
	return out
}

// quadDistance is the largest distance between corresponding corners.
func quadDistance(a, b [4][2]float64) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Hypot(a[i][0]-b[i][0], a[i][1]-b[i][1]))
	}
	return d
}

// orderQuad orders four points TL, TR, BR, BL; it fails when the top edge
// is not the long side.
func orderQuad(pts []image.Point) ([4][2]float64, bool) {
	var out [4][2]float64
	var cx, cy float64
	for _, p := range pts {
		cx += float64(p.X) / 4
		cy += float64(p.Y) / 4
	}
	type ap struct {
		a    float64
		x, y float64
	}
	var s []ap
	for _, p := range pts {
		s = append(s, ap{math.Atan2(float64(p.Y)-cy, float64(p.X)-cx), float64(p.X), float64(p.Y)})
	}
	slices.SortFunc(s, func(a, b ap) int {
		switch {
		case a.a < b.a:
			return -1
		case a.a > b.a:
			return 1
		}
		return 0
	})
	// Clockwise in image coordinates from the corner nearest the top left.
	start := 0
	best := math.Inf(1)
	for i, p := range s {
		if d := p.x - cx + p.y - cy; d < best {
			best, start = d, i
		}
	}
	for i := 0; i < 4; i++ {
		p := s[(start+i)%4]
		out[i] = [2]float64{p.x, p.y}
	}
	d01 := math.Hypot(out[1][0]-out[0][0], out[1][1]-out[0][1])
	d12 := math.Hypot(out[2][0]-out[1][0], out[2][1]-out[1][1])
	return out, d01 >= d12
}

// growQuad moves each corner away from the centre by fx of the quad's width
// and fy of its height.
func growQuad(q [4][2]float64, fx, fy float64) [4][2]float64 {
	w := (math.Hypot(q[1][0]-q[0][0], q[1][1]-q[0][1]) + math.Hypot(q[2][0]-q[3][0], q[2][1]-q[3][1])) / 2
	h := (math.Hypot(q[3][0]-q[0][0], q[3][1]-q[0][1]) + math.Hypot(q[2][0]-q[1][0], q[2][1]-q[1][1])) / 2
	// Unit vectors along the top edge and down the left edge.
	ux, uy := (q[1][0]-q[0][0]+q[2][0]-q[3][0])/2, (q[1][1]-q[0][1]+q[2][1]-q[3][1])/2
	vx, vy := (q[3][0]-q[0][0]+q[2][0]-q[1][0])/2, (q[3][1]-q[0][1]+q[2][1]-q[1][1])/2
	if n := math.Hypot(ux, uy); n > 0 {
		ux, uy = ux/n, uy/n
	}
	if n := math.Hypot(vx, vy); n > 0 {
		vx, vy = vx/n, vy/n
	}
	sx := [4]float64{-1, 1, 1, -1}
	sy := [4]float64{-1, -1, 1, 1}
	var out [4][2]float64
	for i, p := range q {
		out[i] = [2]float64{
			p[0] + sx[i]*fx*w*ux + sy[i]*fy*h*vx,
			p[1] + sx[i]*fx*w*uy + sy[i]*fy*h*vy,
		}
	}
	return out
}

func iou(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	ia := float64(in.Dx() * in.Dy())
	return ia / (float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - ia)
}

// quadBounds is the smallest rectangle holding the quad's corners.
func quadBounds(q [4]image.Point) image.Rectangle {
	r := image.Rect(q[0].X, q[0].Y, q[0].X+1, q[0].Y+1)
	for _, p := range q[1:] {
		r = r.Union(image.Rect(p.X, p.Y, p.X+1, p.Y+1))
	}
	return r
}

// within is the fraction of a's area that lies inside b.
func within(a, b image.Rectangle) float64 {
	if a.Empty() {
		return 0
	}
	in := a.Intersect(b)
	return float64(in.Dx()*in.Dy()) / float64(a.Dx()*a.Dy())
}

func clamp01(v float64) float64 { return max(0, min(1, v)) }

// extendTop moves the top edge of q up (away from the bottom edge) by d.
func extendTop(q [4][2]float64, d float64) [4][2]float64 {
	vx, vy := (q[3][0]-q[0][0]+q[2][0]-q[1][0])/2, (q[3][1]-q[0][1]+q[2][1]-q[1][1])/2
	if n := math.Hypot(vx, vy); n > 0 {
		vx, vy = vx/n, vy/n
	}
	q[0] = [2]float64{q[0][0] - d*vx, q[0][1] - d*vy}
	q[1] = [2]float64{q[1][0] - d*vx, q[1][1] - d*vy}
	return q
}

// dominantColour returns the plate colour range covering most of r in the
// HSV image, if any covers at least a quarter of it.
func dominantColour(hsv gocv.Mat, r image.Rectangle) (colourRange, bool) {
	reg := hsv.Region(r)
	defer reg.Close()
	m := gocv.NewMat()
	defer m.Close()
	best, n := colourRange{}, -1
	for _, cr := range plateColours {
		gocv.InRangeWithScalar(reg, cr.lo, cr.hi, &m)
		if k := gocv.CountNonZero(m); k > n {
			best, n = cr, k
		}
	}
	return best, n*4 >= r.Dx()*r.Dy()
}
