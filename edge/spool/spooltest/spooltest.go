// Package spooltest builds spools, passes, records and signed evidence for
// tests of the spool and of the packages that use it.
package spooltest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/spool"
)

// Station is the station ID the helpers use.
const Station plume.StationID = "GD-SZ-0001"

// Key returns a fixed station key, so that runs are reproducible.
func Key() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
}

// Open opens a spool in a fresh temporary directory and closes it at the
// end of the test.
func Open(tb testing.TB, opts spool.Options) *spool.Spool {
	tb.Helper()
	return OpenDir(tb, tb.TempDir(), opts)
}

// OpenDir opens the spool in dir and closes it at the end of the test.
func OpenDir(tb testing.TB, dir string, opts spool.Options) *spool.Spool {
	tb.Helper()
	s, err := spool.Open(context.Background(), dir, opts)
	if err != nil {
		tb.Fatalf("open spool: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// Pass returns a valid pass measured at t in lane 1 with the given outcome.
func Pass(t time.Time, outcome plume.Outcome) *plume.Pass {
	r := plume.Reading{
		Time: t.UTC(), Lane: 1, Fuel: plume.FuelDiesel,
		Gases:    plume.Gases{CO2: 12, CO: 0.1, HC: 50, NO: 900},
		PlumeCO2: 40, Opacity: 12, SpeedKmh: 54, AccelMS2: 0.5, SlopePct: 2,
		Ambient: plume.Ambient{TempC: 20, HumidityPct: 60, WindMS: 2, PressureKPa: 101.3},
		Flag:    plume.FlagNormal,
	}
	return &plume.Pass{
		ID: plume.NewPassID(Station, r.Time, r.Lane), Station: Station, Reading: r,
		Verdict:    plume.Verdict{Outcome: outcome, ResultCode: outcome.ResultCode(), Summary: string(outcome)},
		ReceivedAt: t.UTC(),
	}
}

// Record returns the pass record of a pass at t.
func Record(t time.Time, outcome plume.Outcome) plume.Record {
	p := Pass(t, outcome)
	return plume.Record{Kind: plume.RecordPass, ID: string(p.ID), Station: Station, Time: p.Reading.Time, Pass: p}
}

// Evidence stores media in s and returns a manifest for a pass at t listing
// it, with its signed bytes. It does not add the evidence.
func Evidence(tb testing.TB, s *spool.Spool, key ed25519.PrivateKey, t time.Time, media ...[]byte) (m *plume.Manifest, body, sig []byte) {
	tb.Helper()
	p := Pass(t, plume.OutcomeExceed)
	m = &plume.Manifest{Schema: plume.ManifestSchema, ID: plume.EvidenceID(p.ID), Station: Station,
		CapturedAt: t.UTC(), Software: "spooltest", Pass: *p}
	for i, b := range media {
		sha, n, err := s.PutMedia(context.Background(), bytes.NewReader(b))
		if err != nil {
			tb.Fatalf("put media: %v", err)
		}
		m.Media = append(m.Media, plume.MediaRef{Name: fmt.Sprintf("scene-%d.jpg", i+1), Kind: plume.MediaScene,
			SHA256: sha, Size: n, ContentType: "image/jpeg", CapturedAt: t.UTC()})
	}
	body, sig, err := plume.SignManifest(key, m)
	if err != nil {
		tb.Fatal(err)
	}
	return m, body, sig
}

// AddEvidence is Evidence followed by AddEvidence.
func AddEvidence(tb testing.TB, s *spool.Spool, key ed25519.PrivateKey, t time.Time, media ...[]byte) *plume.Manifest {
	tb.Helper()
	m, body, sig := Evidence(tb, s, key, t, media...)
	if err := s.AddEvidence(context.Background(), m, body, sig); err != nil {
		tb.Fatalf("add evidence: %v", err)
	}
	return m
}

// Clock is a settable clock for Options.Now, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock on.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Logger returns a logger that writes to the test log.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
