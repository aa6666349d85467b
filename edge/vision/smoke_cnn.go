package vision

// The smoke patch classifier: a small CNN (models/smoke/smoke-cnn.onnx,
// trained by models/smoke/train.py) that re-scores the candidate regions
// of the still-image detector.
//
// # Input format
//
// For a candidate component with box r in frame pixels, the patch is the
// square of side max(16, 1.5·max(w, h)) centred on r, shifted to lie
// inside the frame and cut to it (smokePatchRect). It is resized to
// SmokePatchSide×SmokePatchSide with area interpolation, kept in BGR order
// and scaled to [0, 1]: a 1×3×64×64 float32 NCHW tensor. The output is a
// 1×1 probability that the patch is a plume (the sigmoid is in the graph).

import (
	"fmt"
	"image"
	"math"
	"slices"
	"sync"

	"gocv.io/x/gocv"
)

// SmokePatchSide is the side, in pixels, of the classifier's input.
const SmokePatchSide = 64

// maxSmokePatches caps the candidates re-scored per frame (the largest
// first), bounding the cost of a frame full of dark regions.
const maxSmokePatches = 24

// maxSmokeModelBytes caps the classifier file (the trained one is about
// 0.3 MiB).
const maxSmokeModelBytes = 16 << 20

// smokePatchRect returns the patch of frame pixels (w×h frame) that the
// classifier sees for the box r (frame pixels). It is never empty for a
// frame of at least 1×1 pixel.
func smokePatchRect(r image.Rectangle, w, h int) image.Rectangle {
	side := int(math.Round(1.5 * float64(max(r.Dx(), r.Dy()))))
	side = max(16, side)
	cx, cy := (r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2
	x0, y0 := cx-side/2, cy-side/2
	// Shift inside, then cut to the frame.
	x0 = max(0, min(x0, w-side))
	y0 = max(0, min(y0, h-side))
	p := image.Rect(x0, y0, x0+side, y0+side).Intersect(image.Rect(0, 0, w, h))
	if p.Empty() {
		return image.Rect(0, 0, min(w, 16), min(h, 16))
	}
	return p
}

// SmokeClassifier is the loaded patch classifier. It is safe for
// concurrent use (calls are serialised).
type SmokeClassifier struct {
	mu     sync.Mutex
	net    gocv.Net
	closed bool
}

// OpenSmokeClassifier loads the ONNX patch classifier from path after
// validating the file (see checkONNX) and running one inference to check
// the output shape. It returns ErrBadModel for anything else.
func OpenSmokeClassifier(path string) (*SmokeClassifier, error) {
	data, err := readModelFile(path, maxSmokeModelBytes)
	if err != nil {
		return nil, err
	}
	return NewSmokeClassifier(data)
}

// NewSmokeClassifier loads the patch classifier from ONNX bytes; see
// OpenSmokeClassifier.
func NewSmokeClassifier(model []byte) (*SmokeClassifier, error) {
	net, err := loadONNX(model, maxSmokeModelBytes, []int64{1, 3, SmokePatchSide, SmokePatchSide})
	if err != nil {
		return nil, err
	}
	c := &SmokeClassifier{net: net}
	blob := gocv.NewMatWithSizesWithScalar([]int{1, 3, SmokePatchSide, SmokePatchSide}, gocv.MatTypeCV32F, gocv.NewScalar(0, 0, 0, 0))
	defer blob.Close()
	if _, err := c.forward(blob); err != nil {
		net.Close()
		return nil, err
	}
	return c, nil
}

// Close releases the network.
func (c *SmokeClassifier) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		return c.net.Close()
	}
	return nil
}

// forward runs one 1×3×64×64 blob and returns the plume probability.
func (c *SmokeClassifier) forward(blob gocv.Mat) (float64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, fmt.Errorf("%w: classifier closed", ErrBadModel)
	}
	c.net.SetInput(blob, "")
	out := c.net.Forward("")
	defer out.Close()
	if sz := out.Size(); len(sz) != 2 || sz[0] != 1 || sz[1] != 1 {
		return 0, fmt.Errorf("%w: output shape %v, want [1 1]", ErrBadModel, sz)
	}
	p := float64(out.GetFloatAt(0, 0))
	if math.IsNaN(p) || p < 0 || p > 1 {
		return 0, fmt.Errorf("%w: output %v is not a probability", ErrBadModel, p)
	}
	return p, nil
}

// patchBlob cuts the patch for box r (frame pixels) out of img and returns
// the classifier's input tensor; the caller closes it.
func patchBlob(img gocv.Mat, r image.Rectangle) (gocv.Mat, error) {
	p := smokePatchRect(r, img.Cols(), img.Rows())
	roi := img.Region(p)
	defer roi.Close()
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(roi, &small, image.Pt(SmokePatchSide, SmokePatchSide), 0, 0, gocv.InterpolationArea)
	if small.Empty() {
		return gocv.NewMat(), fmt.Errorf("%w: empty patch %v", ErrBadFrame, p)
	}
	return gocv.BlobFromImage(small, 1.0/255, image.Pt(SmokePatchSide, SmokePatchSide), gocv.NewScalar(0, 0, 0, 0), false, false), nil
}

// ScorePatch returns the plume probability of the patch around box r
// (frame pixels) of the BGR frame img.
func (c *SmokeClassifier) ScorePatch(img gocv.Mat, r image.Rectangle) (float64, error) {
	if err := checkFrame(img); err != nil {
		return 0, err
	}
	blob, err := patchBlob(img, r)
	if err != nil {
		return 0, err
	}
	defer blob.Close()
	return c.forward(blob)
}

// ScoreTensor runs the classifier on one preprocessed input (3·64·64
// float32 values, NCHW); for parity tests and tools.
func (c *SmokeClassifier) ScoreTensor(in []float32) (float64, error) {
	n := 3 * SmokePatchSide * SmokePatchSide
	if len(in) != n {
		return 0, fmt.Errorf("%w: %d inputs, want %d", ErrBadFrame, len(in), n)
	}
	blob := gocv.NewMatWithSizes([]int{1, 3, SmokePatchSide, SmokePatchSide}, gocv.MatTypeCV32F)
	defer blob.Close()
	d, err := blob.DataPtrFloat32()
	if err != nil {
		return 0, fmt.Errorf("score tensor: %w", err)
	}
	copy(d, in)
	return c.forward(blob)
}

// frameRect is a work-frame box in frame pixels, cut to the frame.
func (f *workFrame) frameRect(r image.Rectangle, w, h int) image.Rectangle {
	s := f.scale
	fr := image.Rect(int(float64(r.Min.X)*s), int(float64(r.Min.Y)*s),
		int(math.Ceil(float64(r.Max.X)*s)), int(math.Ceil(float64(r.Max.Y)*s)))
	return fr.Intersect(image.Rect(0, 0, w, h))
}

// cnnScores re-scores the candidates that pass the hard rules
// (smoke_cues.go) with the classifier: the largest maxSmokePatches get the
// classifier's probability, the rest (and every rejected one) 0.
func cnnScores(c *SmokeClassifier, img gocv.Mat, f *workFrame, feats []smokeFeatures) ([]float64, error) {
	order := make([]int, 0, len(feats))
	for i, ft := range feats {
		if ft.cues.Reject == "" {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return feats[b].area - feats[a].area })
	out := make([]float64, len(feats))
	for k, i := range order {
		if k >= maxSmokePatches {
			break
		}
		r := f.frameRect(feats[i].box, img.Cols(), img.Rows())
		if r.Empty() {
			continue
		}
		p, err := c.ScorePatch(img, r)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// DefaultSmokeCNNThreshold is the default plume probability threshold with
// the patch classifier: the lowest at which the grouped 5-fold
// cross-validated precision on the shared stills reaches 0.95 (see
// models/smoke/MODEL_CARD.md).
const DefaultSmokeCNNThreshold = 0.495

// DefaultSmokeModel is where the smoke patch classifier lives in the
// repository.
const DefaultSmokeModel = "models/smoke/smoke-cnn.onnx"

// FindSmokeModel resolves the smoke patch classifier's path: an explicit
// path is used as is; then $PLUME_SMOKE_MODEL; then DefaultSmokeModel
// looked up from the working directory upwards.
func FindSmokeModel(explicit string) string {
	return findModel(explicit, "PLUME_SMOKE_MODEL", DefaultSmokeModel)
}
