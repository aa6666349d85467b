package agent

import (
	"slices"
	"testing"
	"time"
)

// TestVehicleCounts: vehicles are tallied per camera and interval; an
// interval is counted only by cameras that delivered frames all through
// it, with several cameras the largest count, and an interval no camera
// watched is left out; nothing is returned twice.
func TestVehicleCounts(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	v := newVehicleCounts()
	// rear: frames at 10 fps for 20 minutes except 12:00–12:30 (down).
	// front: frames only in the first 5 minutes.
	for at := t0; at.Before(t0.Add(20 * time.Minute)); at = at.Add(100 * time.Millisecond) {
		if d := at.Sub(t0); d < 12*time.Minute || d >= 12*time.Minute+30*time.Second {
			v.frame("rear", at)
		}
		if at.Before(t0.Add(5 * time.Minute)) {
			v.frame("front", at)
		}
	}
	for i := range 90 { // rear: 30 vehicles in each 5 minutes
		v.vehicle("rear", t0.Add(time.Duration(i)*10*time.Second+time.Second))
	}
	for i := range 25 { // front missed some
		v.vehicle("front", t0.Add(time.Duration(i)*12*time.Second+time.Second))
	}
	got := v.closed(5*time.Minute, 3*time.Second)
	if len(got) != 2 {
		t.Fatalf("%d intervals, want [0,5) and [5,10): [10,15) left out (rear down, front gone), [15,20) not yet settled: %+v", len(got), got)
	}
	if c := got[0]; !c.From.Equal(t0) || c.Vehicles != 30 || !slices.Equal(c.Cameras, []string{"front", "rear"}) {
		t.Errorf("first interval %+v, want 30 vehicles (the larger count) from front and rear", c)
	}
	if c := got[1]; c.Vehicles != 30 || !slices.Equal(c.Cameras, []string{"rear"}) {
		t.Errorf("second interval %+v, want 30 from rear", c)
	}
	if again := v.closed(5*time.Minute, 3*time.Second); len(again) != 0 {
		t.Errorf("intervals returned twice: %+v", again)
	}
	// The last interval closes once frames reach past its end + settle.
	for at := t0.Add(20 * time.Minute); at.Before(t0.Add(25*time.Minute + 4*time.Second)); at = at.Add(100 * time.Millisecond) {
		v.frame("rear", at)
	}
	v.vehicle("rear", t0.Add(21*time.Minute))
	got = v.closed(5*time.Minute, 3*time.Second)
	if len(got) != 2 || !got[0].From.Equal(t0.Add(15*time.Minute)) || got[0].Vehicles != 0 || got[1].Vehicles != 1 {
		t.Errorf("after more frames: %+v, want [15,20) with 0 vehicles and [20,25) with 1", got)
	}
	var nilCounts *vehicleCounts
	nilCounts.frame("rear", t0)
	nilCounts.vehicle("rear", t0)
	if nilCounts.closed(time.Minute, 0) != nil {
		t.Error("a nil tally returned counts")
	}
}
