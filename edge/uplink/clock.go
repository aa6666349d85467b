package uplink

import (
	"net/http"
	"time"

	"github.com/plume-emissions/plume"
)

// measure estimates the clock offset from one response received at recv
// for a request sent at sent: central's time is taken to be the midpoint
// of the round trip. Plume-Time (milliseconds) is preferred; the Date
// header (whole seconds, so central's time was on average half a second
// later than it says) is the fallback.
func (u *Uplink) measure(h http.Header, sent, recv time.Time) {
	rtt := recv.Sub(sent)
	mid := sent.Add(rtt / 2)
	if t, err := time.Parse(time.RFC3339Nano, h.Get(plume.HeaderTime)); err == nil {
		u.offset.Store(int64(mid.Sub(t)))
		u.rtt.Store(int64(rtt))
		u.precise.Store(true)
		u.offsetKnown.Store(true)
		u.measuredAt.Store(recv.UnixNano())
		return
	}
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		u.offset.Store(int64(mid.Sub(d.Add(500 * time.Millisecond))))
		u.rtt.Store(int64(rtt + time.Second))
		u.precise.Store(false)
		u.offsetKnown.Store(true)
		u.measuredAt.Store(recv.UnixNano())
	}
}

// ClockMeasurement is the latest clock offset measured against central.
type ClockMeasurement struct {
	Offset     time.Duration // edge clock minus central's
	RoundTrip  time.Duration // bounds the error: |error| ≤ RoundTrip/2 (+0.5 s without Plume-Time)
	Precise    bool          // measured with Plume-Time, not Date
	MeasuredAt time.Time     // edge time of the response
	Known      bool
}

// Clock returns the latest measurement against central.
func (u *Uplink) Clock() ClockMeasurement {
	m := ClockMeasurement{
		Offset: time.Duration(u.offset.Load()), RoundTrip: time.Duration(u.rtt.Load()),
		Precise: u.precise.Load(), Known: u.offsetKnown.Load(),
	}
	if ns := u.measuredAt.Load(); ns != 0 {
		m.MeasuredAt = time.Unix(0, ns)
	}
	return m
}
