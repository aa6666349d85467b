package vision

// Vehicles and their smoke in video.
//
// # Method
//
// Every frame is shrunk to TrackWorkWidth pixels wide and decoded to linear
// luminance. The background is seeded from the first WarmupFrames frames:
// the per-pixel median of every other one, so vehicles already in view or
// passing during the warm-up stay out of it; those frames are then tracked
// against it, so early vehicles are tracked too. From then on a running
// mean (learning fast where the frame matches it and slowly where
// something moves) absorbs everything static: wet patches, stains, tree
// shadows. It learns nothing where a tracked vehicle, or the region behind
// it, differs from it: a shadow or plume travelling with the vehicle,
// slowly learnt, would fade from its leading edge and look graded like a
// plume. A global gain, the median ratio of frame to background, follows
// changing light.
//
// Vehicles are found by motion: pixels that differ from the background by
// more than 20 % and carry an edge (vehicles have outlines, windows,
// lights and plates; smoke has none). A closing joins them into one blob
// per vehicle; a blob counts when its edges fill a fifth of its box or 40 %
// of the box differs from the background (a plain dark body has edges only
// on its outline). Blobs stacked one above the other across most of their
// width are joined: they are parts of one vehicle whose body barely
// differs from the road. At night (most of the background below 2 % linear
// luminance) only lights, plate and lit outline show: a wide closing joins
// the two tail lights and the plate. Blobs are tracked by their nearest
// centre from frame to frame, giving stable IDs; each track knows its lane
// (from the lane boundaries) and when its rear crossed the trigger line.
//
// Smoke is sought behind each vehicle (below it in a rear view) in a box as
// wide as the vehicle and as deep as 0.9 of its height, only while the
// track is vehicle-sized (at least 0.45 of its lane wide, not flatter than
// 0.3, not cut by the top of the frame: a fragment of a car would take the
// rest of the car for a plume) and the box is mostly in view. A dense
// plume can join the vehicle's blob and stretch it downwards over itself,
// so a box much taller than the track's usual height-to-width ratio is cut
// to it (never flatter than minRearAspect) when the track is updated; the
// rear's crossing is judged on the cut box too. Plume pixels are darker
// than the local background by at least 12 %, achromatic, and outside the
// vehicle blob. A frame shows a plume when they fill at least 6 % of the
// box and
//
//   - the blob's edge is soft relative to its contrast (a hard-edged dark
//     shape is a shadow),
//   - its darkness varies (spread P99 − P20 ≥ 0.08) and, averaged over 3×3
//     pixels against sensor noise, fewer than 75 % of its pixels lie
//     within ±15 % of its median blackness (a cast shadow darkens the road
//     by one factor; a plume thins out from its core),
//   - the box is not brightened (spray and wet tyre tracks are white mist
//     and reflections, short-lived behind the wheels; soot only darkens).
//
// A track is smoky when it crossed the trigger line and at least 35 % of
// the frames in which the region behind it was examined (and at least 6)
// show a plume: appearance in one frame combined with persistence over
// time.
//
// # Ringelmann grade
//
// Black smoke in front of a background of luminance Yb transmits T of it,
// so its opacity, the Ringelmann blackness, is 1 − Y/Yb in linear light.
// Yb is the LOCAL background behind the plume: the background model at the
// same pixels, times the global gain. In a frame the plume's blackness is
// the 99th percentile of 1 − Y/(gain·Ybg) over its pixels (the dense core
// near the exhaust, as an observer reads a Ringelmann chart against the
// densest part; the thin edges would understate it); over the track it is
// the 90th percentile of the frames that show a plume (the core is not in
// view in every frame), and the grade is round(5·blackness), 0–5.
//
// Night: no plume is judged (the contrast of soot against an unlit road is
// too low to grade); vehicles are still tracked.

import (
	"fmt"
	"image"
	"math"
	"slices"
	"time"

	"gocv.io/x/gocv"
)

// TrackWorkWidth is the width frames are shrunk to for tracking.
const TrackWorkWidth = 320

// TrackerConfig configures a SmokeTracker, in full-frame pixels.
type TrackerConfig struct {
	// LaneX are the lane boundaries along the frame's width, left to
	// right: lane n (1-based) lies between LaneX[n-1] and LaneX[n].
	LaneX []int
	// TriggerY is the trigger line's height in the frame.
	TriggerY int
	// MinGrade is the Ringelmann grade that makes smoke count (0 means 1).
	MinGrade int
}

// VehicleTrack is a tracked vehicle and what was seen of it.
type VehicleTrack struct {
	ID         int64           `json:"id"`
	Lane       int             `json:"lane"` // 0 when outside every lane
	Crossed    bool            `json:"crossed"`
	CrossedAt  time.Time       `json:"crossed_at"`
	Box        image.Rectangle `json:"box"` // last box, full-frame pixels
	CrossBox   image.Rectangle `json:"cross_box"`
	Frames     int             `json:"frames"`
	Judged     int             `json:"judged_frames"`   // frames in which the region behind it was examined
	Plume      int             `json:"plume_frames"`    // of those, frames that showed a plume
	Rejected   int             `json:"rejected_frames"` // of those, frames whose dark region a hard rule (smoke_cues.go) rejected
	Smoky      bool            `json:"smoky"`
	Grade      int             `json:"grade"`
	Blackness  float64         `json:"blackness"`
	Confidence float64         `json:"confidence"`
	// SmokeBox is the plume's box in the frame where it was densest.
	SmokeBox  image.Rectangle `json:"smoke_box"`
	SmokeAt   time.Time       `json:"smoke_at"`
	blackness []float64
	lost      int
	cx, cy    float64
	bestBlack float64
	aspects   []float64 // height / width of the last blobs
}

// TrackerStats count what a tracker has seen.
type TrackerStats struct {
	Frames, BadFrames, Tracks, Smoky int64
}

// SmokeTracker tracks vehicles in one camera's frames and judges their
// smoke. It is not safe for concurrent use: one goroutine per camera.
type SmokeTracker struct {
	cfg     TrackerConfig
	w, h    int     // work size
	scale   float64 // frame pixels per work pixel
	fw, fh  int
	bg      []float32
	frames  int
	next    int64
	live    []*VehicleTrack
	warm    []warmFrame // frames buffered to seed the background
	night   bool        // isNight's answer at frame nightAt
	nightAt int
	Stats   TrackerStats
}

// NewSmokeTracker returns a tracker.
func NewSmokeTracker(cfg TrackerConfig) *SmokeTracker {
	if cfg.MinGrade <= 0 {
		cfg.MinGrade = 1
	}
	return &SmokeTracker{cfg: cfg}
}

// Process takes the next frame and returns the tracks that ended with it
// (left the view or were lost), with their verdicts. A frame of another
// size restarts the background model. Bad frames are counted and skipped.
func (t *SmokeTracker) Process(frame gocv.Mat, at time.Time) ([]*VehicleTrack, error) {
	if err := checkFrame(frame); err != nil {
		t.Stats.BadFrames++
		return nil, fmt.Errorf("track: %w", err)
	}
	if frame.Cols() < 64 || frame.Rows() < 48 {
		t.Stats.BadFrames++
		return nil, fmt.Errorf("track: %w: %dx%d too small", ErrBadFrame, frame.Cols(), frame.Rows())
	}
	t.Stats.Frames++
	f, err := newWorkFrame(frame, max(TrackWorkWidth, TrackWorkWidth*frame.Rows()/frame.Cols()))
	if err != nil {
		t.Stats.BadFrames++
		return nil, fmt.Errorf("track: %w", err)
	}
	var ended []*VehicleTrack
	if f.w != t.w || f.h != t.h || frame.Cols() != t.fw {
		// A new size: start over, background first.
		t.w, t.h, t.fw, t.fh, t.scale = f.w, f.h, frame.Cols(), frame.Rows(), f.scale
		t.bg, t.warm, t.frames = nil, nil, 0
		for _, tr := range t.live {
			ended = append(ended, t.finish(tr))
		}
		t.live = nil
	}
	if t.bg == nil {
		f.bgr = nil // the tracker uses the planes only
		t.warm = append(t.warm, warmFrame{f, at})
		if len(t.warm) < WarmupFrames {
			return ended, nil
		}
		return append(ended, t.seed()...), nil
	}
	return append(ended, t.step(f, at)...), nil
}

// WarmupFrames is how many frames the tracker buffers to seed its
// background (1.6 s at 25 fps).
const WarmupFrames = 40

type warmFrame struct {
	f  *workFrame
	at time.Time
}

// seed sets the background to the per-pixel median of every other
// buffered frame (vehicles that move through the warm-up cover a pixel
// for less than half of it, so they do not enter the background), then
// tracks the buffered frames against it, so vehicles in view from the
// first frame are tracked too.
func (t *SmokeTracker) seed() []*VehicleTrack {
	if len(t.warm) == 0 {
		return nil
	}
	n := t.w * t.h
	t.bg = make([]float32, n)
	var samples []*workFrame
	for i := 0; i < len(t.warm); i += 2 {
		samples = append(samples, t.warm[i].f)
	}
	col := make([]float32, len(samples))
	for i := range n {
		for k, f := range samples {
			col[k] = f.y[i]
		}
		slices.Sort(col)
		t.bg[i] = col[len(col)/2]
	}
	t.frames = len(t.warm)
	warm := t.warm
	t.warm = nil
	var ended []*VehicleTrack
	for _, w := range warm {
		ended = append(ended, t.step(w.f, w.at)...)
	}
	return ended
}

// step tracks one frame against the background.
func (t *SmokeTracker) step(f *workFrame, at time.Time) []*VehicleTrack {
	t.frames++
	n := f.w * f.h
	// Global gain: median of frame/background.
	ratios := make([]float32, 0, n/7+1)
	for i := 0; i < n; i += 7 {
		if t.bg[i] > 0.003 {
			ratios = append(ratios, f.y[i]/t.bg[i])
		}
	}
	gain := float32(1)
	if len(ratios) > 0 {
		slices.Sort(ratios)
		gain = ratios[len(ratios)/2]
	}
	rel := make([]float32, n)
	moving := make([]byte, n)
	for i := 0; i < n; i++ {
		ref := t.bg[i] * gain
		if ref < 1e-4 {
			ref = 1e-4
		}
		rel[i] = f.y[i]/ref - 1
	}
	// Moving edges: a strong gradient where the frame differs from the
	// background.
	for y := 1; y < f.h-1; y++ {
		for x := 1; x < f.w-1; x++ {
			i := y*f.w + x
			if rel[i] > -0.2 && rel[i] < 0.2 {
				continue
			}
			gx := int(f.g[i+1]) - int(f.g[i-1])
			gy := int(f.g[i+f.w]) - int(f.g[i-f.w])
			if gx*gx+gy*gy > 24*24 {
				moving[i] = 255
			}
		}
	}
	night := t.isNight()
	blobs, err := t.blobs(moving, rel, night)
	if err != nil {
		t.Stats.BadFrames++
		return nil
	}

	// Update the background: fast where it matches, slowly elsewhere, and
	// not at all where a tracked vehicle or the region behind it differs
	// from it. A vehicle's shadow or plume travels with it; learnt into
	// the background while it passes, it would fade from its leading edge
	// and look graded like a plume.
	held := t.heldRegion()
	for i := 0; i < n; i++ {
		a := float32(0.05)
		if rel[i] > 0.1 || rel[i] < -0.1 {
			a = 0.003
			if held[i] {
				continue
			}
		}
		t.bg[i] += a * (f.y[i]/gain - t.bg[i])
	}
	ended := t.associate(blobs, at)
	for _, tr := range t.live {
		if tr.lost == 0 && !night {
			t.smoke(tr, f, rel, moving, at)
		}
	}
	return ended
}

// heldRegion marks the live tracks' boxes and the regions behind them
// (as deep as the box again), in work pixels.
func (t *SmokeTracker) heldRegion() []bool {
	held := make([]bool, t.w*t.h)
	frame := image.Rect(0, 0, t.w, t.h)
	for _, tr := range t.live {
		b := t.toWork(tr.Box)
		r := image.Rect(b.Min.X-b.Dx()/4, b.Min.Y, b.Max.X+b.Dx()/4, b.Max.Y+b.Dy()).Intersect(frame)
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				held[y*t.w+x] = true
			}
		}
	}
	return held
}

// blobs returns vehicle-sized boxes of moving edges, in work pixels.
//
// A blob counts when it is at least minSide on each side and either its
// moving edges fill a fifth of its box or, for vehicles with a plain body
// (a dark car has edges only on its outline), at least 40 % of its box
// differs from the background. At night only the lights, the plate and
// the lit outline show: a wide closing joins a vehicle's two tail lights
// and its plate, and a tenth of the box suffices.
func (t *SmokeTracker) blobs(moving []byte, rel []float32, night bool) ([]image.Rectangle, error) {
	m, err := gocv.NewMatFromBytes(t.h, t.w, gocv.MatTypeCV8U, moving)
	if err != nil {
		return nil, fmt.Errorf("track: %w", err)
	}
	defer m.Close()
	kp, minFill := image.Pt(9, 9), 5
	if night {
		kp, minFill = image.Pt(t.w/10|1, 9), 10
	}
	k := gocv.GetStructuringElement(gocv.MorphRect, kp)
	defer k.Close()
	closed := gocv.NewMat()
	defer closed.Close()
	gocv.MorphologyEx(m, &closed, gocv.MorphClose, k)
	labels, stats, cents := gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer labels.Close()
	defer stats.Close()
	defer cents.Close()
	nl := gocv.ConnectedComponentsWithStats(closed, &labels, &stats, &cents)
	var out []image.Rectangle
	minSide := t.w / 25
	for l := 1; l < nl; l++ {
		x, y := int(stats.GetIntAt(l, int(gocv.CC_STAT_LEFT))), int(stats.GetIntAt(l, int(gocv.CC_STAT_TOP)))
		w, h := int(stats.GetIntAt(l, int(gocv.CC_STAT_WIDTH))), int(stats.GetIntAt(l, int(gocv.CC_STAT_HEIGHT)))
		area := int(stats.GetIntAt(l, int(gocv.CC_STAT_AREA)))
		if w < minSide || h < minSide || (area < w*h/minFill && !changedFill(rel, t.w, image.Rect(x, y, x+w, y+h), 0.4)) {
			continue
		}
		out = append(out, image.Rect(x, y, x+w, y+h))
	}
	return mergeStacked(out), nil
}

// mergeStacked joins blobs that lie one above the other, overlapping or
// nearly touching, across most of the narrower one's width: the parts of
// one vehicle whose body barely differs from the road (a red car on grey
// asphalt splits at its tail lights). Two vehicles in one lane are never
// that close in a rear view; the upper part on its own would see the rest
// of its own vehicle as a dark plume below it.
func mergeStacked(boxes []image.Rectangle) []image.Rectangle {
	for merged := true; merged; {
		merged = false
		for i := 0; i < len(boxes) && !merged; i++ {
			for j := i + 1; j < len(boxes); j++ {
				a, b := boxes[i], boxes[j]
				ox := min(a.Max.X, b.Max.X) - max(a.Min.X, b.Min.X)
				gap := max(a.Min.Y, b.Min.Y) - min(a.Max.Y, b.Max.Y)
				if ox*10 < 6*min(a.Dx(), b.Dx()) || gap*8 > min(a.Dy(), b.Dy()) {
					continue
				}
				boxes[i] = a.Union(b)
				boxes = append(boxes[:j], boxes[j+1:]...)
				merged = true
				break
			}
		}
	}
	return boxes
}

// changedFill reports whether at least frac of r's pixels differ from the
// background by more than 20 %.
func changedFill(rel []float32, w int, r image.Rectangle, frac float64) bool {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if v := rel[y*w+x]; v > 0.2 || v < -0.2 {
				n++
			}
		}
	}
	return float64(n) >= frac*float64(r.Dx()*r.Dy())
}

// isNight reports whether the background is dark: median sRGB level of
// the background below 40 (linear luminance 0.021).
func (t *SmokeTracker) isNight() bool {
	if t.nightAt == t.frames && t.frames > 0 {
		return t.night
	}
	dark := 0
	n := 0
	for i := 0; i < len(t.bg); i += 13 {
		n++
		if t.bg[i] < 0.021 {
			dark++
		}
	}
	t.night, t.nightAt = dark*2 > n, t.frames
	return t.night
}

// associate matches blobs to live tracks by nearest centre, starts new
// tracks and ends lost ones.
func (t *SmokeTracker) associate(blobs []image.Rectangle, at time.Time) []*VehicleTrack {
	used := make([]bool, len(blobs))
	for _, tr := range t.live {
		best, bestD := -1, math.MaxFloat64
		for i, b := range blobs {
			if used[i] {
				continue
			}
			cx, cy := float64(b.Min.X+b.Max.X)/2, float64(b.Min.Y+b.Max.Y)/2
			d := math.Hypot(cx-tr.cx, cy-tr.cy)
			if d < bestD && d < float64(t.w)/6 {
				best, bestD = i, d
			}
		}
		if best < 0 {
			tr.lost++
			continue
		}
		used[best] = true
		t.update(tr, blobs[best], at)
	}
	for i, b := range blobs {
		if !used[i] {
			t.next++
			t.Stats.Tracks++
			tr := &VehicleTrack{ID: t.next}
			t.update(tr, b, at)
			t.live = append(t.live, tr)
		}
	}
	var ended []*VehicleTrack
	kept := t.live[:0]
	for _, tr := range t.live {
		if tr.lost > 5 {
			ended = append(ended, t.finish(tr))
			continue
		}
		kept = append(kept, tr)
	}
	t.live = kept
	return ended
}

func (t *SmokeTracker) update(tr *VehicleTrack, b image.Rectangle, at time.Time) {
	tr.lost = 0
	tr.Frames++
	// A dense plume has edges of its own and can join the vehicle's blob,
	// stretching the box downwards over the plume (and delaying the rear's
	// crossing). The vehicle's own height is a low height-to-width ratio
	// of the last frames (the vehicle alone); a box much taller than that
	// is cut to it.
	// Only boxes clear of the frame's edges show the whole vehicle.
	ar := float64(b.Dy()) / float64(max(1, b.Dx()))
	if b.Min.Y > 0 && b.Max.Y < t.h-1 && b.Min.X > 0 && b.Max.X < t.w-1 {
		tr.aspects = append(tr.aspects, ar)
		if len(tr.aspects) > 15 {
			tr.aspects = tr.aspects[1:]
		}
	}
	if lo := max(lowAspect(tr.aspects), minRearAspect); len(tr.aspects) > 0 && ar > 1.15*lo {
		b.Max.Y = b.Min.Y + int(math.Round(lo*float64(b.Dx())))
	}
	tr.cx, tr.cy = float64(b.Min.X+b.Max.X)/2, float64(b.Min.Y+b.Max.Y)/2
	full := t.toFrame(b)
	if !tr.Crossed && tr.Frames > 1 && tr.Box.Max.Y > t.cfg.TriggerY && full.Max.Y <= t.cfg.TriggerY {
		tr.Crossed, tr.CrossedAt, tr.CrossBox = true, at, full
	}
	tr.Box = full
	cx := (full.Min.X + full.Max.X) / 2
	for l := 1; l < len(t.cfg.LaneX); l++ {
		if cx >= t.cfg.LaneX[l-1] && cx < t.cfg.LaneX[l] {
			tr.Lane = l
		}
	}
}

// toWork maps a full-frame rectangle to work pixels (rounding down), the
// inverse of toFrame.
func (t *SmokeTracker) toWork(r image.Rectangle) image.Rectangle {
	s := t.scale
	return image.Rect(int(float64(r.Min.X)/s), int(float64(r.Min.Y)/s), int(float64(r.Max.X)/s), int(float64(r.Max.Y)/s))
}

func (t *SmokeTracker) toFrame(r image.Rectangle) image.Rectangle {
	s := t.scale
	return image.Rect(int(float64(r.Min.X)*s), int(float64(r.Min.Y)*s), int(math.Ceil(float64(r.Max.X)*s)), int(math.Ceil(float64(r.Max.Y)*s)))
}

// smoke looks for a plume behind the track in this frame.
func (t *SmokeTracker) smoke(tr *VehicleTrack, f *workFrame, rel []float32, moving []byte, at time.Time) {
	b := t.toWork(tr.Box)
	// Only a vehicle-sized track is judged: a fragment of a vehicle (a
	// dark car split by its windows or by spray) would see the rest of the
	// car below it as a dark plume.
	// Nor is a box cut by the frame's edge or flatter than a vehicle's
	// rear (the upper part of a car, its rest taken for a plume).
	if float64(tr.Box.Dx()) < 0.45*t.laneWidth(tr.Lane) || tr.Box.Min.Y <= 0 ||
		float64(tr.Box.Dy()) < 0.3*float64(tr.Box.Dx()) {
		return
	}
	want := image.Rect(b.Min.X-b.Dx()/6, b.Max.Y+1, b.Max.X+b.Dx()/6, b.Max.Y+1+b.Dy()*9/10)
	roi := want.Intersect(image.Rect(1, 1, f.w-1, f.h-1))
	// The region behind must be mostly in view: cut by the frame's edge
	// (a vehicle still entering), a shadow or a bumper could fill it.
	if roi.Dx() < 4 || roi.Dy() < 4 || roi.Dy()*3 < want.Dy()*2 {
		return
	}
	tr.Judged++
	var black, smooth []float64 // darkness of the plume pixels, alone and averaged over 3×3
	var edge, contrast float64
	bright := 0 // achromatic pixels brighter than the background: spray
	var nEdge int
	var box image.Rectangle
	dark := func(i int) bool {
		return rel[i] < -0.12 && moving[i] == 0 && f.sat[i] < 0.3
	}
	for y := roi.Min.Y; y < roi.Max.Y; y++ {
		for x := roi.Min.X; x < roi.Max.X; x++ {
			i := y*f.w + x
			if rel[i] > 0.12 && moving[i] == 0 && f.sat[i] < 0.3 {
				bright++
			}
			if t.bg[i] < 0.015 || !dark(i) {
				continue
			}
			black = append(black, float64(-rel[i]))
			var sum float32
			for _, d := range [9]int{-f.w - 1, -f.w, -f.w + 1, -1, 0, 1, f.w - 1, f.w, f.w + 1} {
				sum += rel[i+d]
			}
			smooth = append(smooth, float64(-sum/9))
			contrast += float64(-rel[i])
			box = box.Union(image.Rect(x, y, x+1, y+1))
			if !dark(i-1) || !dark(i+1) || !dark(i-f.w) || !dark(i+f.w) {
				gx := float64(f.g[i+1]) - float64(f.g[i-1])
				gy := float64(f.g[i+f.w]) - float64(f.g[i-f.w])
				edge += math.Hypot(gx, gy) / 2
				nEdge++
			}
		}
	}
	if float64(len(black)) < 0.06*float64(roi.Dx()*roi.Dy()) {
		return
	}
	// Water spray and wet tyre tracks brighten the road behind the wheels
	// (white mist, sky reflections); soot only darkens. A box with much
	// brightening is not judged in this frame.
	if float64(bright) > 0.04*float64(roi.Dx()*roi.Dy()) {
		return
	}
	slices.Sort(black)
	p80 := black[len(black)*99/100] // the dense core (p95 understated it by a grade: the work frame blurs a thin core)
	spread := p80 - black[len(black)/5]
	meanB := contrast / float64(len(black))
	// Edge softness: boundary gradient (sRGB levels) per unit of darkness
	// contrast in sRGB levels.
	bgLevel := 0.0
	for y := roi.Min.Y; y < roi.Max.Y; y += 2 {
		for x := roi.Min.X; x < roi.Max.X; x += 2 {
			bgLevel += gammaOf(float64(t.bg[y*f.w+x]))
		}
	}
	bgLevel /= float64(((roi.Dy() + 1) / 2) * ((roi.Dx() + 1) / 2))
	soft := edge / float64(max(1, nEdge)) / max(4, bgLevel*meanB)
	// A cast shadow darkens the road by one factor: most of its pixels sit
	// near its median blackness. A plume thins out from its core.
	// Judged on the darkness averaged over 3×3 pixels, so that sensor noise
	// does not make a flat shadow look varied.
	slices.Sort(smooth)
	med := smooth[len(smooth)/2]
	near := 0
	for _, v := range smooth {
		if math.Abs(v-med) < 0.15*med {
			near++
		}
	}
	uniform := float64(near) / float64(len(smooth))
	if soft > 0.22 || spread < 0.08 || uniform > shadowUniform {
		return // hard-edged or uniform: a shadow, not a plume
	}
	// The stills' hard rules (smoke_cues.go) on the same region: in video
	// the local background of each pixel is the learned background model,
	// so local is the median darkness against it.
	c := f.regionCues(box, dark)
	c.Local = med
	c.Edge = soft
	c.Night = f.medianGrey()
	if c.reject() != "" {
		tr.Rejected++
		return
	}
	tr.Plume++
	tr.blackness = append(tr.blackness, p80)
	if p80 > tr.bestBlack {
		tr.bestBlack, tr.SmokeBox, tr.SmokeAt = p80, t.toFrame(box), at
	}
}

// minRearAspect is the flattest height-to-width ratio a box is cut to: a
// vehicle's rear is at least this high for its width. A track whose early
// blobs were only a moving part of the vehicle (its roof, its windows)
// would otherwise be cut short, its rear taken to cross the trigger line
// early and the vehicle below it taken for a plume.
const minRearAspect = 0.6

// lowAspect is the 30th percentile of the height-to-width ratios (the
// lowest could be a frame in which only part of the vehicle moved), 0 for
// none.
func lowAspect(a []float64) float64 {
	if len(a) == 0 {
		return 0
	}
	s := slices.Clone(a)
	slices.Sort(s)
	return s[len(s)*3/10]
}

// shadowUniform is the share of a dark region's pixels within ±0.05 of
// its median blackness above which it is taken for a cast shadow.
var shadowUniform = 0.75

// laneWidth is lane's width in full-frame pixels (the narrowest lane when
// lane is 0 or unknown).
func (t *SmokeTracker) laneWidth(lane int) float64 {
	if lane >= 1 && lane < len(t.cfg.LaneX) {
		return float64(t.cfg.LaneX[lane] - t.cfg.LaneX[lane-1])
	}
	w := math.MaxFloat64
	for l := 1; l < len(t.cfg.LaneX); l++ {
		w = min(w, float64(t.cfg.LaneX[l]-t.cfg.LaneX[l-1]))
	}
	if w == math.MaxFloat64 {
		return 0
	}
	return w
}

// finish computes a track's verdict.
func (t *SmokeTracker) finish(tr *VehicleTrack) *VehicleTrack {
	if len(tr.blackness) > 0 {
		bs := slices.Clone(tr.blackness)
		slices.Sort(bs)
		tr.Blackness = bs[len(bs)*9/10]
		tr.Grade = Ringelmann(tr.Blackness)
	}
	// Persistence counts the frames in which the region behind the vehicle
	// could be examined (the vehicle whole and vehicle-sized), not those
	// in which it was still entering the view.
	frac := float64(tr.Plume) / float64(max(1, tr.Judged))
	// Only a vehicle that crossed the trigger line can be matched to a
	// pass, and only it is judged.
	tr.Smoky = tr.Crossed && tr.Plume >= 6 && frac >= 0.35 && tr.Grade >= t.cfg.MinGrade
	if tr.Smoky {
		t.Stats.Smoky++
		tr.Confidence = min(0.99, 0.5+frac/2)
	} else {
		tr.Confidence = min(0.99, 1-frac/2)
	}
	return tr
}

// Flush ends every live track (at the end of a clip).
func (t *SmokeTracker) Flush() []*VehicleTrack {
	ended := t.seed() // a clip shorter than the warm-up

	for _, tr := range t.live {
		ended = append(ended, t.finish(tr))
	}
	t.live = nil
	return ended
}

// Live returns the tracks in view now (owned by the tracker: read them
// during the frame only).
func (t *SmokeTracker) Live() []*VehicleTrack { return t.live }
