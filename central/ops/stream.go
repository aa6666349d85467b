package ops

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/integrity"
)

// job is one unit of a station worker's work: records, a camera count or
// a clock advance.
type job struct {
	recs    []plume.Record
	camera  *integrity.CameraCount
	advance time.Time
	done    chan struct{} // closed when the job is done (tests, replay)
}

// worker owns one station's integrity stream.
type worker struct {
	s       *Service
	station plume.StationID
	stream  *integrity.Stream
	in      chan job
	// seen holds the IDs (and times) of records already evaluated, so a
	// resent batch is not evaluated twice; pruned past the replay horizon.
	seen     map[string]time.Time
	lastSeen time.Time
}

func (s *Service) worker(station plume.StationID) *worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.workers[station]; w != nil {
		return w
	}
	w := &worker{s: s, station: station, stream: s.engine.Stream(station), in: make(chan job, 64), seen: map[string]time.Time{}}
	s.workers[station] = w
	s.wg.Go(w.run)
	return w
}

func (w *worker) send(j job) {
	defer func() { _ = recover() }() // the service closed the channel: drop
	w.in <- j
}

func (w *worker) run() {
	for j := range w.in {
		w.do(j)
		if j.done != nil {
			close(j.done)
		}
	}
}

func (w *worker) do(j job) {
	ctx := w.s.ctx
	var alerts []integrity.Alert
	for i := range j.recs {
		r := &j.recs[i]
		if _, dup := w.seen[r.ID]; dup {
			continue
		}
		w.seen[r.ID] = r.Time
		alerts = append(alerts, w.stream.Add(r)...)
	}
	if j.camera != nil {
		alerts = append(alerts, w.stream.AddCamera(*j.camera)...)
	}
	if !j.advance.IsZero() {
		alerts = append(alerts, w.stream.Advance(j.advance)...)
		w.prune(j.advance)
	}
	for i := range alerts {
		w.s.raise(ctx, integrityAlert(&alerts[i]))
	}
}

// prune forgets record IDs older than the replay horizon, at most hourly.
func (w *worker) prune(now time.Time) {
	if now.Sub(w.lastSeen) < time.Hour {
		return
	}
	w.lastSeen = now
	cut := now.Add(-w.s.cfg.Replay)
	for id, t := range w.seen {
		if t.Before(cut) {
			delete(w.seen, id)
		}
	}
}

// replay evaluates stored records in time order and waits for it.
func (w *worker) replay(recs []plume.Record) {
	slices.SortStableFunc(recs, func(a, b plume.Record) int { return cmp.Compare(recordTime(&a).UnixNano(), recordTime(&b).UnixNano()) })
	done := make(chan struct{})
	w.send(job{recs: recs, done: done})
	<-done
}

func recordTime(r *plume.Record) time.Time {
	if r.Kind == plume.RecordPass && r.Pass != nil && !r.Pass.Reading.Time.IsZero() {
		return r.Pass.Reading.Time
	}
	return r.Time
}

// Records takes a batch of records central has just stored for a
// station: it feeds them to the station's integrity stream (in time order)
// and its passes to the cloned-plate check. It returns at once; Flush
// waits for the work.
func (s *Service) Records(ctx context.Context, station plume.StationID, recs []plume.Record) {
	if len(recs) == 0 || s.ctx.Err() != nil {
		return
	}
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b plume.Record) int { return cmp.Compare(recordTime(&a).UnixNano(), recordTime(&b).UnixNano()) })
	s.worker(station).send(job{recs: sorted})
	s.cloned.add(ctx, station, sorted)
}

// Camera takes a camera vehicle count for the counts rule.
func (s *Service) Camera(c integrity.CameraCount) {
	s.worker(c.Station).send(job{camera: &c})
}

// Flush waits until every station worker has done the work queued so far.
func (s *Service) Flush(ctx context.Context) error {
	s.mu.Lock()
	ws := make([]*worker, 0, len(s.workers))
	for _, w := range s.workers {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	for _, w := range ws {
		done := make(chan struct{})
		w.send(job{done: done})
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
