package vision

// Hard rules that reject the commonest look-alikes of a plume in a still,
// before any classifier sees the region.
//
// # Cues
//
// Each candidate region (a dark, achromatic component of smoke_detect.go)
// is judged against its LOCAL background: the ring of pixels around its box
// (the box grown by a third of its larger side, at least 3 work pixels),
// outside the component, in the same frame. The cues, all in SmokeCues:
//
//   - span: the box's share of the frame's area, and whether the box
//     touches two opposite frame borders. A plume trails behind one
//     vehicle; a region that fills the frame or crosses it from border to
//     border is the road, the sky or a wall under flat light.
//   - local: 1 − Yin/Yring, the component's median linear luminance
//     against the ring's median. A plume is darker than the same road
//     around it, not merely dark in the frame.
//   - show: the texture that shows through: the inside's mean grey-level
//     gradient per grey level, over the ring's. Soot is semi-transparent,
//     so the road's grain and lane marks stay visible, dimmed in
//     proportion (ratio near 1); a deep shadow or a car's black paint
//     flattens it.
//   - edge: the boundary's mean gradient per unit of darkness contrast
//     (soft, smoke_detect.go). A plume fades out; a body panel, a tyre, a
//     cast shadow ends in a step.
//   - specular: the share of near-white, achromatic pixels in the box:
//     chrome, glass and lacquer reflections of a vehicle body.
//   - flat: the box's height over its width.
//   - warm: the mean of (R − B)/(R + G + B) inside: dust and sand are
//     warm-tinted; soot is neutral.
//   - night: the frame's median grey level: under street lights a still
//     gives no reliable blackness.
//
// # Rules
//
// In the order below; the first that fires names the kind rejected
// (SmokeCues.Reject), so a reviewer sees why a region is not a plume:
//
//	night     frame median grey < nightGrey                      night
//	frame     span ≥ maxSpan, or touches opposite borders         asphalt filling the frame
//	flat-road local < minLocal                                   asphalt, wet road, overcast grey
//	shadow    flat ≤ shadowFlat, edge ≥ hardEdge, local ≥ 0.5     tyre and under-body shadow
//	paint     specular ≥ paintSpecular and edge ≥ glossEdge,      dark paint (glossy, hard-edged)
//	          or edge ≥ paintEdge
//	dust      warm ≥ dustWarm                                     dust
//
// A tree shadow or wet road is caught by flat-road when it is as dark as
// the road beside it, by paint (hard edge) when its edge is crisp. The
// thresholds were set on the shared stills' candidates (models/smoke,
// MODEL_CARD.md) so that at most about 3 % of the candidates inside an
// annotated plume are lost at image level beyond those the frame rule
// must lose; the card gives, per rule, the regions it removes from each
// source.

import (
	"image"
	"math"
	"slices"
)

// SmokeCues are the measurements that the hard rules judge one candidate
// region by; see the rules above.
type SmokeCues struct {
	Span     float64 `json:"span"`     // box area / frame area
	Opposite bool    `json:"opposite"` // the box touches two opposite frame borders
	Local    float64 `json:"local"`    // 1 − median Y inside / median Y of the ring around
	Show     float64 `json:"show"`     // relative texture inside / in the ring
	Edge     float64 `json:"edge"`     // boundary gradient / contrast (high = hard edge)
	Specular float64 `json:"specular"` // share of near-white pixels in the box
	Flat     float64 `json:"flat"`     // box height / width
	Warm     float64 `json:"warm"`     // mean (R − B)/(R + G + B) inside
	Night    float64 `json:"night"`    // the frame's median grey level, 0–255
	Reject   string  `json:"reject,omitempty"`
}

// The rules' thresholds (see above and models/smoke/MODEL_CARD.md).
const (
	nightGrey     = 28
	maxSpan       = 0.3
	minLocal      = 0.1
	shadowFlat    = 0.45
	hardEdge      = 0.3
	paintSpecular = 0.12
	glossEdge     = 0.35
	paintEdge     = 0.45
	dustWarm      = 0.12
)

// Rejection kinds, as SmokeCues.Reject names them.
const (
	RejectNight    = "night"
	RejectFrame    = "frame"
	RejectFlatRoad = "flat-road"
	RejectShadow   = "shadow"
	RejectPaint    = "paint"
	RejectDust     = "dust"
)

// reject returns the first rule that rejects the region, "" for none.
func (c SmokeCues) reject() string {
	switch {
	case c.Night < nightGrey:
		return RejectNight
	case c.Span >= maxSpan || c.Opposite:
		return RejectFrame
	case c.Local < minLocal:
		return RejectFlatRoad
	case c.Flat <= shadowFlat && c.Edge >= hardEdge && c.Local >= 0.5:
		return RejectShadow
	case (c.Specular >= paintSpecular && c.Edge >= glossEdge) || c.Edge >= paintEdge:
		return RejectPaint
	case c.Warm >= dustWarm:
		return RejectDust
	}
	return ""
}

// medianGrey is the frame's median sRGB grey level.
func (f *workFrame) medianGrey() float64 {
	var hist [256]int
	for _, v := range f.g {
		hist[v]++
	}
	n := 0
	for v := range 256 {
		n += hist[v]
		if 2*n >= len(f.g) {
			return float64(v)
		}
	}
	return 255
}

// cues measures each component against its ring and fills in
// out[k].cues; labelOf[k] is component k's label in lab.
func (f *workFrame) cues(lab []int32, labelOf []int32, out []smokeFeatures) {
	night := f.medianGrey()
	for k := range out {
		l := labelOf[k]
		c := f.regionCues(out[k].box, func(i int) bool { return lab[i] == l })
		c.Edge = out[k].soft
		c.Night = night
		c.Reject = c.reject()
		out[k].cues = c
	}
}

// regionCues measures the region of the pixels in r for which inside is
// true, against the ring around r (see the cues above). It leaves Edge,
// Night and Reject to the caller, which knows the edge measure and the
// frame.
func (f *workFrame) regionCues(r image.Rectangle, inside func(i int) bool) SmokeCues {
	frame := image.Rect(0, 0, f.w, f.h)
	total := float64(f.w * f.h)
	grad := func(x, y int) float64 {
		xl, xr := max(0, x-1), min(f.w-1, x+1)
		yu, yd := max(0, y-1), min(f.h-1, y+1)
		gx := float64(f.g[y*f.w+xr]) - float64(f.g[y*f.w+xl])
		gy := float64(f.g[yd*f.w+x]) - float64(f.g[yu*f.w+x])
		return math.Sqrt(gx*gx+gy*gy) / 2
	}
	m := max(3, max(r.Dx(), r.Dy())/3)
	grown := r.Inset(-m).Intersect(frame)
	var yin, yring []float32
	var gIn, lIn, gRing, lRing, warm float64
	specular, boxPixels := 0, 0
	for y := grown.Min.Y; y < grown.Max.Y; y++ {
		for x := grown.Min.X; x < grown.Max.X; x++ {
			i := y*f.w + x
			inBox := image.Pt(x, y).In(r)
			if inBox {
				boxPixels++
				if f.g[i] > 200 && f.sat[i] < 0.25 {
					specular++
				}
			}
			g := grad(x, y)
			if inBox && inside(i) {
				yin = append(yin, f.y[i])
				gIn += g
				lIn += float64(f.g[i])
				b, gr, rd := float64(f.bgr[3*i]), float64(f.bgr[3*i+1]), float64(f.bgr[3*i+2])
				if s := b + gr + rd; s > 0 {
					warm += (rd - b) / s
				}
				continue
			}
			if inBox {
				continue // holes of the region: neither inside nor around
			}
			yring = append(yring, f.y[i])
			gRing += g
			lRing += float64(f.g[i])
		}
	}
	c := SmokeCues{
		Span:     float64(r.Dx()*r.Dy()) / total,
		Opposite: (r.Min.X <= 0 && r.Max.X >= f.w) || (r.Min.Y <= 0 && r.Max.Y >= f.h),
		Specular: float64(specular) / float64(max(1, boxPixels)),
		Flat:     float64(r.Dy()) / float64(max(1, r.Dx())),
	}
	if n := len(yin); n > 0 {
		c.Warm = warm / float64(n)
	}
	if len(yin) > 0 && len(yring) > 0 {
		slices.Sort(yin)
		slices.Sort(yring)
		inside, ring := float64(yin[len(yin)/2]), float64(yring[len(yring)/2])
		if ring > 1e-4 {
			c.Local = 1 - inside/ring
		}
		relIn := gIn / float64(len(yin)) / max(4, lIn/float64(len(yin)))
		relRing := gRing / float64(len(yring)) / max(4, lRing/float64(len(yring)))
		if relRing > 1e-6 {
			c.Show = relIn / relRing
		}
	}
	return c
}
