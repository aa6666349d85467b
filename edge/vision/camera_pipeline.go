package vision

// The per-camera pipeline: frames → vehicle tracker → plate reads with
// multi-frame voting → smoke verdict → a Sighting per vehicle that crossed
// the trigger line, carrying what evidence needs.
//
// Plates are read on the full-resolution frame, in the tracked vehicle's
// box, on at most MaxPlateReads frames around the trigger line (every
// third frame from the moment the vehicle is fully in view), and the reads
// are combined with VotePlates. The best read's crop (or, without a plate
// reader, the lower middle of the vehicle's rear) becomes the plate
// close-up.
//
// A Sighting is emitted once its track has ended and the camera's clock
// has passed the crossing by ClipAfter, so the ring holds the whole clip.

import (
	"context"
	"fmt"
	"image"
	"log/slog"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/plume-emissions/plume"
)

// PlateRead is one plate read in a vehicle image.
type PlateRead struct {
	Plate plume.Plate
	Chars []float64 // per-character confidence, when known
	Box   image.Rectangle
	raw   any // the reader's own value, for voting
}

// PlateReader reads the best plate in an image of one vehicle. Found is
// false when there is none.
type PlateReader interface {
	ReadVehicle(ctx context.Context, img gocv.Mat) (read PlateRead, found bool, err error)
	// Vote combines the reads of one vehicle.
	Vote(reads []PlateRead) (PlateRead, bool)
}

// PipelineConfig configures a Pipeline.
type PipelineConfig struct {
	Camera   string
	LaneX    []int // lane boundaries, full-frame pixels
	Lanes    []int // station lane number per interval of LaneX
	TriggerY int
	MinGrade int // Ringelmann grade that counts as smoke (from the profile)
	// ClipBefore and ClipAfter are the clip's seconds around the crossing.
	ClipBefore, ClipAfter time.Duration
	// Plates reads plates; nil leaves sightings without a plate.
	Plates        PlateReader
	MaxPlateReads int // per vehicle (0 means 4)
	// MaxPending bounds sightings waiting for the clip's end (0 means 32).
	MaxPending int
	Logger     *slog.Logger
}

// Sighting is one vehicle that crossed the trigger line, with its plate,
// smoke verdict and the material for its evidence.
type Sighting struct {
	Camera  string
	TrackID int64
	Lane    int // station lane; 0 when outside every lane
	Crossed time.Time
	Plate   *plume.Plate
	Smoke   *plume.Smoke
	Track   VehicleTrack

	// Evidence material: JPEG frames from the ring (shared, immutable).
	Scenes     []RingFrame       // ≥ 2 full scenes at different times
	SceneBoxes []image.Rectangle // the vehicle in each scene, full-frame pixels
	PlateJPEG  []byte            // plate close-up
	SmokeFrame RingFrame         // the frame where the plume was densest
	SmokeBox   image.Rectangle   // full-frame pixels
	Ring       *Ring             // where the clip is cut from
	ClipFrom   time.Time
	ClipTo     time.Time
}

// PipelineStats count a pipeline's work.
type PipelineStats struct {
	Frames, Sightings, Smoky, PlateReads, PlatesRead, Dropped int64
	Tracker                                                   TrackerStats
}

type trackPlates struct {
	reads     []PlateRead
	lastFrame int64
	bestJPEG  []byte
	bestConf  float64
	boxes     []timedBox
}

type timedBox struct {
	at  time.Time
	box image.Rectangle
}

// Pipeline runs one camera's analysis. Process is called from the
// camera's goroutine; Stats may be called from any.
type Pipeline struct {
	cfg     PipelineConfig
	log     *slog.Logger
	tracker *SmokeTracker
	ring    *Ring
	plates  map[int64]*trackPlates
	pending []*Sighting
	emit    func(*Sighting)
	frameH  int

	mu    sync.Mutex
	stats PipelineStats
	clock time.Time
}

// NewPipeline returns a pipeline whose sightings go to emit.
func NewPipeline(cfg PipelineConfig, ring *Ring, emit func(*Sighting)) (*Pipeline, error) {
	if len(cfg.LaneX) < 2 || len(cfg.Lanes) != len(cfg.LaneX)-1 || cfg.TriggerY <= 0 {
		return nil, fmt.Errorf("pipeline %s: lanes and trigger line are required", cfg.Camera)
	}
	if ring == nil || emit == nil {
		return nil, fmt.Errorf("pipeline %s: ring and emit are required", cfg.Camera)
	}
	if cfg.MaxPlateReads <= 0 {
		cfg.MaxPlateReads = 4
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 32
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Pipeline{
		cfg: cfg, log: cfg.Logger.With("camera", cfg.Camera), ring: ring, emit: emit,
		tracker: NewSmokeTracker(TrackerConfig{LaneX: cfg.LaneX, TriggerY: cfg.TriggerY, MinGrade: cfg.MinGrade}),
		plates:  map[int64]*trackPlates{},
	}, nil
}

// Stats returns a snapshot of the counters.
func (p *Pipeline) Stats() PipelineStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	return s
}

// Clock returns the time of the last frame processed.
func (p *Pipeline) Clock() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clock
}

// Process analyses one frame. Frozen and black frames advance the clock
// but are not tracked.
func (p *Pipeline) Process(ctx context.Context, f Frame) error {
	defer func() {
		p.mu.Lock()
		p.clock = f.At
		p.stats.Tracker = p.tracker.Stats
		p.mu.Unlock()
		p.release(f.At)
	}()
	p.mu.Lock()
	p.stats.Frames++
	p.mu.Unlock()
	if f.Frozen || f.Black {
		return nil
	}
	ended, err := p.tracker.Process(f.Image, f.At)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	p.frameH = f.Image.Rows()
	for _, tr := range p.tracker.Live() {
		p.observe(ctx, tr, f)
	}
	for _, tr := range ended {
		p.end(tr)
	}
	return nil
}

// Flush ends every live track and emits every pending sighting (at the end
// of a file).
func (p *Pipeline) Flush() {
	for _, tr := range p.tracker.Flush() {
		p.end(tr)
	}
	for _, s := range p.pending {
		p.emitOne(s)
	}
	p.pending = nil
}

// observe records the track's box and reads its plate on some frames.
func (p *Pipeline) observe(ctx context.Context, tr *VehicleTrack, f Frame) {
	tp := p.plates[tr.ID]
	if tp == nil {
		tp = &trackPlates{lastFrame: -100}
		p.plates[tr.ID] = tp
	}
	tp.boxes = append(tp.boxes, timedBox{at: f.At, box: tr.Box})
	if len(tp.boxes) > 400 {
		tp.boxes = tp.boxes[len(tp.boxes)-400:]
	}
	full := image.Rect(0, 0, f.Image.Cols(), f.Image.Rows())
	box := tr.Box.Intersect(full)
	// Read only a vehicle fully in view (its rear above the bottom edge)
	// and near the trigger line, every third frame.
	if box.Dx() < 40 || box.Dy() < 30 || tr.Box.Max.Y >= full.Max.Y-2 || box.Max.Y < p.cfg.TriggerY-box.Dy() {
		return
	}
	if len(tp.reads) >= p.cfg.MaxPlateReads || f.Seq-tp.lastFrame < 3 {
		return
	}
	tp.lastFrame = f.Seq
	crop := f.Image.Region(box)
	defer crop.Close()
	if p.cfg.Plates == nil {
		// No reader: keep the rear's lower middle as the close-up, from
		// the frame where the vehicle is largest (the first in view).
		if tp.bestJPEG == nil {
			tp.bestJPEG = p.encodeCrop(f.Image, image.Rect(box.Min.X+box.Dx()/5, box.Min.Y+box.Dy()/2, box.Max.X-box.Dx()/5, box.Max.Y))
		}
		return
	}
	p.mu.Lock()
	p.stats.PlateReads++
	p.mu.Unlock()
	read, ok, err := p.cfg.Plates.ReadVehicle(ctx, crop)
	if err != nil {
		p.log.Debug("plate read failed", "track", tr.ID, "err", err)
		return
	}
	if !ok {
		return
	}
	read.Box = read.Box.Add(box.Min)
	tp.reads = append(tp.reads, read)
	if read.Plate.Confidence > tp.bestConf || tp.bestJPEG == nil {
		pad := max(4, read.Box.Dy())
		tp.bestConf = read.Plate.Confidence
		tp.bestJPEG = p.encodeCrop(f.Image, read.Box.Inset(-pad))
	}
}

// encodeCrop returns r of img (clipped) as JPEG, enlarged to at least 320
// pixels wide, or nil.
func (p *Pipeline) encodeCrop(img gocv.Mat, r image.Rectangle) []byte {
	r = r.Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
	if r.Dx() < 8 || r.Dy() < 8 {
		return nil
	}
	c := img.Region(r)
	defer c.Close()
	src := c
	if r.Dx() < 320 {
		big := gocv.NewMat()
		defer big.Close()
		gocv.Resize(c, &big, image.Pt(320, max(8, r.Dy()*320/r.Dx())), 0, 0, gocv.InterpolationCubic)
		src = big
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, src, []int{gocv.IMWriteJpegQuality, 92})
	if err != nil {
		return nil
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...)
}

// end turns an ended track into a pending sighting, when it crossed.
func (p *Pipeline) end(tr *VehicleTrack) {
	tp := p.plates[tr.ID]
	delete(p.plates, tr.ID)
	if !tr.Crossed {
		return
	}
	s := &Sighting{Camera: p.cfg.Camera, TrackID: tr.ID, Crossed: tr.CrossedAt, Track: *tr, Ring: p.ring,
		ClipFrom: tr.CrossedAt.Add(-p.cfg.ClipBefore), ClipTo: tr.CrossedAt.Add(p.cfg.ClipAfter)}
	if tr.Lane >= 1 && tr.Lane <= len(p.cfg.Lanes) {
		s.Lane = p.cfg.Lanes[tr.Lane-1]
	}
	s.Smoke = &plume.Smoke{Smoky: tr.Smoky, Grade: tr.Grade, Confidence: round2(tr.Confidence)}
	if tp != nil {
		s.PlateJPEG = tp.bestJPEG
		if p.cfg.Plates != nil && len(tp.reads) > 0 {
			if v, ok := p.cfg.Plates.Vote(tp.reads); ok {
				pl := v.Plate
				s.Plate = &pl
			}
		}
		s.Scenes, s.SceneBoxes = p.scenes(tr, tp.boxes, p.frameH)
	}
	// The smoke close-up: the region behind the vehicle (below it in a
	// rear view), half a second after the crossing.
	// Half a second after the crossing the trail behind the vehicle is
	// long and the vehicle still large.
	at := tr.CrossedAt.Add(500 * time.Millisecond)
	s.SmokeFrame, _ = p.ring.Nearest(at)
	vb := tr.CrossBox
	if tp != nil {
		best := time.Duration(-1)
		for _, b := range tp.boxes {
			if d := b.at.Sub(at).Abs(); best < 0 || d < best {
				best, vb = d, b.box
			}
		}
	}
	s.SmokeBox = image.Rect(vb.Min.X-vb.Dx()/4, vb.Min.Y+vb.Dy()/3, vb.Max.X+vb.Dx()/4, vb.Max.Y+vb.Dy()*6/5)
	p.mu.Lock()
	p.stats.Sightings++
	if s.Smoke.Smoky {
		p.stats.Smoky++
	}
	if s.Plate != nil {
		p.stats.PlatesRead++
	}
	p.mu.Unlock()
	p.pending = append(p.pending, s)
	if len(p.pending) > p.cfg.MaxPending {
		p.emitOne(p.pending[0]) // early: its clip may be short
		p.pending = p.pending[1:]
	}
}

// scenes picks two full scenes at different times showing the vehicle's
// displacement: the vehicle fully in view about 0.8 s before it crosses
// the trigger line (or the first frame it is fully in view), and the
// crossing.
func (p *Pipeline) scenes(tr *VehicleTrack, boxes []timedBox, frameH int) ([]RingFrame, []image.Rectangle) {
	if len(boxes) == 0 {
		return nil, nil
	}
	cross := boxes[len(boxes)-1]
	for _, b := range boxes {
		if !b.at.Before(tr.CrossedAt) {
			cross = b
			break
		}
	}
	first := cross
	want := tr.CrossedAt.Add(-800 * time.Millisecond)
	for _, b := range boxes {
		if b.box.Max.Y < frameH-2 && b.at.Before(cross.at) {
			first = b
			if !b.at.Before(want) {
				break
			}
		}
	}
	if !first.at.Before(cross.at) {
		first = boxes[0]
	}
	var frames []RingFrame
	var rects []image.Rectangle
	for _, b := range []timedBox{first, cross} {
		if f, ok := p.ring.Nearest(b.at); ok && (len(frames) == 0 || f.Seq != frames[0].Seq) {
			frames = append(frames, f)
			rects = append(rects, b.box)
		}
	}
	return frames, rects
}

// release emits the pending sightings whose clip has ended by now.
func (p *Pipeline) release(now time.Time) {
	kept := p.pending[:0]
	for _, s := range p.pending {
		if !now.Before(s.ClipTo) {
			p.emitOne(s)
			continue
		}
		kept = append(kept, s)
	}
	for i := len(kept); i < len(p.pending); i++ {
		p.pending[i] = nil
	}
	p.pending = kept
}

func (p *Pipeline) emitOne(s *Sighting) { p.emit(s) }

func round2(x float64) float64 { return float64(int(x*100+0.5)) / 100 }

// LiveMarks returns the detections to draw on live pictures: each live
// vehicle's box labelled with its track, lane and, once read, its plate's
// ASCII part; a vehicle whose frames show a plume so far is marked smoky
// with the plume frame count. Call it from the goroutine that calls
// Process.
func (p *Pipeline) LiveMarks() []LiveMark {
	live := p.tracker.Live()
	out := make([]LiveMark, 0, len(live))
	for _, tr := range live {
		label := fmt.Sprintf("#%d L%d", tr.ID, tr.Lane)
		if tp := p.plates[tr.ID]; tp != nil && len(tp.reads) > 0 {
			best := tp.reads[0]
			for _, r := range tp.reads[1:] {
				if r.Plate.Confidence > best.Plate.Confidence {
					best = r
				}
			}
			label += " " + asciiPart(best.Plate.Text)
		}
		smoky := tr.Plume >= 3 && tr.Plume*3 >= tr.Frames
		if smoky {
			label += fmt.Sprintf(" smoke %d/%d", tr.Plume, tr.Frames)
		}
		out = append(out, LiveMark{Box: tr.Box, Label: label, Smoky: smoky})
	}
	return out
}

// asciiPart drops the runes PutText cannot draw (the province character).
func asciiPart(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r >= 0x20 && r < 0x7f {
			b = append(b, byte(r))
		}
	}
	return string(b)
}
