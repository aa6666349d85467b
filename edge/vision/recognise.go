package vision

import (
	"fmt"
	"image"
	"math"
	"slices"
	"sync"

	"gocv.io/x/gocv"
)

// Charset is the recogniser's alphabet: class i+1 is Charset's i-th rune,
// class 0 is the CTC blank. It must equal CHARS in models/plates/render.py.
const Charset = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼" +
	"0123456789" + "ABCDEFGHJKLMNPQRSTUVWXYZ" + "学警港澳挂使领"

var charset = []rune(Charset)

// Model input layout; see the package comment and render.py model_input.
const (
	InputW, InputH   = 128, 32
	doubleW, doubleH = 160, 80
	topW, bottomW    = 48, 80
	topEnd           = 0.42
	bottomStart      = 0.34
	topX0, topX1     = 0.15, 0.85 // the top row's two characters span 0.25–0.75
	maxModelBytes    = 64 << 20
)

// Char is one recognised character and its probability.
type Char struct {
	Char       string  `json:"char"`
	Confidence float64 `json:"confidence"`
}

// Recognition is the recogniser's reading of one rectified plate.
type Recognition struct {
	Text       string  `json:"text"`
	Chars      []Char  `json:"chars"`
	Confidence float64 `json:"confidence"` // product of the character confidences
}

// Recogniser runs the plate CTC network. It is safe for concurrent use
// (calls are serialised: a cv::dnn::Net is not reentrant).
type Recogniser struct {
	mu     sync.Mutex
	net    gocv.Net
	closed bool
	steps  int
}

// OpenRecogniser loads an ONNX recogniser from path (or the embedded one,
// EmbeddedPlateModel) after validating the file (see checkONNX) and
// running one inference to check the output shape.
func OpenRecogniser(path string) (*Recogniser, error) {
	data, err := plateModelBytes(path)
	if err != nil {
		return nil, err
	}
	return NewRecogniser(data)
}

// NewRecogniser loads an ONNX recogniser from bytes; see OpenRecogniser.
func NewRecogniser(model []byte) (*Recogniser, error) {
	net, err := loadONNX(model, maxModelBytes, []int64{1, 3, InputH, InputW})
	if err != nil {
		return nil, err
	}
	r := &Recogniser{net: net}
	blob := gocv.NewMatWithSizesWithScalar([]int{1, 3, InputH, InputW}, gocv.MatTypeCV32F, gocv.NewScalar(0, 0, 0, 0))
	defer blob.Close()
	out := r.forward(blob)
	defer out.Close()
	sz := out.Size()
	if len(sz) != 4 || sz[0] != 1 || sz[1] != len(charset)+1 || sz[2] != 1 || sz[3] < 8 {
		net.Close()
		return nil, fmt.Errorf("%w: output shape %v, want [1 %d 1 T]", ErrBadModel, sz, len(charset)+1)
	}
	r.steps = sz[3]
	return r, nil
}

// Close releases the network.
func (r *Recogniser) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		return r.net.Close()
	}
	return nil
}

func (r *Recogniser) forward(blob gocv.Mat) gocv.Mat {
	r.net.SetInput(blob, "")
	return r.net.Forward("")
}

// Recognise reads a rectified plate: 128x32 BGR for a single-row plate,
// 160x80 BGR for a double-row one (other sizes are resized first).
func (r *Recogniser) Recognise(plate gocv.Mat, doubleRow bool) (Recognition, error) {
	if err := checkBGR(plate); err != nil {
		return Recognition{}, fmt.Errorf("recognise: %w", err)
	}
	in, err := prepareInput(plate, doubleRow)
	if err != nil {
		return Recognition{}, err
	}
	defer in.Close()
	return r.recogniseInput(in)
}

// recogniseInput runs the network on a 128x32 BGR model input.
func (r *Recogniser) recogniseInput(in gocv.Mat) (Recognition, error) {
	blob := gocv.BlobFromImage(in, 1/127.5, image.Pt(InputW, InputH), gocv.NewScalar(127.5, 127.5, 127.5, 0), false, false)
	defer blob.Close()
	logits, err := r.Logits(blob)
	if err != nil {
		return Recognition{}, err
	}
	return DecodeCTC(logits, len(charset)+1), nil
}

// Logits runs the network on a 1x3x32x128 float blob and returns the raw
// logits, class-major (C x T), as the network produced them.
func (r *Recogniser) Logits(blob gocv.Mat) ([]float32, error) {
	sz := blob.Size()
	if len(sz) != 4 || sz[0] != 1 || sz[1] != 3 || sz[2] != InputH || sz[3] != InputW || blob.Type() != gocv.MatTypeCV32F {
		return nil, fmt.Errorf("recognise: blob shape %v, want [1 3 %d %d] float32", sz, InputH, InputW)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("recognise: %w", ErrClosed)
	}
	out := r.forward(blob)
	defer out.Close()
	if out.Empty() || out.Total() != (len(charset)+1)*r.steps {
		return nil, fmt.Errorf("recognise: unexpected output size %v", out.Size())
	}
	data, err := out.DataPtrFloat32()
	if err != nil {
		return nil, fmt.Errorf("recognise: %w", err)
	}
	return slices.Clone(data), nil
}

// DecodeCTC greedily decodes class-major logits (classes x steps): softmax
// per step, best class per step, repeats merged and blanks (class 0)
// dropped. A character's confidence is the highest probability its class
// reached over the steps it spans.
func DecodeCTC(logits []float32, classes int) Recognition {
	steps := len(logits) / classes
	var rec Recognition
	prev := 0
	rec.Confidence = 1
	for t := 0; t < steps; t++ {
		maxv := float32(math.Inf(-1))
		best := 0
		for c := 0; c < classes; c++ {
			if v := logits[c*steps+t]; v > maxv {
				maxv, best = v, c
			}
		}
		var sum float64
		for c := 0; c < classes; c++ {
			sum += math.Exp(float64(logits[c*steps+t] - maxv))
		}
		p := 1 / sum
		switch {
		case best == 0:
		case best != prev:
			rec.Chars = append(rec.Chars, Char{Char: string(charset[best-1]), Confidence: p})
		default: // the same character continues
			if last := &rec.Chars[len(rec.Chars)-1]; p > last.Confidence {
				last.Confidence = p
			}
		}
		prev = best
	}
	for _, c := range rec.Chars {
		rec.Text += c.Char
		rec.Confidence *= c.Confidence
	}
	if len(rec.Chars) == 0 {
		rec.Confidence = 0
	}
	return rec
}

// prepareInput builds the 128x32 BGR model input from a rectified plate.
func prepareInput(plate gocv.Mat, doubleRow bool) (gocv.Mat, error) {
	out := gocv.NewMat()
	if !doubleRow {
		if plate.Cols() == InputW && plate.Rows() == InputH {
			plate.CopyTo(&out)
		} else {
			gocv.Resize(plate, &out, image.Pt(InputW, InputH), 0, 0, gocv.InterpolationLinear)
		}
		return out, nil
	}
	src := plate
	if plate.Cols() != doubleW || plate.Rows() != doubleH {
		resized := gocv.NewMat()
		defer resized.Close()
		gocv.Resize(plate, &resized, image.Pt(doubleW, doubleH), 0, 0, gocv.InterpolationLinear)
		src = resized
	}
	h := src.Rows()
	te := int(math.RoundToEven(topEnd * float64(h)))
	bs := int(math.RoundToEven(bottomStart * float64(h)))
	x0 := int(math.RoundToEven(topX0 * float64(src.Cols())))
	x1 := int(math.RoundToEven(topX1 * float64(src.Cols())))
	topR := src.Region(image.Rect(x0, 0, x1, te))
	defer topR.Close()
	botR := src.Region(image.Rect(0, bs, src.Cols(), h))
	defer botR.Close()
	top, bot := gocv.NewMat(), gocv.NewMat()
	defer top.Close()
	defer bot.Close()
	gocv.Resize(topR, &top, image.Pt(topW, InputH), 0, 0, gocv.InterpolationLinear)
	gocv.Resize(botR, &bot, image.Pt(bottomW, InputH), 0, 0, gocv.InterpolationLinear)
	gocv.Hconcat(top, bot, &out)
	return out, nil
}
