package vision

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	"gocv.io/x/gocv"
)

// Options configure a Reader. The zero value uses the defaults.
type Options struct {
	Locate LocateOptions
	// MinConfidence drops plates read with less confidence (0 means 0.05).
	MinConfidence float64
	// KeepCrop encodes each plate's rectified crop as PNG in Plate.Crop.
	KeepCrop bool
	// Crop forces every image to be read as one plate crop, skipping
	// localisation. Without it, a small image shaped like a plate (at most
	// 320x160, aspect 1.5–6) is read as a crop automatically.
	Crop bool
	// AllPlates reads every candidate of a frame. Without it, reading
	// stops at the first plate read with confidence and grammar (settled):
	// a roadside camera's frame, or a vehicle's region, shows one plate
	// that matters, and the candidates are read best first.
	AllPlates bool
	// MaxCandidates caps the candidates read per localiser pass, best
	// first (0 means DefaultMaxCandidates; negative means no cap).
	MaxCandidates int
}

// DefaultMaxCandidates is how many of a frame's candidates are read, best
// first, when Options.MaxCandidates is 0: a bound on the cost of a busy
// frame, whose low-ranked candidates are mostly lamps, grilles and
// lettering that cost a read each. (Locate returns at most 10 by default;
// the bound matters for LocateRows.)
const DefaultMaxCandidates = 12

// Reader finds and reads plates. It is safe for concurrent use.
type Reader struct {
	rec *Recogniser
	opt Options
	log *slog.Logger
	Now func() time.Time
}

// Box is an axis-aligned rectangle in image pixels.
type Box struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

// Rect returns b as an image.Rectangle.
func (b Box) Rect() image.Rectangle { return image.Rect(b.X, b.Y, b.X+b.W, b.Y+b.H) }

// Plate is one plate read from an image.
type Plate struct {
	Text        string            `json:"text"`
	Valid       bool              `json:"valid"` // follows the GA 36 grammar
	Colour      plume.PlateColour `json:"colour"`
	DoubleRow   bool              `json:"double_row"`
	Kind        string            `json:"kind"`
	Box         Box               `json:"box"`     // around the corners, within the image
	Corners     [4][2]int         `json:"corners"` // TL, TR, BR, BL
	Chars       []Char            `json:"chars"`
	Confidence  float64           `json:"confidence"`   // whole plate, 0–1
	LocateScore float64           `json:"locate_score"` // localisation, 0–1 (1 for a crop)
	Crop        []byte            `json:"-"`            // PNG of the rectified plate, with Options.KeepCrop
}

// Plume returns the plate as the domain type.
func (p Plate) Plume() plume.Plate {
	return plume.Plate{Text: p.Text, Colour: p.Colour, DoubleRow: p.DoubleRow, Confidence: p.Confidence}
}

// Result is what Read found in one image.
type Result struct {
	Plates     []Plate       `json:"plates"` // best first
	Candidates int           `json:"candidates"`
	Locate     time.Duration `json:"-"`
	Recognise  time.Duration `json:"-"`
}

// Open loads the recogniser model at modelPath and returns a Reader.
func Open(modelPath string, opt Options, logger *slog.Logger) (*Reader, error) {
	rec, err := OpenRecogniser(modelPath)
	if err != nil {
		return nil, fmt.Errorf("open plate reader: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opt.MinConfidence == 0 {
		opt.MinConfidence = 0.05
	}
	return &Reader{rec: rec, opt: opt, log: logger.With("component", "plates"), Now: time.Now}, nil
}

// Close releases the model.
func (r *Reader) Close() error { return r.rec.Close() }

// Recogniser returns the Reader's recogniser.
func (r *Reader) Recogniser() *Recogniser { return r.rec }

// ReadImage decodes JPEG or PNG data (see DecodeImage) and reads it.
func (r *Reader) ReadImage(ctx context.Context, data []byte) (Result, error) {
	img, err := DecodeImage(data)
	//lint:ignore SA5001 the function returns a Mat to close even with its error (gocv), so the deferred Close comes first
	defer img.Close()
	if err != nil {
		return Result{}, fmt.Errorf("read plates: %w", err)
	}
	return r.Read(ctx, img)
}

// Read finds and reads the plates in a BGR image. A small image shaped
// like a plate is read as one plate crop (see Options.Crop).
func (r *Reader) Read(ctx context.Context, img gocv.Mat) (Result, error) {
	return r.read(ctx, img, r.opt.Crop || (!img.Empty() && looksLikeCrop(img)))
}

func (r *Reader) read(ctx context.Context, img gocv.Mat, crop bool) (Result, error) {
	var res Result
	if err := checkBGR(img); err != nil {
		return res, fmt.Errorf("read plates: %w", err)
	}
	t0 := r.Now()
	var cands []Candidate
	if crop {
		c := Candidate{
			Box:     image.Rect(0, 0, img.Cols(), img.Rows()),
			Corners: [4]image.Point{{0, 0}, {img.Cols(), 0}, {img.Cols(), img.Rows()}, {0, img.Rows()}},
			Aspect:  float64(img.Cols()) / float64(img.Rows()),
			Score:   1,
		}
		c.Colour = classifyColour(img)
		c.DoubleRow = c.Colour == plume.PlateYellow && c.Aspect < 2.6
		// A crop cut tight, or loose, can lose a character at the ends
		// of the CTC sequence: when the crop itself does not read well,
		// it is read again with a margin and trimmed.
		f := [4][2]float64{{0, 0}, {float64(img.Cols()), 0}, {float64(img.Cols()), float64(img.Rows())}, {0, float64(img.Rows())}}
		for _, g := range [][2]float64{{0.04, 0.06}, {-0.03, 0}} {
			var q [4]image.Point
			for i, p := range growQuad(f, g[0], g[1]) {
				q[i] = image.Pt(int(math.Round(p[0])), int(math.Round(p[1])))
			}
			c.Alternatives = append(c.Alternatives, q)
		}
		cands = []Candidate{c}
	} else {
		var err error
		cands, err = Locate(img, r.opt.Locate)
		if err != nil {
			return res, fmt.Errorf("read plates: %w", err)
		}
	}
	t1 := r.Now()
	res.Locate = t1.Sub(t0)
	res.Candidates = len(cands)
	var sure []image.Rectangle // boxes of confident, grammatical reads
	limit := r.opt.MaxCandidates
	if limit == 0 {
		limit = DefaultMaxCandidates
	}
	done := func() bool { return !r.opt.AllPlates && len(sure) > 0 }
	readAll := func(cands []Candidate) error {
		if limit > 0 && len(cands) > limit {
			cands = cands[:limit]
		}
		for _, c := range cands {
			if done() {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("read plates: %w", err)
			}
			// A candidate mostly inside a plate already read with
			// confidence (the characters of a blue plate seen as a white
			// one, say) would only be dropped as a duplicate: it is not
			// read.
			if slices.ContainsFunc(sure, func(b image.Rectangle) bool { return within(c.Box, b) > 0.5 }) {
				continue
			}
			p, err := r.readCandidate(img, c, len(sure) > 0)
			if err != nil {
				r.log.Debug("candidate failed", "err", err)
				continue
			}
			if p.Confidence < r.opt.MinConfidence || len(p.Chars) < 5 {
				continue
			}
			if settled(p, c) {
				sure = append(sure, c.Box)
			}
			res.Plates = append(res.Plates, p)
		}
		return nil
	}
	if err := readAll(cands); err != nil {
		return res, err
	}
	if !crop && !done() && !slices.ContainsFunc(res.Plates, func(p Plate) bool { return p.Valid }) {
		// No grammatical read from the colour and edge candidates: look
		// for rows of characters, whatever the colour around them.
		rows, err := LocateRows(img, r.opt.Locate)
		if err != nil {
			return res, fmt.Errorf("read plates: %w", err)
		}
		res.Candidates += len(rows)
		if err := readAll(rows); err != nil {
			return res, err
		}
	}
	slices.SortFunc(res.Plates, func(a, b Plate) int {
		sa, sb := rank(a), rank(b)
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return 0
	})
	// Drop overlapping reads of the same plate.
	var keep []Plate
	for _, p := range res.Plates {
		dup := false
		for _, k := range keep {
			if iou(p.Box.Rect(), k.Box.Rect()) > 0.3 {
				dup = true
				break
			}
		}
		if !dup {
			keep = append(keep, p)
		}
	}
	if len(keep) > 0 && isGrey(img) {
		// A grey frame (night, infrared) shows no plate colour: name it
		// only where the text or the layout does.
		for i := range keep {
			keep[i].Colour = colourFromText(keep[i])
			keep[i].Kind = kind(keep[i].Colour, keep[i].DoubleRow, len(keep[i].Chars))
		}
	}
	res.Plates = keep
	res.Recognise = r.Now().Sub(t1)
	return res, nil
}

// isGrey reports whether a BGR image has no colour: fewer than 1 % of a
// sample of its pixels have channels more than 12 apart.
func isGrey(img gocv.Mat) bool {
	if !img.IsContinuous() || img.Type() != gocv.MatTypeCV8UC3 {
		return false
	}
	px, err := img.DataPtrUint8()
	if err != nil {
		return false
	}
	n, coloured := 0, 0
	for i := 0; i+2 < len(px); i += 3 * 97 {
		b, g, r := px[i], px[i+1], px[i+2]
		if max(b, g, r)-min(b, g, r) > 12 {
			coloured++
		}
		n++
	}
	return n > 0 && coloured*100 < n
}

// colourFromText is a plate's colour as far as its text and layout tell it
// (GA 36): 警 white, 港 澳 使 领 black, 学 挂 and double row yellow, eight
// characters green; otherwise unknown ("").
func colourFromText(p Plate) plume.PlateColour {
	r := []rune(p.Text)
	if len(r) == 0 {
		return ""
	}
	switch last := r[len(r)-1]; {
	case last == '警':
		return plume.PlateWhite
	case strings.ContainsRune("港澳使领", last) || r[0] == '使':
		return plume.PlateBlack
	case strings.ContainsRune("学挂", last) || p.DoubleRow:
		return plume.PlateYellow
	case len(r) == 8:
		return plume.PlateGreen
	}
	return ""
}

// goodEnough is the confidence of a grammatical read above which other
// estimates of the same candidate's corners are not tried.
const goodEnough = 0.8

// settled reports whether p, read from candidate c, needs no other reading:
// grammatical and confident, and on a green candidate 8 characters (a
// new-energy plate cut short reads as a grammatical 7).
func settled(p Plate, c Candidate) bool {
	return p.Valid && p.Confidence >= goodEnough && (c.Colour != plume.PlateGreen || len(p.Chars) == 8)
}

// rank orders plates: grammatical reads first, then confidence weighted by
// the localisation score.
func rank(p Plate) float64 {
	s := p.Confidence * math.Sqrt(max(p.LocateScore, 0.01))
	if p.Valid {
		s += 1
	}
	return s
}

func looksLikeCrop(img gocv.Mat) bool {
	a := float64(img.Cols()) / float64(img.Rows())
	return img.Cols() <= 320 && img.Rows() <= 160 && a >= 1.5 && a <= 6
}

// readCandidate rectifies and recognises one candidate. A yellow plate whose
// aspect is between the single- and double-row shapes is read both ways.
// With quick (a plate in the image is already read with confidence), a
// candidate whose first read has fewer than five characters is not read
// again from its other quads: on busy frames most candidates are lamps,
// grilles and lettering, and their other quads were most of the reading
// time.
func (r *Reader) readCandidate(img gocv.Mat, c Candidate, quick bool) (Plate, error) {
	modes := []bool{c.DoubleRow}
	if c.Colour == plume.PlateYellow && c.Aspect > 2.0 && c.Aspect < 3.0 {
		modes = []bool{c.DoubleRow, !c.DoubleRow}
	}
	var best Plate
	var bestRank = -1.0
	type attempt struct {
		corners [4]image.Point
		double  bool
	}
	var tries []attempt
	add := func(qs ...[4]image.Point) {
		for _, q := range qs {
			for _, m := range modes {
				tries = append(tries, attempt{q, m})
			}
		}
	}
	// The quad fitted to the characters first: the outline's corners are
	// only as good as the colour mask.
	if q, ok := fitToCharacters(img, c.Corners, c.Colour, c.DoubleRow); ok {
		add(q)
	}
	add(c.Corners)
	add(c.Alternatives...)
	refined, asDouble := false, false
	for k := 0; k < len(tries); k++ {
		if settled(best, c) {
			break // a confident, grammatical read: no need for other quads
		}
		if quick && k == 1 && len(best.Chars) < 5 {
			break
		}
		corners, double := tries[k].corners, tries[k].double
		if k == len(tries)-1 && !refined && !c.DoubleRow {
			// Last resort before giving up: the quad re-estimated from
			// the characters, first their rows, then their columns
			// within those rows.
			refined = true
			v, ok := refineVertical(img, c.Corners)
			if ok {
				add(v)
			}
			// Only when the outline is not plate-shaped (440:140 is 3.1,
			// 480:140 3.4): a mask that spilt onto the car (longer than
			// 4.2) is trimmed to the characters, one that lost an end
			// (shorter than 2.8) is widened; a well-shaped one, or a
			// plate crop (94:24 is 3.9), is better left alone.
			switch {
			case c.Aspect > 4.2:
				if h, ok := refineHorizontal(img, v); ok {
					add(h)
				}
			case c.Aspect < 2.8:
				target := 440.0 / 140
				if c.Colour == plume.PlateGreen {
					target = 480.0 / 140
				}
				add(widenToAspect(v, target)...)
			}
		}
		rect, err := rectify(img, corners, double)
		if err != nil {
			rect.Close()
			return Plate{}, err
		}
		rec, err := r.rec.Recognise(rect, double)
		if err != nil {
			rect.Close()
			return Plate{}, err
		}
		p := Plate{
			Text: rec.Text, Chars: rec.Chars, Colour: c.Colour, DoubleRow: double,
			LocateScore: c.Score,
		}
		for i, q := range corners {
			p.Corners[i] = [2]int{q.X, q.Y}
		}
		// The box is the read quad's, within the image: the candidate's
		// box can be a mask that spilt onto the car.
		qb := quadBounds(corners).Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
		p.Box = Box{qb.Min.X, qb.Min.Y, qb.Dx(), qb.Dy()}
		p.Valid = plume.ValidatePlateText(rec.Text) == nil
		if !p.Valid && len(rec.Chars) > 7 {
			// A loose crop can add characters from beside the plate: keep
			// the most confident run that is a valid plate.
			if w, ok := validWindow(rec); ok {
				rec = w
				p.Text, p.Chars, p.Valid = w.Text, w.Chars, true
			}
		}
		p.Confidence = rec.Confidence
		if !p.Valid {
			p.Confidence *= 0.5
		}
		if p.Colour == plume.PlateBlue || p.Colour == plume.PlateYellow || p.Colour == plume.PlateWhite || p.Colour == plume.PlateBlack {
			if len(rec.Chars) == 8 && p.Valid {
				// An 8-character plate is new energy, whatever the mask said
				// (the large new-energy plate is part yellow).
				p.Colour = plume.PlateGreen
			}
		}
		if double && p.Valid && p.Colour != plume.PlateYellow {
			// GA 36 double-row plates are yellow; a colour cast or dirt
			// made the mask call it otherwise.
			p.Colour = plume.PlateYellow
		}
		p.Kind = kind(p.Colour, p.DoubleRow, len(rec.Chars))
		rk := rank(p)
		if c.Colour == plume.PlateGreen && p.Valid && len(rec.Chars) == 8 {
			// On a green plate a grammatical 7-character read is most
			// likely a new-energy plate cut short: the 8 win.
			rk += 0.5
		}
		if rk > bestRank {
			if r.opt.KeepCrop {
				if buf, err := gocv.IMEncode(gocv.PNGFileExt, rect); err == nil {
					p.Crop = slices.Clone(buf.GetBytes())
					buf.Close()
				}
			}
			best, bestRank = p, rk
		}
		rect.Close()
		if k == len(tries)-1 && !asDouble && !c.DoubleRow && !best.Valid && len(best.Chars) >= 5 && len(best.Chars) <= 6 {
			// Five or six characters and no grammar: the bottom row of a
			// double-row plate whose top row the mask missed (a dirty
			// or shadowed truck plate). Place the whole plate from that
			// row and read it as double row.
			asDouble = true
			if q, ok := fitToCharacters(img, withTopRow(c.Corners), c.Colour, true); ok {
				tries = append(tries, attempt{q, true})
			}
		}
	}
	return best, nil
}

// withTopRow extends a quad around the bottom row of a double-row plate
// (130 of its 220 mm) upwards to the whole plate.
func withTopRow(q [4]image.Point) [4]image.Point {
	var f [4][2]float64
	for i, p := range q {
		f[i] = [2]float64{float64(p.X), float64(p.Y)}
	}
	h := (math.Hypot(f[3][0]-f[0][0], f[3][1]-f[0][1]) + math.Hypot(f[2][0]-f[1][0], f[2][1]-f[1][1])) / 2
	f = extendTop(f, h*90/130)
	var out [4]image.Point
	for i, p := range f {
		out[i] = image.Pt(int(math.Round(p[0])), int(math.Round(p[1])))
	}
	return out
}

func kind(c plume.PlateColour, double bool, n int) string {
	switch {
	case c == plume.PlateGreen || n == 8:
		return "new-energy"
	case c == plume.PlateYellow && double:
		return "yellow-double-row"
	case c == plume.PlateYellow:
		return "yellow-single-row"
	case c == plume.PlateBlue:
		return "blue-single-row"
	case c == plume.PlateWhite:
		return "white"
	case c == plume.PlateBlack:
		return "black"
	}
	return "unknown"
}

// rectify warps the quad to the recogniser's plate size; the caller closes
// the returned Mat, even on error. Corners may lie a
// little outside the image; the border is replicated.
func rectify(img gocv.Mat, corners [4]image.Point, double bool) (gocv.Mat, error) {
	w, h := InputW, InputH
	if double {
		w, h = doubleW, doubleH
	}
	out, err := warpQuad(img, corners, w, h)
	if err != nil {
		return out, fmt.Errorf("rectify: %w", err)
	}
	return out, nil
}

// warpQuad warps the quad (TL, TR, BR, BL) of img to a w×h image with a
// perspective transform, replicating the border; the caller closes the
// returned Mat, even on error. Corners far outside the image and
// degenerate quads are refused before OpenCV sees them.
func warpQuad(img gocv.Mat, q [4]image.Point, w, h int) (gocv.Mat, error) {
	lim := 4 * max(img.Cols(), img.Rows())
	src := make([]gocv.Point2f, 4)
	for i, p := range q {
		if p.X < -lim || p.Y < -lim || p.X > lim || p.Y > lim {
			return gocv.NewMat(), fmt.Errorf("corner %v far outside the image", p)
		}
		src[i] = gocv.Point2f{X: float32(p.X), Y: float32(p.Y)}
	}
	if area := quadArea(q); area < 16 {
		return gocv.NewMat(), fmt.Errorf("degenerate quad %v", q)
	}
	dst := []gocv.Point2f{{X: 0, Y: 0}, {X: float32(w), Y: 0}, {X: float32(w), Y: float32(h)}, {X: 0, Y: float32(h)}}
	sv := gocv.NewPoint2fVectorFromPoints(src)
	defer sv.Close()
	dv := gocv.NewPoint2fVectorFromPoints(dst)
	defer dv.Close()
	m := gocv.GetPerspectiveTransform2f(sv, dv)
	defer m.Close()
	out := gocv.NewMat()
	gocv.WarpPerspectiveWithParams(img, &out, m, image.Pt(w, h), gocv.InterpolationLinear, gocv.BorderReplicate, color.RGBA{})
	return out, nil
}

func quadArea(q [4]image.Point) float64 {
	var a float64
	for i := range q {
		j := (i + 1) % 4
		a += float64(q[i].X*q[j].Y - q[j].X*q[i].Y)
	}
	return math.Abs(a) / 2
}

// classifyColour names the background colour of a plate crop from the
// median hue, saturation and value of its pixels.
func classifyColour(img gocv.Mat) plume.PlateColour {
	hsv := gocv.NewMat()
	defer hsv.Close()
	gocv.CvtColor(img, &hsv, gocv.ColorBGRToHSV)
	counts := map[plume.PlateColour]int{}
	for _, cr := range plateColours {
		m := gocv.NewMat()
		gocv.InRangeWithScalar(hsv, cr.lo, cr.hi, &m)
		counts[cr.colour] = gocv.CountNonZero(m)
		m.Close()
	}
	best, n := plume.PlateBlue, -1
	for _, cr := range plateColours { // fixed order: deterministic ties
		if counts[cr.colour] > n {
			best, n = cr.colour, counts[cr.colour]
		}
	}
	return best
}

// validWindow returns the run of 7 or 8 consecutive characters of rec that
// follows the GA 36 grammar with the highest confidence.
func validWindow(rec Recognition) (Recognition, bool) {
	var best Recognition
	found := false
	for n := 7; n <= 8; n++ {
		for i := 0; i+n <= len(rec.Chars); i++ {
			w := Recognition{Chars: rec.Chars[i : i+n], Confidence: 1}
			for _, c := range w.Chars {
				w.Text += c.Char
				w.Confidence *= c.Confidence
			}
			if plume.ValidatePlateText(w.Text) == nil && (!found || w.Confidence > best.Confidence) {
				best, found = w, true
			}
		}
	}
	return best, found
}
