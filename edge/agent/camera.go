package agent

// The camera side of the agent.
//
// When the station file lists cameras, each runs in its own goroutine:
// camera → vehicle tracker → plate reads (multi-frame vote) → smoke
// verdict → a sighting per vehicle that crossed the trigger line (see
// edge/vision). Sightings go into a fusion.Fuser. Each analyser pass waits,
// boundedly, until the cameras have seen far enough past its time to have
// reported its vehicle (pass time + fusion tolerance + settle, where
// settle is how long a sighting takes: the track ending or the clip's
// seconds after, whichever is longer); it is then matched by lane and
// time, and gets the plate and the smoke verdict. A violation candidate's
// evidence then carries the camera media: scene images, a plate and a
// smoke close-up and an H.264 clip, streamed into the spool.
//
// A camera that is down or stalled is not waited for. Passes that match
// no sighting are kept and counted (fusion.Stats.UnmatchedPasses).
//
// The wait delays the analyser's acknowledgement by up to MaxWait (about
// 5 s with the defaults); an analyser must allow that (the simulator's
// AckTimeout is set accordingly).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/config"
	"github.com/plume-emissions/plume/edge/fusion"
	"github.com/plume-emissions/plume/edge/live"
	"github.com/plume-emissions/plume/edge/vision"
)

// PutMedia stores one media item in the outbox.
type PutMedia func(ctx context.Context, r io.Reader) (sha256 string, size int64, err error)

// MediaFunc writes a pass's camera evidence into the outbox and returns
// the manifest entries.
type MediaFunc func(ctx context.Context, put PutMedia) ([]plume.MediaRef, error)

// Cameras attaches what the cameras saw to passes.
type Cameras interface {
	// Fuse attaches the plate and smoke verdict of p's vehicle, when a
	// camera saw it, and returns its evidence writer (nil when none).
	Fuse(ctx context.Context, p *plume.Pass) MediaFunc
}

// CameraOptions tune the camera side; zero values take the defaults.
type CameraOptions struct {
	// Plates reads plates (vision.Reader through an adapter); nil leaves
	// passes without a camera plate read.
	Plates vision.PlateReader
	// Realtime and Loop apply to file sources (the demo plays a clip as a
	// live camera); Start is a file's first frame time.
	Realtime, Loop bool
	Start          time.Time
	// MaxWait bounds how long a pass waits for the cameras (default:
	// tolerance + settle + 1 s).
	MaxWait time.Duration
}

// CameraStats is the camera side's health for station status.
type CameraStats struct {
	Cameras   []vision.CameraStats
	Pipelines []vision.PipelineStats
	Matched   int64 // passes matched to a sighting
	Unmatched int64 // passes no camera sighting matched (kept, not dropped)
	Orphans   int64 // sightings no pass claimed
}

type cameraRun struct {
	cfg  config.Camera
	cam  *vision.Camera
	pipe *vision.Pipeline
	// tap feeds live view the frames the pipeline decodes (nothing is
	// made while nobody watches).
	tap *vision.LiveTap
	// last is the wall time of the last frame (to tell a stalled camera).
	last time.Time
}

// cameraSet runs the station's cameras. It implements Cameras.
type cameraSet struct {
	log     *slog.Logger
	station *config.Loaded
	fuser   *fusion.Fuser
	runs    []*cameraRun
	settle  time.Duration
	maxWait time.Duration
	tmp     string
	zone    *time.Location
	font    *vision.StripFont // the evidence strip's CJK font

	counts *vehicleCounts // vehicles per camera and minute (counts.go)

	mu        sync.Mutex
	sightings map[int64]*vision.Sighting
	changed   chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// openCameras starts the station's cameras, or returns nil when it has
// none.
func openCameras(ctx context.Context, st *config.Loaded, opt CameraOptions, logger *slog.Logger) (*cameraSet, error) {
	if len(st.Cameras) == 0 {
		return nil, nil
	}
	cs := &cameraSet{
		log: logger.With("component", "cameras"), station: st, fuser: fusion.New(fusion.Options{}),
		sightings: map[int64]*vision.Sighting{}, changed: make(chan struct{}),
		tmp: filepath.Join(st.DataDir, "camera-tmp"), zone: st.Location(), counts: newVehicleCounts(),
	}
	if err := os.MkdirAll(cs.tmp, 0o750); err != nil {
		return nil, fmt.Errorf("cameras: %w", err)
	}
	// Evidence images without a readable strip are no evidence: a station
	// without the font does not start its cameras.
	font, err := vision.LoadStripFont()
	if err != nil {
		return nil, fmt.Errorf("cameras: %w", err)
	}
	cs.font = font
	minGrade := 0
	for _, p := range st.Profiles {
		if p != nil && p.Smoke.MinGrade > 0 && (minGrade == 0 || p.Smoke.MinGrade < minGrade) {
			minGrade = p.Smoke.MinGrade
		}
	}
	cs.settle = 3 * time.Second
	for i, c := range st.Cameras {
		cs.settle = max(cs.settle, c.ClipAfter+500*time.Millisecond)
		cam, err := vision.NewCamera(vision.CameraConfig{
			Name: c.Name, Source: resolveSource(st, c.Source), FPS: float64(c.FPS), Start: opt.Start,
			Realtime: opt.Realtime, Loop: opt.Loop, Logger: logger.With("component", "camera"),
			Ring: vision.RingConfig{MaxFrames: int((c.ClipBefore + c.ClipAfter + 10*time.Second).Seconds() * float64(c.FPS))},
		})
		if err != nil {
			return nil, fmt.Errorf("cameras: %w", err)
		}
		idx := int64(i + 1)
		pipe, err := vision.NewPipeline(vision.PipelineConfig{
			Camera: c.Name, LaneX: c.LaneX, Lanes: c.Lanes, TriggerY: c.TriggerY, MinGrade: max(1, minGrade),
			ClipBefore: c.ClipBefore, ClipAfter: c.ClipAfter, Plates: opt.Plates, Logger: logger.With("component", "pipeline"),
		}, cam.Ring(), func(s *vision.Sighting) { cs.add(idx, s) })
		if err != nil {
			return nil, fmt.Errorf("cameras: %w", err)
		}
		cs.runs = append(cs.runs, &cameraRun{cfg: c, cam: cam, pipe: pipe, tap: vision.NewLiveTap(vision.LiveTapConfig{})})
	}
	cs.maxWait = opt.MaxWait
	if cs.maxWait <= 0 {
		cs.maxWait = cs.fuser.Tolerance() + cs.settle + time.Second
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cs.cancel = cancel
	for _, r := range cs.runs {
		cs.wg.Add(1)
		go func() {
			defer cs.wg.Done()
			cs.run(runCtx, r)
		}()
	}
	return cs, nil
}

// resolveSource makes a relative file source relative to the station
// file's directory.
func resolveSource(st *config.Loaded, src string) string {
	if filepath.IsAbs(src) || !fileSource(src) || strings.HasPrefix(st.Source, "embedded:") {
		return src
	}
	if _, err := os.Stat(src); err == nil {
		return src
	}
	return filepath.Join(filepath.Dir(st.Source), src)
}

func fileSource(src string) bool {
	for _, c := range src {
		if c < '0' || c > '9' {
			return !strings.Contains(src, "://")
		}
	}
	return false
}

// run keeps one camera going until ctx ends; a file that ends is not
// restarted (Loop does that).
func (cs *cameraSet) run(ctx context.Context, r *cameraRun) {
	err := r.cam.Run(ctx, func(f vision.Frame) error {
		err := r.pipe.Process(ctx, f)
		cs.counts.frame(r.cfg.Name, f.At)
		if !f.Frozen && !f.Black {
			if terr := r.tap.Offer(f.Image, f.At, r.pipe.LiveMarks); terr != nil {
				cs.log.Debug("live picture", "camera", r.cfg.Name, "err", terr)
			}
		}
		cs.mu.Lock()
		r.last = time.Now()
		cs.notifyLocked()
		cs.mu.Unlock()
		return err
	})
	r.pipe.Flush()
	cs.mu.Lock()
	r.last = time.Time{}
	cs.notifyLocked()
	cs.mu.Unlock()
	if err != nil && !errors.Is(err, context.Canceled) {
		cs.log.Warn("camera stopped", "camera", r.cfg.Name, "err", err)
	}
}

func (cs *cameraSet) notifyLocked() {
	close(cs.changed)
	cs.changed = make(chan struct{})
}

// add takes a sighting from camera idx.
func (cs *cameraSet) add(idx int64, s *vision.Sighting) {
	id := idx<<40 | s.TrackID
	cs.fuser.AddTrack(fusion.Track{ID: id, Camera: s.Camera, Lane: s.Lane, Crossed: s.Crossed, Plate: s.Plate, Smoke: s.Smoke})
	cs.counts.vehicle(s.Camera, s.Crossed)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.sightings[id] = s
	// Forget sightings well past any pass that could claim them.
	for k, o := range cs.sightings {
		if s.Crossed.Sub(o.Crossed) > time.Minute {
			delete(cs.sightings, k)
		}
	}
	cs.notifyLocked()
}

// ready reports whether every running camera has seen past t, and
// whether any camera is running at all.
func (cs *cameraSet) readyLocked(t time.Time) (ready, running bool) {
	ready = true
	for _, r := range cs.runs {
		if r.last.IsZero() || time.Since(r.last) > 2*time.Second {
			continue // down or stalled: not waited for
		}
		running = true
		if r.pipe.Clock().Before(t) {
			ready = false
		}
	}
	return ready, running
}

// Fuse implements Cameras.
func (cs *cameraSet) Fuse(ctx context.Context, p *plume.Pass) MediaFunc {
	target := p.Reading.Time.Add(cs.fuser.Tolerance() + cs.settle)
	timer := time.NewTimer(cs.maxWait)
	defer timer.Stop()
	for {
		cs.mu.Lock()
		ready, running := cs.readyLocked(target)
		ch := cs.changed
		cs.mu.Unlock()
		if ready || !running {
			break
		}
		select {
		case <-ch:
			continue
		case <-ctx.Done():
		case <-timer.C:
		}
		break
	}
	t, ok := cs.fuser.Fuse(p)
	if !ok {
		cs.log.Debug("pass matched no camera sighting", "pass", p.ID, "lane", p.Reading.Lane)
		return nil
	}
	cs.mu.Lock()
	s := cs.sightings[t.ID]
	delete(cs.sightings, t.ID)
	cs.mu.Unlock()
	if s == nil {
		return nil
	}
	return func(ctx context.Context, put PutMedia) ([]plume.MediaRef, error) {
		return cs.media(ctx, p, s, put)
	}
}

// media writes the sighting's evidence files and streams them into the
// outbox. Files that cannot be made are logged and left out; an outbox
// failure is returned.
func (cs *cameraSet) media(ctx context.Context, p *plume.Pass, s *vision.Sighting, put PutMedia) ([]plume.MediaRef, error) {
	dir, err := os.MkdirTemp(cs.tmp, "pass-")
	if err != nil {
		return nil, fmt.Errorf("camera media: %w", err)
	}
	defer os.RemoveAll(dir)
	info := vision.EvidenceInfo{
		Station: string(cs.station.Station.Station), Place: cs.station.Station.Place, Lane: p.Reading.Lane,
		Time: p.Reading.Time, Zone: cs.zone, Font: cs.font, Measured: measured(&p.Reading), Reason: string(fusion.CandidateReason(p, 1)),
	}
	if p.Plate != nil {
		info.Plate = fmt.Sprintf("%s (%s, conf %.2f)", p.Plate.Text, p.Plate.Colour, p.Plate.Confidence)
	}
	if p.SmokeSeen != nil {
		info.Grade = fmt.Sprintf("林格曼 %d 级 Ringelmann %d, %s, conf %.2f (摄像 camera)", p.SmokeSeen.Grade, p.SmokeSeen.Grade, map[bool]string{true: "黑烟 black smoke", false: "无烟 clean"}[p.SmokeSeen.Smoky], p.SmokeSeen.Confidence)
	}
	files, err := vision.WriteEvidence(ctx, s, dir, info)
	if err != nil {
		cs.log.Warn("no camera evidence for pass", "pass", p.ID, "err", err)
		return nil, nil
	}
	var refs []plume.MediaRef
	for _, f := range files {
		ref, err := putFile(ctx, put, f)
		if err != nil {
			return nil, err
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

func putFile(ctx context.Context, put PutMedia, f vision.EvidenceFile) (plume.MediaRef, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return plume.MediaRef{}, fmt.Errorf("camera media: %w", err)
	}
	defer fh.Close()
	sha, size, err := put(ctx, fh)
	if err != nil {
		return plume.MediaRef{}, fmt.Errorf("spool %s: %w", f.Name, err)
	}
	return plume.MediaRef{Name: f.Name, Kind: f.Kind, SHA256: sha, Size: size, ContentType: f.ContentType, CapturedAt: f.CapturedAt.UTC()}, nil
}

// measured lists the analyser's values for the strip.
func measured(r *plume.Reading) []string {
	out := []string{
		fmt.Sprintf("CO %.3f%%", r.Gases.CO), fmt.Sprintf("HC %.0f ppm", r.Gases.HC), fmt.Sprintf("NO %.0f ppm", r.Gases.NO),
		fmt.Sprintf("opacity %.1f%%", r.Opacity), fmt.Sprintf("speed %.0f km/h", r.SpeedKmh),
	}
	if r.Ringelmann >= 0 {
		out = append(out, fmt.Sprintf("analyser Ringelmann %.0f", r.Ringelmann))
	}
	return out
}

// Stats returns the camera side's health.
func (cs *cameraSet) Stats() CameraStats {
	s := CameraStats{Matched: cs.fuser.Stats().Matched.Load(), Unmatched: cs.fuser.Stats().UnmatchedPasses.Load(),
		Orphans: cs.fuser.Stats().UnmatchedTracks.Load()}
	for _, r := range cs.runs {
		s.Cameras = append(s.Cameras, r.cam.Stats())
		s.Pipelines = append(s.Pipelines, r.pipe.Stats())
	}
	return s
}

// Close stops the cameras and waits for them.
func (cs *cameraSet) Close() error {
	cs.cancel()
	cs.wg.Wait()
	for _, r := range cs.runs {
		r.tap.Close()
	}
	return nil
}

// liveSources returns each camera as a live-view frame source, by name.
func (cs *cameraSet) liveSources() map[string]live.FrameSource {
	out := make(map[string]live.FrameSource, len(cs.runs))
	for _, r := range cs.runs {
		out[r.cfg.Name] = liveTapSource{r.tap}
	}
	return out
}

// liveTapSource adapts a camera's vision.LiveTap to live.FrameSource.
type liveTapSource struct{ tap *vision.LiveTap }

// Subscribers reports how many viewers' encoders take the camera's frames
// (0 when nobody watches: the camera then makes no live pictures).
func (s liveTapSource) Subscribers() int { return s.tap.Subscribers() }

// Subscribe implements live.FrameSource.
func (s liveTapSource) Subscribe() (<-chan live.Frame, func()) {
	in, cancel := s.tap.Subscribe()
	out := make(chan live.Frame, 1)
	go func() {
		defer close(out)
		for f := range in {
			select {
			case out <- live.Frame{Image: f.Image, Captured: f.Captured}:
			default: // the viewer is behind: drop
			}
		}
	}()
	return out, cancel
}

// CameraStats returns the cameras' health, and false for a station
// without cameras.
func (a *Agent) CameraStats() (CameraStats, bool) {
	if a.cameras == nil {
		return CameraStats{}, false
	}
	return a.cameras.Stats(), true
}
