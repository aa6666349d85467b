package vision

// Synthetic road scenes with ground truth, for tests, evaluation and the
// demo. A rear-facing camera over a two-lane road sees vehicles drive away
// from it (up the frame). Some emit black smoke of a known opacity, which
// diffuses and drifts; the rest bring the usual false alarms: their own
// shadows, dark paint, wet or stained road, tree shadows, water spray,
// light dust, changing light and night.
//
// Smoke is composited physically in linear light: a pixel behind smoke of
// opacity a becomes (1 − a)·background, so its Ringelmann blackness is a.
// The plume is a chain of puffs emitted at the exhaust every frame; each
// puff's radius grows with the square root of its age (diffusion) and its
// centre drifts with the wind. The opacity at a point is
// A·(1 − exp(−D/D0)), with D the sum of the puffs' Gaussian densities,
// normalised so the core near the exhaust reaches the ground-truth opacity
// A.

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand"

	"gocv.io/x/gocv"
)

// Scene case names: what a scene is built to test.
const (
	SceneSmoky   = "smoky"   // black-smoke vehicles among clean ones
	SceneShadows = "shadows" // low sun: long, hard vehicle shadows; dark vehicles
	SceneWet     = "wet"     // wet and stained road, tree shadows, water spray
	SceneDust    = "dust"    // light dust and light (grade-0) smoke
	SceneLight   = "light"   // changing light: clouds passing
	SceneNight   = "night"   // night: dark road, headlights and tail lights
	SceneMixed   = "mixed"   // a little of everything, for the demo
)

// SceneSpec describes a scene to render. Render is deterministic in Seed.
type SceneSpec struct {
	Case     string  `json:"case"`
	Seed     int64   `json:"seed"`
	Width    int     `json:"width"`
	Height   int     `json:"height"`
	FPS      float64 `json:"fps"`
	Seconds  float64 `json:"seconds"`
	Vehicles int     `json:"vehicles"` // how many vehicles pass
}

// SceneVehicle is one vehicle's ground truth.
type SceneVehicle struct {
	ID         int     `json:"id"`
	Lane       int     `json:"lane"` // 1 = left, 2 = right
	Plate      string  `json:"plate"`
	Colour     string  `json:"colour"`
	Dark       bool    `json:"dark"`
	Smoky      bool    `json:"smoky"`
	Opacity    float64 `json:"opacity"` // plume core opacity (Ringelmann blackness), 0 when clean
	Grade      int     `json:"grade"`   // Ringelmann grade of Opacity
	Spray      bool    `json:"spray,omitempty"`
	Dust       bool    `json:"dust,omitempty"`
	EnterFrame int     `json:"enter_frame"`
	CrossFrame int     `json:"cross_frame"` // frame at which its rear crosses the trigger line
	CrossSec   float64 `json:"cross_sec"`   // seconds from the start of the clip
	Speed      float64 `json:"speed_px_per_frame"`
	W          int     `json:"w"`
	H          int     `json:"h"`
}

// SceneTruth is the ground truth of a rendered scene.
type SceneTruth struct {
	Spec     SceneSpec      `json:"spec"`
	Frames   int            `json:"frames"`
	TriggerY int            `json:"trigger_y"` // the trigger line, in pixels from the top
	LaneX    [3]int         `json:"lane_x"`    // lane boundaries: lane 1 is [0,1), lane 2 [1,2)
	Vehicles []SceneVehicle `json:"vehicles"`
	// Boxes[f] lists the vehicles visible in frame f.
	Boxes [][]SceneBox `json:"boxes"`
}

// SceneBox is one vehicle's box in one frame.
type SceneBox struct {
	ID int `json:"id"`
	X  int `json:"x"`
	Y  int `json:"y"`
	W  int `json:"w"`
	H  int `json:"h"`
}

// Scene renders frames of a SceneSpec one by one.
type Scene struct {
	Truth SceneTruth
	spec  SceneSpec
	rng   *rand.Rand
	bg    []float32 // linear RGB background, 3 per pixel
	wet   []float32 // static darkening factor (wet patches, stains, tree shadows)
	puffs [][]puff  // per vehicle
	frame int
	buf   []byte
	noise []float32
}

// gammaLUT maps linear light in [0, 1] (4096 steps) to sRGB 0–255.
var gammaLUT = func() []float32 {
	t := make([]float32, 4096)
	for i := range t {
		t[i] = float32(gammaOf(float64(i) / 4095))
	}
	return t
}()

type puff struct {
	x, y, age float64
}

// NewScene prepares a scene. Width and height must be 160–1920 and
// 120–1080, FPS 1–60 and Seconds 1–600.
func NewScene(spec SceneSpec) (*Scene, error) {
	if spec.Width < 160 || spec.Width > 1920 || spec.Height < 120 || spec.Height > 1080 ||
		spec.FPS < 1 || spec.FPS > 60 || spec.Seconds < 1 || spec.Seconds > 600 || spec.Vehicles < 0 || spec.Vehicles > 10000 {
		return nil, fmt.Errorf("new scene: spec out of range: %+v", spec)
	}
	s := &Scene{spec: spec, rng: rand.New(rand.NewSource(spec.Seed))}
	w, h := spec.Width, spec.Height
	frames := int(spec.Seconds * spec.FPS)
	s.Truth = SceneTruth{Spec: spec, Frames: frames, TriggerY: h * 55 / 100, LaneX: [3]int{w * 18 / 100, w / 2, w * 82 / 100}}
	s.background()
	s.vehicles(frames)
	s.puffs = make([][]puff, len(s.Truth.Vehicles))
	s.Truth.Boxes = make([][]SceneBox, frames)
	for f := 0; f < frames; f++ {
		s.Truth.Boxes[f] = []SceneBox{}
		for _, v := range s.Truth.Vehicles {
			if r, ok := s.vehicleRect(v, f); ok {
				s.Truth.Boxes[f] = append(s.Truth.Boxes[f], SceneBox{ID: v.ID, X: r.Min.X, Y: r.Min.Y, W: r.Dx(), H: r.Dy()})
			}
		}
	}
	return s, nil
}

func (s *Scene) background() {
	w, h := s.spec.Width, s.spec.Height
	s.bg = make([]float32, 3*w*h)
	s.wet = make([]float32, w*h)
	lx := s.Truth.LaneX
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := y*w + x
			var r, g, b float64
			switch {
			case x < lx[0]-w/50 || x > lx[2]+w/50: // verges: grass and a hedge
				r, g, b = 0.07, 0.16, 0.05
			default: // asphalt with grain
				v := 0.16 + 0.02*s.rng.Float64()
				r, g, b = v, v, v*1.03
			}
			// lane lines: solid edges, dashed centre
			if sceneAbs(x-lx[0]) < w/200+1 || sceneAbs(x-lx[2]) < w/200+1 || (sceneAbs(x-lx[1]) < w/250+1 && (y/(h/12))%2 == 0) {
				r, g, b = 0.75, 0.75, 0.72
			}
			s.bg[3*i], s.bg[3*i+1], s.bg[3*i+2] = float32(b), float32(g), float32(r)
			s.wet[i] = 1
		}
	}
	// A landmark: a gantry post and sign at the right verge.
	for y := h / 10; y < h/2; y++ {
		for x := lx[2] + w/25; x < lx[2]+w/25+w/80; x++ {
			s.setBG(x, y, 0.5, 0.5, 0.5)
		}
	}
	for y := h / 10; y < h/10+h/12; y++ {
		for x := lx[2] + w/40; x < min(w, lx[2]+w/40+w/9); x++ {
			s.setBG(x, y, 0.02, 0.25, 0.05)
		}
	}
	switch s.spec.Case {
	case SceneWet, SceneMixed:
		// Wet patches and oil stains: soft, static, dark.
		for k := 0; k < 6; k++ {
			cx, cy := lx[0]+s.rng.Intn(lx[2]-lx[0]), s.rng.Intn(h)
			rx, ry := w/20+s.rng.Intn(w/10), h/30+s.rng.Intn(h/12)
			s.darken(cx, cy, rx, ry, 0.45+0.2*s.rng.Float64(), true)
		}
		// Tree shadows: hard-edged dapples from the left verge.
		for k := 0; k < 25; k++ {
			cx, cy := lx[0]-w/20+s.rng.Intn(w/5), s.rng.Intn(h)
			s.darken(cx, cy, w/60+s.rng.Intn(w/40), h/50+s.rng.Intn(h/40), 0.45, false)
		}
	}
}

func (s *Scene) setBG(x, y int, r, g, b float32) {
	if x < 0 || y < 0 || x >= s.spec.Width || y >= s.spec.Height {
		return
	}
	i := y*s.spec.Width + x
	s.bg[3*i], s.bg[3*i+1], s.bg[3*i+2] = b, g, r
}

// darken multiplies the static darkening map by factor inside an ellipse,
// with a soft or hard edge.
func (s *Scene) darken(cx, cy, rx, ry int, factor float64, soft bool) {
	for y := cy - ry; y <= cy+ry; y++ {
		for x := cx - rx; x <= cx+rx; x++ {
			if x < 0 || y < 0 || x >= s.spec.Width || y >= s.spec.Height {
				continue
			}
			dx, dy := float64(x-cx)/float64(rx), float64(y-cy)/float64(ry)
			d := dx*dx + dy*dy
			if d > 1 {
				continue
			}
			f := factor
			if soft {
				f = 1 - (1-factor)*(1-d)
			}
			s.wet[y*s.spec.Width+x] *= float32(f)
		}
	}
}

var sceneColours = []struct {
	name    string
	r, g, b float64
	dark    bool
}{
	{"white", 0.8, 0.8, 0.8, false}, {"silver", 0.45, 0.46, 0.48, false}, {"red", 0.5, 0.03, 0.03, false},
	{"blue", 0.03, 0.08, 0.4, false}, {"black", 0.015, 0.015, 0.017, true}, {"dark-grey", 0.04, 0.04, 0.045, true},
	{"yellow", 0.7, 0.5, 0.02, false},
}

const plateLetters = "ABCDEFGHJKLMNPQRSTUVWXYZ"

func (s *Scene) vehicles(frames int) {
	w, h := s.spec.Width, s.spec.Height
	n := s.spec.Vehicles
	if n == 0 {
		return
	}
	gap := max(1, frames/(n+1))
	for k := 0; k < n; k++ {
		c := sceneColours[s.rng.Intn(len(sceneColours))]
		v := SceneVehicle{ID: k + 1, Lane: 1 + k%2, Colour: c.name, Dark: c.dark,
			W: w * (17 + s.rng.Intn(5)) / 100, H: h * (22 + s.rng.Intn(10)) / 100}
		v.Speed = float64(h) / (s.spec.FPS * (2.2 + s.rng.Float64()))
		// GA 36: province, city letter, five serial characters.
		v.Plate = fmt.Sprintf("%c%c%c%04d", provinceOf(s.spec.Seed, v.ID), 'A'+rune(s.rng.Intn(8)), plateLetters[s.rng.Intn(len(plateLetters))], s.rng.Intn(100000)%10000)
		switch s.spec.Case {
		case SceneSmoky:
			v.Smoky = k%2 == 0
		case SceneMixed:
			v.Smoky = k%3 == 0
		case SceneShadows:
			if k%2 == 0 {
				v.Colour, v.Dark = "black", true
			}
		case SceneWet:
			v.Spray = true
		case SceneDust:
			v.Dust = k%2 == 0
		}
		if v.Smoky {
			v.Opacity = []float64{0.35, 0.5, 0.65, 0.8, 0.95}[s.rng.Intn(5)]
		}
		if v.Dust {
			v.Opacity = 0.08 // light smoke or dust: grade 0
		}
		v.Grade = Ringelmann(v.Opacity)
		if !v.Smoky {
			v.Grade = 0
		}
		v.EnterFrame = gap/2 + k*gap
		// The vehicle enters with its top at the bottom edge; its rear (the
		// box's bottom) crosses the trigger line when top+H = TriggerY.
		dist := float64(h + v.H - s.Truth.TriggerY)
		v.CrossFrame = v.EnterFrame + int(math.Ceil(dist/v.Speed))
		v.CrossSec = float64(v.CrossFrame) / s.spec.FPS
		s.Truth.Vehicles = append(s.Truth.Vehicles, v)
	}
}

// vehicleRect is the vehicle's box in frame f, clipped to the frame.
func (s *Scene) vehicleRect(v SceneVehicle, f int) (image.Rectangle, bool) {
	if f < v.EnterFrame {
		return image.Rectangle{}, false
	}
	top := float64(s.spec.Height) - float64(f-v.EnterFrame)*v.Speed
	// Perspective, roughly: vehicles shrink a little as they drive away.
	cx := (s.Truth.LaneX[v.Lane-1] + s.Truth.LaneX[v.Lane]) / 2
	r := image.Rect(cx-v.W/2, int(top), cx+v.W/2, int(top)+v.H)
	r = r.Intersect(image.Rect(0, 0, s.spec.Width, s.spec.Height))
	return r, !r.Empty()
}

// light returns the global illumination gain in frame f.
func (s *Scene) light(f int) float64 {
	switch s.spec.Case {
	case SceneLight:
		// Clouds: the light drops to 45 % and back over 6 seconds.
		t := float64(f) / s.spec.FPS
		return 0.725 + 0.275*math.Cos(2*math.Pi*t/6)
	case SceneNight:
		return 0.12
	}
	return 1
}

// Next renders the next frame into a BGR Mat the caller must close. It
// returns false after the last frame.
func (s *Scene) Next() (gocv.Mat, bool, error) {
	if s.frame >= s.Truth.Frames {
		return gocv.NewMat(), false, nil
	}
	f := s.frame
	s.frame++
	w, h := s.spec.Width, s.spec.Height
	lin := make([]float32, 3*w*h)
	gain := float32(s.light(f))
	for i := 0; i < w*h; i++ {
		k := gain * s.wet[i]
		lin[3*i], lin[3*i+1], lin[3*i+2] = s.bg[3*i]*k, s.bg[3*i+1]*k, s.bg[3*i+2]*k
	}
	shadows := s.spec.Case == SceneShadows || s.spec.Case == SceneMixed
	for vi, v := range s.Truth.Vehicles {
		r, ok := s.vehicleRect(v, f)
		if !ok {
			s.advancePuffs(vi, v, f, false)
			continue
		}
		full := s.fullRect(v, f)
		if shadows || s.spec.Case == SceneSmoky {
			// The vehicle's own shadow: hard-edged, behind it (below in
			// the frame), long when the sun is low.
			sh := h / 25
			if shadows {
				sh = h / 7
			}
			s.fillRect(lin, image.Rect(full.Min.X-w/60, full.Max.Y, full.Max.X+w/30, full.Max.Y+sh), 0.35, [3]float32{0, 0, 0})
		}
		c := sceneColours[0]
		for _, cc := range sceneColours {
			if cc.name == v.Colour {
				c = cc
			}
		}
		col := [3]float32{float32(c.b) * gain, float32(c.g) * gain, float32(c.r) * gain}
		s.fillRect(lin, full, 1, col)
		// Rear window, tail lights, bumper.
		s.fillRect(lin, image.Rect(full.Min.X+full.Dx()/8, full.Min.Y+full.Dy()/10, full.Max.X-full.Dx()/8, full.Min.Y+full.Dy()*4/10), 1, [3]float32{0.02 * gain, 0.025 * gain, 0.02 * gain})
		tail := float32(0.35)
		if s.spec.Case == SceneNight {
			tail = 0.9
		}
		s.fillRect(lin, image.Rect(full.Min.X+2, full.Min.Y+full.Dy()/2, full.Min.X+full.Dx()/7, full.Min.Y+full.Dy()*6/10), 1, [3]float32{0.01, 0.01, tail})
		s.fillRect(lin, image.Rect(full.Max.X-full.Dx()/7, full.Min.Y+full.Dy()/2, full.Max.X-2, full.Min.Y+full.Dy()*6/10), 1, [3]float32{0.01, 0.01, tail})
		s.fillRect(lin, image.Rect(full.Min.X, full.Max.Y-full.Dy()/12, full.Max.X, full.Max.Y), 1, [3]float32{0.03 * gain, 0.03 * gain, 0.03 * gain})
		s.advancePuffs(vi, v, f, true)
		_ = r
	}
	for vi, v := range s.Truth.Vehicles {
		if len(s.puffs[vi]) > 0 {
			s.compositePlume(lin, vi, v, gain)
		}
	}
	// Encode to sRGB with sensor noise.
	if len(s.buf) != 3*w*h {
		s.buf = make([]byte, 3*w*h)
	}
	if s.noise == nil {
		s.noise = make([]float32, 4099)
		for i := range s.noise {
			s.noise[i] = float32(s.rng.NormFloat64() * 1.5)
		}
	}
	off := s.rng.Intn(len(s.noise))
	for i, v := range lin {
		g := gammaLUT[min(len(gammaLUT)-1, int(max(0, v)*float32(len(gammaLUT)-1)))] + s.noise[(i+off)%len(s.noise)]
		s.buf[i] = byte(max(0, min(255, g+0.5)))
	}
	m, err := gocv.NewMatFromBytes(h, w, gocv.MatTypeCV8UC3, s.buf)
	if err != nil {
		return gocv.NewMat(), false, fmt.Errorf("render frame: %w", err)
	}
	out := m.Clone()
	m.Close()
	// Plates are drawn last: the province from the glyph atlas, the rest
	// with OpenCV's Hershey text.
	for _, v := range s.Truth.Vehicles {
		if _, ok := s.vehicleRect(v, f); !ok {
			continue
		}
		full := s.fullRect(v, f)
		// A GA 36 plate (440×140 mm) 45 % of the vehicle's width, centred
		// two thirds down its rear.
		pw := max(24, full.Dx()*45/100)
		ph := pw * 140 / 440
		pr := image.Rect(full.Min.X+(full.Dx()-pw)/2, full.Min.Y+full.Dy()*64/100, full.Min.X+(full.Dx()+pw)/2, full.Min.Y+full.Dy()*64/100+ph)
		if !pr.In(image.Rect(0, 0, w, h)) {
			continue
		}
		drawPlate(&out, pr, v.Plate, float64(gain))
	}
	if s.spec.Case == SceneNight {
		// Headlights of oncoming traffic flare the far left.
		gocv.Circle(&out, image.Pt(w/20, h/6), h/30, color.RGBA{R: 255, G: 250, B: 220, A: 255}, -1)
	}
	return out, true, nil
}

// fullRect is the vehicle's unclipped box in frame f.
func (s *Scene) fullRect(v SceneVehicle, f int) image.Rectangle {
	top := float64(s.spec.Height) - float64(f-v.EnterFrame)*v.Speed
	cx := (s.Truth.LaneX[v.Lane-1] + s.Truth.LaneX[v.Lane]) / 2
	return image.Rect(cx-v.W/2, int(top), cx+v.W/2, int(top)+v.H)
}

// fillRect blends colour col over r with weight a (a=1 paints; col 0
// with a<1 darkens).
func (s *Scene) fillRect(lin []float32, r image.Rectangle, a float32, col [3]float32) {
	r = r.Intersect(image.Rect(0, 0, s.spec.Width, s.spec.Height))
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			i := 3 * (y*s.spec.Width + x)
			for c := 0; c < 3; c++ {
				lin[i+c] = lin[i+c]*(1-a) + col[c]*a
			}
		}
	}
}

// advancePuffs ages the vehicle's puffs and emits a new one at the
// exhaust while it is in view.
func (s *Scene) advancePuffs(vi int, v SceneVehicle, f int, visible bool) {
	if v.Opacity == 0 && !v.Spray {
		return
	}
	wind := 0.0015 * float64(s.spec.Width)
	kept := s.puffs[vi][:0]
	for _, p := range s.puffs[vi] {
		p.age++
		p.x += wind + 0.3*s.rng.NormFloat64()
		p.y += 0.3 * s.rng.NormFloat64()
		if p.age < 2.2*s.spec.FPS {
			kept = append(kept, p)
		}
	}
	s.puffs[vi] = kept
	if visible {
		full := s.fullRect(v, f)
		s.puffs[vi] = append(s.puffs[vi], puff{x: float64(full.Min.X + full.Dx()/5), y: float64(full.Max.Y)})
	}
}

// compositePlume blends a vehicle's plume (black smoke, dust or white
// spray) over the frame.
func (s *Scene) compositePlume(lin []float32, vi int, v SceneVehicle, gain float32) {
	w, h := s.spec.Width, s.spec.Height
	base := float64(w) / 90 // puff radius at birth
	var box image.Rectangle
	for _, p := range s.puffs[vi] {
		r := 3 * base * math.Sqrt(1+p.age/4)
		box = box.Union(image.Rect(int(p.x-r), int(p.y-r), int(p.x+r), int(p.y+r)))
	}
	box = box.Intersect(image.Rect(0, 0, w, h))
	// Colour: soot is black; dust is light brown; spray is white.
	col := [3]float32{0, 0, 0}
	opacity := v.Opacity
	switch {
	case v.Spray:
		col = [3]float32{0.7 * gain, 0.7 * gain, 0.7 * gain}
		opacity = 0.35
	case v.Dust:
		col = [3]float32{0.3 * gain, 0.4 * gain, 0.45 * gain}
	}
	d0 := 0.6 // density at which opacity reaches 1 − 1/e of its core value
	norm := 1 / (1 - math.Exp(-2.5/d0))
	for y := box.Min.Y; y < box.Max.Y; y++ {
		for x := box.Min.X; x < box.Max.X; x++ {
			dsum := 0.0
			for _, p := range s.puffs[vi] {
				sig := base * math.Sqrt(1+p.age/4)
				dx, dy := float64(x)-p.x, float64(y)-p.y
				r2 := (dx*dx + dy*dy) / (2 * sig * sig)
				if r2 > 4.5 {
					continue
				}
				// Mass is conserved: the peak density falls as the puff
				// spreads.
				dsum += 0.25 * math.Exp(-r2) / (1 + p.age/4)
			}
			if dsum == 0 {
				continue
			}
			a := float32(min(opacity, opacity*norm*(1-math.Exp(-dsum/d0))))
			i := 3 * (y*w + x)
			for c := 0; c < 3; c++ {
				lin[i+c] = lin[i+c]*(1-a) + col[c]*a
			}
		}
	}
}

func sceneAbs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
