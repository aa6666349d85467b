package vision

// Vehicles and their smoke in video.
//
// # Method
//
// Every frame is shrunk to TrackWorkWidth pixels wide and decoded to linear
// luminance. A background model (a running mean, learning fast where the
// frame matches it and slowly where something moves) absorbs everything
// static: wet patches, stains, tree shadows. A global gain, the median
// ratio of frame to background, follows changing light.
//
// Vehicles are found by motion: pixels that differ from the background by
// more than 20 % and carry an edge (vehicles have outlines, windows,
// lights and plates; smoke has none). A closing joins them into one blob
// per vehicle. Blobs are tracked by their nearest centre from frame to
// frame, giving stable IDs; each track knows its lane (from the lane
// boundaries) and when its rear crossed the trigger line.
//
// Smoke is sought behind each vehicle (below it in a rear view) in a box as
// wide as the vehicle and as deep as 0.9 of its height: pixels darker than
// the background by at least 12 %, achromatic, and outside the vehicle
// blob. A frame shows a plume when they fill at least 6 % of the box, the
// blob's edge is soft relative to its contrast (a hard-edged dark shape is
// a shadow) and its darkness varies (a shadow is uniform). A track is
// smoky when at least 35 % of its frames in view (and at least 6) show a
// plume: appearance in one frame combined with persistence over time.
//
// The grade is the Ringelmann grade of the plume's blackness against the
// background model: the 99th percentile of 1 − Y/(gain·Ybg) over the plume
// pixels (the dense part of the plume; the thin edges would understate
// it), median over the frames that show it.
//
// Night: where the background is darker than 1.5 % linear luminance, the
// contrast is too low to judge smoke, and no plume is reported.

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
	Plume      int             `json:"plume_frames"` // frames that showed a plume
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
}

// TrackerStats count what a tracker has seen.
type TrackerStats struct {
	Frames, BadFrames, Tracks, Smoky int64
}

// SmokeTracker tracks vehicles in one camera's frames and judges their
// smoke. It is not safe for concurrent use: one goroutine per camera.
type SmokeTracker struct {
	cfg    TrackerConfig
	w, h   int     // work size
	scale  float64 // frame pixels per work pixel
	fw, fh int
	bg     []float32
	frames int
	next   int64
	live   []*VehicleTrack
	Stats  TrackerStats
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
	if t.bg == nil || f.w != t.w || f.h != t.h || frame.Cols() != t.fw {
		t.w, t.h, t.fw, t.fh, t.scale = f.w, f.h, frame.Cols(), frame.Rows(), f.scale
		t.bg = slices.Clone(f.y)
		t.frames = 0
		var ended []*VehicleTrack
		for _, tr := range t.live {
			ended = append(ended, t.finish(tr))
		}
		t.live = nil
		return ended, nil
	}
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
	blobs, err := t.blobs(moving)
	if err != nil {
		return nil, err
	}
	// Update the background: fast where it matches, slowly elsewhere.
	for i := 0; i < n; i++ {
		a := float32(0.05)
		if rel[i] > 0.1 || rel[i] < -0.1 {
			a = 0.003
		}
		if t.frames < 10 {
			a = 0.3
		}
		t.bg[i] += a * (f.y[i]/gain - t.bg[i])
	}
	ended := t.associate(blobs, at)
	for _, tr := range t.live {
		if tr.lost == 0 {
			t.smoke(tr, f, rel, moving, at)
		}
	}
	return ended, nil
}

// blobs returns vehicle-sized boxes of moving edges, in work pixels.
func (t *SmokeTracker) blobs(moving []byte) ([]image.Rectangle, error) {
	m, err := gocv.NewMatFromBytes(t.h, t.w, gocv.MatTypeCV8U, moving)
	if err != nil {
		return nil, fmt.Errorf("track: %w", err)
	}
	defer m.Close()
	k := gocv.GetStructuringElement(gocv.MorphRect, image.Pt(9, 9))
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
		if w < minSide || h < minSide || area < w*h/5 {
			continue
		}
		out = append(out, image.Rect(x, y, x+w, y+h))
	}
	return out, nil
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

func (t *SmokeTracker) toFrame(r image.Rectangle) image.Rectangle {
	s := t.scale
	return image.Rect(int(float64(r.Min.X)*s), int(float64(r.Min.Y)*s), int(math.Ceil(float64(r.Max.X)*s)), int(math.Ceil(float64(r.Max.Y)*s)))
}

// smoke looks for a plume behind the track in this frame.
func (t *SmokeTracker) smoke(tr *VehicleTrack, f *workFrame, rel []float32, moving []byte, at time.Time) {
	b := image.Rect(int(float64(tr.Box.Min.X)/t.scale), int(float64(tr.Box.Min.Y)/t.scale), int(float64(tr.Box.Max.X)/t.scale), int(float64(tr.Box.Max.Y)/t.scale))
	roi := image.Rect(b.Min.X-b.Dx()/6, b.Max.Y+1, b.Max.X+b.Dx()/6, b.Max.Y+1+b.Dy()*9/10).Intersect(image.Rect(1, 1, f.w-1, f.h-1))
	if roi.Dx() < 4 || roi.Dy() < 4 {
		return
	}
	var black []float64
	var edge, contrast float64
	var nEdge int
	var box image.Rectangle
	dark := func(i int) bool {
		return rel[i] < -0.12 && moving[i] == 0 && f.sat[i] < 0.3
	}
	for y := roi.Min.Y; y < roi.Max.Y; y++ {
		for x := roi.Min.X; x < roi.Max.X; x++ {
			i := y*f.w + x
			if t.bg[i] < 0.015 || !dark(i) {
				continue
			}
			black = append(black, float64(-rel[i]))
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
	if soft > 0.22 || spread < 0.08 {
		return // hard-edged or uniform: a shadow, not a plume
	}
	tr.Plume++
	tr.blackness = append(tr.blackness, p80)
	if p80 > tr.bestBlack {
		tr.bestBlack, tr.SmokeBox, tr.SmokeAt = p80, t.toFrame(box), at
	}
}

// finish computes a track's verdict.
func (t *SmokeTracker) finish(tr *VehicleTrack) *VehicleTrack {
	if len(tr.blackness) > 0 {
		bs := slices.Clone(tr.blackness)
		slices.Sort(bs)
		tr.Blackness = bs[len(bs)/2]
		tr.Grade = Ringelmann(tr.Blackness)
	}
	frac := float64(tr.Plume) / float64(max(1, tr.Frames))
	tr.Smoky = tr.Plume >= 6 && frac >= 0.35 && tr.Grade >= t.cfg.MinGrade
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
	var ended []*VehicleTrack
	for _, tr := range t.live {
		ended = append(ended, t.finish(tr))
	}
	t.live = nil
	return ended
}

// Live returns the tracks in view now (owned by the tracker: read them
// during the frame only).
func (t *SmokeTracker) Live() []*VehicleTrack { return t.live }
