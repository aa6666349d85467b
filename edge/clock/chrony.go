// Package clock measures the edge clock against NTP where the box runs
// chrony: it reads `chronyc tracking`, whose "System time" line gives the
// offset of the system clock from NTP time. The offset against central is
// measured by edge/uplink on every response; the agent records the larger
// of the two in each evidence manifest (GA/T 832-2014 allows 1.0 s).
package clock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
)

// ErrNoChrony is returned by Chrony.Read when chronyc is not installed.
var ErrNoChrony = errors.New("chronyc not found")

// Tracking is what `chronyc tracking` reports.
type Tracking struct {
	Reference  string        // "Reference ID" line, e.g. "C0A80001 (ntp.example)"
	Stratum    int           //
	Offset     time.Duration // system clock minus NTP time ("System time": fast is positive)
	LastOffset time.Duration
	RMSOffset  time.Duration
	Leap       string // "Normal", "Not synchronised", …
}

// Synced reports whether chrony is synchronised to a source.
func (t Tracking) Synced() bool {
	return t.Leap != "" && t.Leap != "Not synchronised" && t.Stratum > 0 && t.Stratum < 16
}

// ParseTracking parses the output of `chronyc tracking`. It needs at
// least the "System time" line; unknown lines are ignored.
func ParseTracking(out []byte) (Tracking, error) {
	var t Tracking
	haveSystem := false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "Reference ID":
			t.Reference = val
		case "Stratum":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n > 16 {
				return Tracking{}, plume.Errorf(plume.EINVALID, "chronyc tracking: bad stratum %q", val)
			}
			t.Stratum = n
		case "System time":
			// "0.000012345 seconds slow of NTP time" / "… fast of NTP time"
			f := strings.Fields(val)
			if len(f) < 3 || f[1] != "seconds" || (f[2] != "slow" && f[2] != "fast") {
				return Tracking{}, plume.Errorf(plume.EINVALID, "chronyc tracking: bad System time %q", val)
			}
			d, err := seconds(f[0])
			if err != nil {
				return Tracking{}, err
			}
			if f[2] == "slow" {
				d = -d
			}
			t.Offset, haveSystem = d, true
		case "Last offset":
			d, err := seconds(strings.TrimSuffix(val, " seconds"))
			if err != nil {
				return Tracking{}, err
			}
			t.LastOffset = d
		case "RMS offset":
			d, err := seconds(strings.TrimSuffix(val, " seconds"))
			if err != nil {
				return Tracking{}, err
			}
			t.RMSOffset = d
		case "Leap status":
			t.Leap = val
		}
	}
	if !haveSystem {
		return Tracking{}, plume.Errorf(plume.EINVALID, "chronyc tracking: no System time line")
	}
	return t, nil
}

// seconds parses a decimal number of seconds, bounded to ±1 day.
func seconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f != f || f > 86400 || f < -86400 {
		return 0, plume.Errorf(plume.EINVALID, "chronyc tracking: bad seconds %q", s)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// Chrony reads chrony's tracking through chronyc.
type Chrony struct {
	// Command is the chronyc binary (default "chronyc" on PATH).
	Command string
}

// Read runs `chronyc -n tracking` (bounded to 2 s) and parses it.
func (c Chrony) Read(ctx context.Context) (Tracking, error) {
	cmd := c.Command
	if cmd == "" {
		cmd = "chronyc"
	}
	path, err := exec.LookPath(cmd)
	if err != nil {
		return Tracking{}, ErrNoChrony
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-n", "tracking").Output()
	if err != nil {
		return Tracking{}, fmt.Errorf("chronyc tracking: %w", err)
	}
	return ParseTracking(out)
}
