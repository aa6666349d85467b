package agent

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/plume-emissions/plume"
)

// Camera vehicle counts (edge → central).
//
// Every sighting the camera pipeline makes is one vehicle crossing the
// trigger line. vehicleCounts tallies them per camera and per minute of
// frame time, with the span of frames each camera delivered in that
// minute, so an interval is only counted by a camera that watched all of
// it: a camera that was down would otherwise undercount and make the
// analyser look as if it invented vehicles. Closed intervals go into the
// spool as plume.RecordCount records, uploaded like passes, and central's
// camera-counts integrity rule compares them with the analyser's passes.

// countSlot is the granularity of the tallies.
const countSlot = time.Minute

// maxFrameGap is the largest gap at either end of a slot, or between
// frames, for which a camera still counts as having watched the slot.
const maxFrameGap = 5 * time.Second

type slotTally struct {
	vehicles    int
	first, last time.Time // frames seen in the slot
	gap         bool      // a gap longer than maxFrameGap between two frames
}

// vehicleCounts tallies vehicles per camera and minute. The zero value is
// not usable; a nil *vehicleCounts ignores everything.
type vehicleCounts struct {
	mu      sync.Mutex
	slots   map[string]map[time.Time]*slotTally // camera → slot start → tally
	latest  time.Time                           // the latest frame time of any camera
	emitted time.Time                           // intervals before this are done
}

func newVehicleCounts() *vehicleCounts {
	return &vehicleCounts{slots: map[string]map[time.Time]*slotTally{}}
}

func (v *vehicleCounts) tally(camera string, at time.Time) *slotTally {
	byCam := v.slots[camera]
	if byCam == nil {
		byCam = map[time.Time]*slotTally{}
		v.slots[camera] = byCam
	}
	k := at.Truncate(countSlot)
	t := byCam[k]
	if t == nil {
		t = &slotTally{}
		byCam[k] = t
	}
	return t
}

// frame notes that camera delivered a frame taken at at.
func (v *vehicleCounts) frame(camera string, at time.Time) {
	if v == nil || at.IsZero() {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	t := v.tally(camera, at)
	switch {
	case t.first.IsZero():
		t.first, t.last = at, at
		// The previous slot's frames must reach close to this one.
		if p := v.slots[camera][at.Truncate(countSlot).Add(-countSlot)]; p != nil && at.Sub(p.last) > maxFrameGap {
			p.gap = true
		}
	case at.After(t.last):
		if at.Sub(t.last) > maxFrameGap {
			t.gap = true
		}
		t.last = at
	}
	if at.After(v.latest) {
		v.latest = at
	}
}

// vehicle notes one vehicle camera saw cross the trigger line at at.
func (v *vehicleCounts) vehicle(camera string, at time.Time) {
	if v == nil || at.IsZero() {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.tally(camera, at).vehicles++
}

// watched reports whether a camera's frames cover slot s throughout.
func (t *slotTally) watched(s time.Time) bool {
	return t != nil && !t.gap && !t.first.IsZero() && t.first.Sub(s) <= maxFrameGap && s.Add(countSlot).Sub(t.last) <= maxFrameGap
}

// closed returns the counts of every interval of length iv (aligned to
// iv) that ended at least settle before the latest frame, and forgets
// them. Intervals no camera watched throughout are left out.
func (v *vehicleCounts) closed(iv, settle time.Duration) []plume.VehicleCount {
	if v == nil || iv < countSlot {
		return nil
	}
	iv = iv.Truncate(countSlot)
	v.mu.Lock()
	defer v.mu.Unlock()
	var earliest time.Time
	for _, byCam := range v.slots {
		for s := range byCam {
			if earliest.IsZero() || s.Before(earliest) {
				earliest = s
			}
		}
	}
	if earliest.IsZero() {
		return nil
	}
	from := earliest.Truncate(iv)
	if from.Before(v.emitted) {
		from = v.emitted
	}
	var out []plume.VehicleCount
	for ; !from.Add(iv).Add(settle).After(v.latest); from = from.Add(iv) {
		to := from.Add(iv)
		c := plume.VehicleCount{From: from.UTC(), To: to.UTC(), Vehicles: -1}
		for cam, byCam := range v.slots {
			n, ok := 0, true
			for s := from; s.Before(to); s = s.Add(countSlot) {
				t := byCam[s]
				if !t.watched(s) {
					ok = false
					break
				}
				n += t.vehicles
			}
			if ok {
				c.Cameras = append(c.Cameras, cam)
				c.Vehicles = max(c.Vehicles, n)
			}
		}
		for _, byCam := range v.slots {
			for s := from; s.Before(to); s = s.Add(countSlot) {
				delete(byCam, s)
			}
		}
		v.emitted = to
		if c.Vehicles >= 0 {
			slices.Sort(c.Cameras)
			out = append(out, c)
		}
	}
	// Frames and vehicles that arrived for intervals already done.
	for _, byCam := range v.slots {
		for s := range byCam {
			if s.Before(v.emitted) {
				delete(byCam, s)
			}
		}
	}
	return out
}

// countRecord is the record a count is uploaded as; its ID is the
// interval, so a count spooled twice is stored once.
func countRecord(station plume.StationID, c plume.VehicleCount) plume.Record {
	return plume.Record{Kind: plume.RecordCount, ID: fmt.Sprintf("count-%s-%d", c.From.UTC().Format("20060102T150405Z"), int(c.To.Sub(c.From).Seconds())),
		Station: station, Time: c.To, Count: &c}
}

// spoolCounts puts the camera counts of closed intervals into the outbox.
func (a *Agent) spoolCounts(ctx context.Context) {
	if a.cameras == nil {
		return
	}
	iv := a.cfg.Health.CountInterval
	if iv == 0 {
		iv = 5 * time.Minute
	}
	if iv < 0 {
		return
	}
	for _, c := range a.cameras.counts.closed(iv, a.cameras.settle) {
		if err := a.spool.AddRecord(ctx, countRecord(a.cfg.Station.Station.Station, c)); err != nil {
			a.log.Error("spool camera count; it is lost", "from", c.From, "vehicles", c.Vehicles, "err", err)
		}
	}
}
