package vision

// Black-smoke detection in one frame, and the Ringelmann grade.
//
// # Method
//
// The frame is shrunk to at most SmokeWorkSide pixels on its long side and
// decoded to linear light. A pixel is a plume candidate when it is
//
//   - dark against its local background: blackness b = 1 − Y/Yref, with Y
//     the linear luminance and Yref the brighter of a grey-scale closing of
//     the image (a kernel an eighth of its width: it fills in dark shapes
//     smaller than that with the brightness around them) and the image's
//     70th luminance percentile;
//   - grey or black: saturation (max−min)/max below 0.35, since diesel
//     soot is achromatic, and
//   - not too bright in absolute terms.
//
// Candidates are cleaned with a morphological opening and closing and split
// into connected components. Each component is described by physically
// motivated features that separate a soot plume from the usual look-alikes
// (dark cars, shadows, wet road): its blackness, its colour, how soft its
// boundary is relative to its contrast (a plume fades out; car bodies and
// shadows of rigid objects end sharply), how smooth its inside is (no
// grille, glass or chrome highlights), how ragged its outline is, and its
// size. Before any model, hard rules (smoke_cues.go) judge each component
// against the ring of road around it and reject frame-wide regions,
// regions no darker than their surroundings, under-body shadows, dark
// paint, dust and night frames; the verdict lists what they rejected and
// why. A logistic model over these features (weights in smokeWeights,
// fitted by fitSmokeModel; see models/smoke/MODEL_CARD.md) gives each component
// a score in [0, 1]. With SmokeOptions.Classifier set, a small CNN on an
// image patch around each component gives the score instead (smoke_cnn.go;
// the default of `plume-edge smoke`). The frame is smoky when a
// component's score reaches the threshold and its grade reaches MinGrade.
//
// # Ringelmann grade
//
// Black smoke in front of a background of luminance Yb transmits a fraction
// T of it: Y = T·Yb. Its opacity, which is the Ringelmann blackness, is
// 1 − T = 1 − Y/Yb in linear light. The grade of a component is its median
// blackness b scaled to the Ringelmann chart (grade n is 20·n % black) and
// rounded to the nearest grade: round(5·b), clamped to 0–5. In video the
// background is the learned background model behind the plume (see
// SmokeTracker); on a still it is Yref above.

import (
	"encoding/binary"
	"fmt"
	"image"
	"math"
	"slices"

	"gocv.io/x/gocv"
)

// SmokeWorkSide is the long side, in pixels, that frames are shrunk to for
// smoke detection.
const SmokeWorkSide = 400

// SmokeOptions configure smoke detection. The zero value uses the defaults.
type SmokeOptions struct {
	// MinGrade is the Ringelmann grade a plume must reach to make the
	// frame smoky (0 means 1). It comes from the limit profile.
	MinGrade int
	// Threshold is the plume score, 0–1, at which a plume counts (0 means
	// DefaultSmokeThreshold, or DefaultSmokeCNNThreshold with a
	// Classifier).
	Threshold float64
	// Classifier, when set, re-scores the candidate plumes with the patch
	// CNN (models/smoke) instead of the logistic model.
	Classifier *SmokeClassifier
}

// DefaultSmokeThreshold is the default plume score threshold: the lowest
// at which the 5-fold cross-validated precision on the shared stills
// reaches 0.95 (a false accusation costs more than a miss). Recall there
// is low (about 0.09); ScreeningSmokeThreshold trades precision for
// recall. See models/smoke/MODEL_CARD.md.
const DefaultSmokeThreshold = 0.94

// ScreeningSmokeThreshold is a threshold for screening, not accusing:
// cross-validated precision about 0.90, recall about 0.86 on the shared
// stills.
const ScreeningSmokeThreshold = 0.6

func (o SmokeOptions) withDefaults() SmokeOptions {
	if o.MinGrade <= 0 {
		o.MinGrade = 1
	}
	if o.Threshold <= 0 {
		o.Threshold = DefaultSmokeThreshold
		if o.Classifier != nil {
			o.Threshold = DefaultSmokeCNNThreshold
		}
	}
	return o
}

// SmokeBox is one plume found in a frame, in the frame's pixels.
type SmokeBox struct {
	X         int     `json:"x"`
	Y         int     `json:"y"`
	W         int     `json:"w"`
	H         int     `json:"h"`
	Score     float64 `json:"score"`     // 0–1
	Blackness float64 `json:"blackness"` // Ringelmann blackness (opacity), 0–1
	Grade     int     `json:"grade"`     // Ringelmann 0–5
	// Cues are the measurements the hard rules judged the region by
	// (smoke_cues.go); Cues.Reject names the rule that rejected it.
	Cues SmokeCues `json:"cues"`
}

// Rect returns the box as an image.Rectangle.
func (b SmokeBox) Rect() image.Rectangle { return image.Rect(b.X, b.Y, b.X+b.W, b.Y+b.H) }

// SmokeResult is the smoke verdict for one frame.
type SmokeResult struct {
	Smoky      bool       `json:"smoky"`
	Grade      int        `json:"grade"`      // the highest grade among counted plumes (0 when clean)
	Confidence float64    `json:"confidence"` // probability that the verdict is right, 0.5–1
	Boxes      []SmokeBox `json:"boxes"`      // plumes that count, best first
	// Scored are the candidate regions that passed the hard rules but
	// not the threshold or the grade, best first (at most maxReported).
	Scored []SmokeBox `json:"scored"`
	// Rejected are the candidate regions that a hard rule rejected, the
	// largest first (at most maxReported), each with the rule's name in
	// Cues.Reject.
	Rejected []SmokeBox `json:"rejected"`
	// Vehicles are the vehicle boxes the plumes were looked for behind.
	// Stills have no vehicle detector yet: always empty there (see
	// models/smoke/MODEL_CARD.md).
	Vehicles []image.Rectangle `json:"vehicles"`
}

// maxReported caps the scored and rejected regions listed per frame.
const maxReported = 12

// smokeFeatures describe one candidate component.
type smokeFeatures struct {
	box       image.Rectangle // in work pixels
	area      int
	blackness float64 // median blackness inside
	sat       float64 // mean saturation inside
	soft      float64 // boundary gradient / contrast (low = soft edge)
	texture   float64 // interior gradient / contrast
	fill      float64 // area / box area
	ragged    float64 // perimeter² / (4π area)
	areaFrac  float64 // area / image area
	highlight float64 // fraction of bright, near-white pixels in the box
	spread    float64 // P90 − P10 of blackness inside (a plume thins out)
	fade      float64 // mean blackness on the boundary / median inside
	softLow   float64 // 25th percentile of boundary gradient / contrast
	aspect    float64 // log(height / width)
	cues      SmokeCues
}

// vector returns the model's inputs.
func (f smokeFeatures) vector() []float64 {
	return []float64{
		f.blackness,
		f.sat,
		math.Log(f.soft + 0.01),
		math.Log(f.texture + 0.01),
		f.fill,
		math.Log(f.ragged),
		math.Log(f.areaFrac),
		f.highlight,
		f.spread,
		f.fade,
		math.Log(f.softLow + 0.01),
		f.aspect,
	}
}

// smokeFeatureNames name vector()'s entries, for the model card.
var smokeFeatureNames = []string{"blackness", "saturation", "log_soft_edge", "log_texture", "fill", "log_ragged", "log_area_frac", "highlight", "spread", "fade", "log_soft_low", "log_aspect"}

// smokeWeights is the logistic model: bias first, then one weight per
// feature. Fitted by fitSmokeModel (models/smoke/MODEL_CARD.md).
var smokeWeights = []float64{3.378, 1.006, 12.59, -1.083, 0.6033, -5.944, -0.8859, 1.121, 5.839, 3.087, 1.488, 0.6214, 0.3675}

func smokeScore(f smokeFeatures) float64 {
	v := f.vector()
	z := smokeWeights[0]
	for i, x := range v {
		z += smokeWeights[i+1] * x
	}
	return 1 / (1 + math.Exp(-z))
}

// linLUT maps an 8-bit sRGB value to linear light.
var linLUT = func() [256]float32 {
	var t [256]float32
	for i := range t {
		c := float64(i) / 255
		if c <= 0.04045 {
			t[i] = float32(c / 12.92)
		} else {
			t[i] = float32(math.Pow((c+0.055)/1.055, 2.4))
		}
	}
	return t
}()

// gammaOf maps linear light back to 0–255 sRGB.
func gammaOf(y float64) float64 {
	y = max(0, min(1, y))
	if y <= 0.0031308 {
		return 255 * 12.92 * y
	}
	return 255 * (1.055*math.Pow(y, 1/2.4) - 0.055)
}

// Ringelmann returns the Ringelmann grade, 0–5, for a blackness (opacity)
// in [0, 1]: grade n is 20·n % black, rounded to the nearest grade.
func Ringelmann(blackness float64) int {
	if math.IsNaN(blackness) {
		return 0
	}
	return int(math.Round(5 * max(0, min(1, blackness))))
}

// workFrame is a frame shrunk for smoke work, in planes the detector uses.
type workFrame struct {
	w, h  int
	scale float64   // frame pixels per work pixel
	bgr   []byte    // w*h*3
	y     []float32 // linear luminance
	g     []byte    // sRGB grey
	sat   []float32
}

// newWorkFrame shrinks img to at most side pixels on its long side.
func newWorkFrame(img gocv.Mat, side int) (*workFrame, error) {
	if err := checkFrame(img); err != nil {
		return nil, err
	}
	if img.Cols() < 16 || img.Rows() < 16 {
		return nil, fmt.Errorf("%w: %dx%d is too small for smoke detection", ErrBadFrame, img.Cols(), img.Rows())
	}
	scale := float64(max(img.Cols(), img.Rows())) / float64(side)
	w, h := img.Cols(), img.Rows()
	small := gocv.NewMat()
	defer small.Close()
	src := img
	if scale > 1 {
		w = max(16, int(math.Round(float64(img.Cols())/scale)))
		h = max(16, int(math.Round(float64(img.Rows())/scale)))
		gocv.Resize(img, &small, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
		src = small
	} else {
		scale = 1
	}
	if !src.IsContinuous() {
		return nil, fmt.Errorf("%w: non-continuous mat", ErrBadFrame)
	}
	b := src.ToBytes()
	if len(b) != w*h*3 {
		return nil, fmt.Errorf("%w: %d bytes for %dx%d", ErrBadFrame, len(b), w, h)
	}
	f := &workFrame{w: w, h: h, scale: float64(img.Cols()) / float64(w), bgr: b,
		y: make([]float32, w*h), g: make([]byte, w*h), sat: make([]float32, w*h)}
	for i := 0; i < w*h; i++ {
		bl, gr, rd := b[3*i], b[3*i+1], b[3*i+2]
		y := 0.0722*linLUT[bl] + 0.7152*linLUT[gr] + 0.2126*linLUT[rd]
		f.y[i] = y
		f.g[i] = byte(gammaOf(float64(y)) + 0.5)
		mx, mn := max(bl, gr, rd), min(bl, gr, rd)
		if mx > 0 {
			f.sat[i] = float32(mx-mn) / float32(mx)
		}
	}
	return f, nil
}

// reference returns the still-image background reference luminance Yref
// per pixel (see the method above).
func (f *workFrame) reference() ([]float32, error) {
	grey, err := gocv.NewMatFromBytes(f.h, f.w, gocv.MatTypeCV8U, f.g)
	if err != nil {
		return nil, fmt.Errorf("smoke reference: %w", err)
	}
	defer grey.Close()
	k := max(15, f.w/8) | 1
	kernel := gocv.GetStructuringElement(gocv.MorphEllipse, image.Pt(k, k))
	defer kernel.Close()
	closed := gocv.NewMat()
	defer closed.Close()
	gocv.MorphologyEx(grey, &closed, gocv.MorphClose, kernel)
	blurred := gocv.NewMat()
	defer blurred.Close()
	gocv.GaussianBlur(closed, &blurred, image.Pt(k, k), 0, 0, gocv.BorderReplicate)
	cb := blurred.ToBytes()
	if len(cb) != f.w*f.h {
		return nil, fmt.Errorf("smoke reference: %d bytes", len(cb))
	}
	var hist [256]int
	for _, v := range f.g {
		hist[v]++
	}
	p70, n := 0, 0
	for v := range 256 {
		n += hist[v]
		if n >= f.w*f.h*7/10 {
			p70 = v
			break
		}
	}
	floor := linLUT[p70]
	ref := make([]float32, f.w*f.h)
	for i, v := range cb {
		ref[i] = max(linLUT[v], floor)
	}
	return ref, nil
}

// candidateMask marks plume candidate pixels given the background
// reference luminance.
func (f *workFrame) candidateMask(ref []float32, minBlack float32) []byte {
	m := make([]byte, f.w*f.h)
	for i := range m {
		if ref[i] <= 0.002 {
			continue
		}
		b := 1 - f.y[i]/ref[i]
		if b >= minBlack && f.sat[i] < 0.35 && f.g[i] < 150 {
			m[i] = 255
		}
	}
	return m
}

// components cleans the mask and returns the features of each component
// of at least minFrac of the image.
func (f *workFrame) components(mask []byte, ref []float32, minFrac float64) ([]smokeFeatures, error) {
	mm, err := gocv.NewMatFromBytes(f.h, f.w, gocv.MatTypeCV8U, mask)
	if err != nil {
		return nil, fmt.Errorf("smoke mask: %w", err)
	}
	defer mm.Close()
	k3 := gocv.GetStructuringElement(gocv.MorphEllipse, image.Pt(3, 3))
	defer k3.Close()
	k5 := gocv.GetStructuringElement(gocv.MorphEllipse, image.Pt(5, 5))
	defer k5.Close()
	opened := gocv.NewMat()
	defer opened.Close()
	gocv.MorphologyEx(mm, &opened, gocv.MorphOpen, k3)
	cleaned := gocv.NewMat()
	defer cleaned.Close()
	gocv.MorphologyEx(opened, &cleaned, gocv.MorphClose, k5)
	labels, stats, cents := gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer labels.Close()
	defer stats.Close()
	defer cents.Close()
	n := gocv.ConnectedComponentsWithStats(cleaned, &labels, &stats, &cents)
	if n <= 1 {
		return nil, nil
	}
	lb := labels.ToBytes()
	if labels.Type() != gocv.MatTypeCV32S || len(lb) != 4*f.w*f.h {
		return nil, fmt.Errorf("smoke labels: type %v, %d bytes", labels.Type(), len(lb))
	}
	lab := make([]int32, f.w*f.h)
	for i := range lab {
		lab[i] = int32(binary.LittleEndian.Uint32(lb[4*i:]))
	}
	total := float64(f.w * f.h)
	keep := make([]int, n) // label → index into out, or -1
	var out []smokeFeatures
	var labelOf []int32
	for l := 1; l < n; l++ {
		keep[l] = -1
		area := int(stats.GetIntAt(l, int(gocv.CC_STAT_AREA)))
		if float64(area) < minFrac*total {
			continue
		}
		x, y := int(stats.GetIntAt(l, int(gocv.CC_STAT_LEFT))), int(stats.GetIntAt(l, int(gocv.CC_STAT_TOP)))
		w, h := int(stats.GetIntAt(l, int(gocv.CC_STAT_WIDTH))), int(stats.GetIntAt(l, int(gocv.CC_STAT_HEIGHT)))
		keep[l] = len(out)
		labelOf = append(labelOf, int32(l))
		out = append(out, smokeFeatures{box: image.Rect(x, y, x+w, y+h), area: area})
	}
	if len(out) == 0 {
		return nil, nil
	}
	type acc struct {
		black, bblack, bgrad []float32
		sat, gin, gb         float64
		nin, nb              int
		refG, inG            float64
		perim, hl, boxPixels int
	}
	accs := make([]acc, len(out))
	grad := func(i int) float64 {
		x, y := i%f.w, i/f.w
		xl, xr := max(0, x-1), min(f.w-1, x+1)
		yu, yd := max(0, y-1), min(f.h-1, y+1)
		gx := float64(f.g[y*f.w+xr]) - float64(f.g[y*f.w+xl])
		gy := float64(f.g[yd*f.w+x]) - float64(f.g[yu*f.w+x])
		return math.Sqrt(gx*gx+gy*gy) / 2
	}
	for i, l := range lab {
		if l <= 0 || keep[l] < 0 {
			continue
		}
		a := &accs[keep[l]]
		a.black = append(a.black, 1-f.y[i]/max(ref[i], 1e-4))
		a.sat += float64(f.sat[i])
		a.inG += float64(f.g[i])
		a.refG += gammaOf(float64(ref[i]))
		x, y := i%f.w, i/f.w
		border := x == 0 || y == 0 || x == f.w-1 || y == f.h-1 ||
			lab[i-1] != l || lab[i+1] != l || lab[i-f.w] != l || lab[i+f.w] != l
		if border {
			a.perim++
			// The gradient just outside the edge is what a soft plume
			// lacks; sample it on the boundary itself.
			gv := grad(i)
			a.gb += gv
			a.nb++
			a.bgrad = append(a.bgrad, float32(gv))
			a.bblack = append(a.bblack, 1-f.y[i]/max(ref[i], 1e-4))
		} else {
			a.gin += grad(i)
			a.nin++
		}
	}
	for k := range out {
		a := &accs[k]
		o := &out[k]
		r := o.box
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				i := y*f.w + x
				a.boxPixels++
				if f.g[i] > 200 && f.sat[i] < 0.25 {
					a.hl++
				}
			}
		}
		n := float64(len(a.black))
		slices.Sort(a.black)
		o.blackness = float64(a.black[len(a.black)/2])
		o.sat = a.sat / n
		contrast := max(8, (a.refG-a.inG)/n)
		if a.nb > 0 {
			o.soft = a.gb / float64(a.nb) / contrast
		}
		if a.nin > 0 {
			o.texture = a.gin / float64(a.nin) / contrast
		}
		o.fill = n / float64(r.Dx()*r.Dy())
		o.ragged = max(1, float64(a.perim*a.perim)/(4*math.Pi*n))
		o.areaFrac = n / total
		o.highlight = float64(a.hl) / float64(max(1, a.boxPixels))
		o.spread = float64(a.black[len(a.black)*9/10] - a.black[len(a.black)/10])
		if len(a.bblack) > 0 && o.blackness > 0 {
			sum := 0.0
			for _, v := range a.bblack {
				sum += float64(v)
			}
			o.fade = sum / float64(len(a.bblack)) / o.blackness
		}
		if len(a.bgrad) > 0 {
			slices.Sort(a.bgrad)
			o.softLow = float64(a.bgrad[len(a.bgrad)/4]) / contrast
		}
		o.aspect = math.Log(float64(r.Dy()) / float64(r.Dx()))
	}
	f.cues(lab, labelOf, out)
	return out, nil
}

// stillFeatures returns the candidate plumes of a still image: the
// components of the candidate mask at each blackness level in levels
// (ascending). A higher level splits a large dark region (road, a dark
// car and the plume behind it) into its darker cores, so that the plume
// becomes a region of its own; a component whose box nearly repeats one
// of a lower level (IoU ≥ 0.7) is dropped.
func stillFeatures(img gocv.Mat, levels ...float32) (*workFrame, []smokeFeatures, error) {
	f, err := newWorkFrame(img, SmokeWorkSide)
	if err != nil {
		return nil, nil, err
	}
	ref, err := f.reference()
	if err != nil {
		return nil, nil, err
	}
	var out []smokeFeatures
	for _, level := range levels {
		feats, err := f.components(f.candidateMask(ref, level), ref, 0.002)
		if err != nil {
			return nil, nil, err
		}
		for _, ft := range feats {
			if !slices.ContainsFunc(out, func(o smokeFeatures) bool { return iou(o.box, ft.box) >= 0.7 }) {
				out = append(out, ft)
			}
		}
	}
	return f, out, nil
}

// The blackness levels from which a pixel is a plume candidate in a
// still: the logistic model's features were fitted on components from
// 0.3; the patch CNN scores components from 0.2, 0.35 and 0.5 (v2: the
// higher levels propose the plume's core apart from the road it lies on;
// see models/smoke/MODEL_CARD.md).
var (
	logisticLevels = []float32{0.3}
	cnnLevels      = []float32{0.2, 0.35, 0.5}
)

// DetectSmoke looks for black smoke in one BGR image with no background
// model (single-image mode). The image is not modified.
func DetectSmoke(img gocv.Mat, opt SmokeOptions) (SmokeResult, error) {
	opt = opt.withDefaults()
	levels := logisticLevels
	if opt.Classifier != nil {
		levels = cnnLevels
	}
	f, feats, err := stillFeatures(img, levels...)
	if err != nil {
		return SmokeResult{}, fmt.Errorf("detect smoke: %w", err)
	}
	scores := make([]float64, len(feats))
	if opt.Classifier != nil {
		if scores, err = cnnScores(opt.Classifier, img, f, feats); err != nil {
			return SmokeResult{}, fmt.Errorf("detect smoke: %w", err)
		}
	} else {
		for i, ft := range feats {
			if ft.cues.Reject == "" {
				scores[i] = smokeScore(ft)
			}
		}
	}
	return verdict(f, feats, scores, opt), nil
}

// DetectSmokeImage decodes JPEG or PNG data and looks for
// black smoke in it.
func DetectSmokeImage(data []byte, opt SmokeOptions) (SmokeResult, error) {
	img, err := decodeFrame(data)
	//lint:ignore SA5001 the function returns a Mat to close even with its error (gocv), so the deferred Close comes first
	defer img.Close()
	if err != nil {
		return SmokeResult{}, fmt.Errorf("detect smoke: %w", err)
	}
	return DetectSmoke(img, opt)
}

// verdict decides from the components and their scores.
func verdict(f *workFrame, feats []smokeFeatures, scores []float64, opt SmokeOptions) SmokeResult {
	res := SmokeResult{Boxes: []SmokeBox{}, Scored: []SmokeBox{}, Rejected: []SmokeBox{}, Vehicles: []image.Rectangle{}}
	best := 0.0
	for i, ft := range feats {
		s := scores[i]
		g := Ringelmann(ft.blackness)
		b := f.box(ft.box, s, ft.blackness, g)
		b.Cues = ft.cues
		switch {
		case ft.cues.Reject != "":
			res.Rejected = append(res.Rejected, b)
		case s < opt.Threshold || g < opt.MinGrade:
			best = max(best, s)
			res.Scored = append(res.Scored, b)
		default:
			best = max(best, s)
			res.Boxes = append(res.Boxes, b)
		}
	}
	slices.SortFunc(res.Boxes, func(a, b SmokeBox) int { return cmpDesc(a.Score, b.Score) })
	slices.SortFunc(res.Scored, func(a, b SmokeBox) int { return cmpDesc(a.Score, b.Score) })
	slices.SortStableFunc(res.Rejected, func(a, b SmokeBox) int { return b.W*b.H - a.W*a.H })
	res.Scored = res.Scored[:min(len(res.Scored), maxReported)]
	res.Rejected = res.Rejected[:min(len(res.Rejected), maxReported)]
	if len(res.Boxes) > 0 {
		res.Smoky = true
		res.Confidence = res.Boxes[0].Score
		for _, b := range res.Boxes {
			res.Grade = max(res.Grade, b.Grade)
		}
	} else {
		res.Confidence = 1 - best
	}
	return res
}

func (f *workFrame) box(r image.Rectangle, score, blackness float64, grade int) SmokeBox {
	s := f.scale
	return SmokeBox{
		X: int(float64(r.Min.X) * s), Y: int(float64(r.Min.Y) * s),
		W: int(math.Ceil(float64(r.Dx()) * s)), H: int(math.Ceil(float64(r.Dy()) * s)),
		Score: math.Round(score*1000) / 1000, Blackness: math.Round(blackness*1000) / 1000, Grade: grade,
	}
}

func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}
