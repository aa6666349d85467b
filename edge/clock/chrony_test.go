package clock_test

import (
	"testing"
	"time"

	"github.com/plume-emissions/plume/edge/clock"
)

// tracking is `chronyc tracking` from chrony 4.3 on Debian bookworm, in
// the layout of its documentation.
const tracking = `Reference ID    : CB007101 (ntp.example.cn)
Stratum         : 3
Ref time (UTC)  : Sat Nov 28 17:30:00 2026
System time     : 0.000012345 seconds slow of NTP time
Last offset     : -0.000004550 seconds
RMS offset      : 0.000023124 seconds
Frequency       : 12.345 ppm slow
Residual freq   : +0.001 ppm
Skew            : 0.050 ppm
Root delay      : 0.012345678 seconds
Root dispersion : 0.001234567 seconds
Update interval : 64.2 seconds
Leap status     : Normal
`

func TestParseTracking(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		tr, err := clock.ParseTracking([]byte(tracking))
		if err != nil {
			t.Fatal(err)
		}
		if tr.Offset != -12345*time.Nanosecond || tr.Stratum != 3 || !tr.Synced() || tr.LastOffset != -4550*time.Nanosecond {
			t.Fatalf("parsed %+v", tr)
		}
	})
	t.Run("Fast", func(t *testing.T) {
		tr, err := clock.ParseTracking([]byte("System time     : 3.250000000 seconds fast of NTP time\nLeap status     : Not synchronised\nStratum : 0\n"))
		if err != nil {
			t.Fatal(err)
		}
		if tr.Offset != 3250*time.Millisecond || tr.Synced() {
			t.Fatalf("parsed %+v", tr)
		}
	})
	for name, in := range map[string]string{
		"ErrNoSystemTime": "Stratum : 3\n",
		"ErrBadSeconds":   "System time : x seconds slow of NTP time\n",
		"ErrBadDirection": "System time : 0.1 seconds sideways of NTP time\n",
		"ErrHuge":         "System time : 1e300 seconds slow of NTP time\n",
		"ErrNaN":          "System time : NaN seconds slow of NTP time\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := clock.ParseTracking([]byte(in)); err == nil {
				t.Fatalf("parsed %q", in)
			}
		})
	}
}

func FuzzParseTracking(f *testing.F) {
	f.Add([]byte(tracking))
	f.Add([]byte("System time : 0.5 seconds fast of NTP time"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := clock.ParseTracking(b)
		if err == nil && (tr.Offset > 24*time.Hour || tr.Offset < -24*time.Hour) {
			t.Fatalf("offset %s out of bounds", tr.Offset)
		}
	})
}
