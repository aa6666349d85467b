package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/plume-emissions/plume"
)

// Outbox is where captured passes and evidence go: the edge spool.
type Outbox interface {
	PutMedia(ctx context.Context, r io.Reader) (sha256 string, size int64, err error)
	AddEvidence(ctx context.Context, m *plume.Manifest, body, sig []byte) error
	AddRecord(ctx context.Context, rec plume.Record) error
}

// Capture judges what the analyser measured and hands the results to the
// outbox: a compact record for every pass, device status and audit, and a
// signed evidence manifest for every violation candidate. It returns only
// once everything is durably stored, so its caller may then acknowledge the
// analyser.
type Capture struct {
	Station  plume.StationID
	Profiles plume.ProfileSet
	Key      ed25519.PrivateKey
	Outbox   Outbox
	Software string
	Now      func() time.Time
	// ClockOffset returns the edge clock's offset from the reference
	// (central's Date headers), for the manifest. May be nil.
	ClockOffset func() time.Duration
	// Clock, when set, is used instead of ClockOffset: the offset and the
	// reference it was measured against ("central", "ntp"; "" unknown).
	Clock func() (time.Duration, string)
	// Cameras, when set, attaches the cameras' plate and smoke verdict to
	// each pass and adds their media to its evidence (camera.go).
	Cameras Cameras

	counts   CaptureStats
	profiles atomic.Pointer[plume.ProfileSet] // set by SetProfiles; nil: Profiles
}

// SetProfiles switches the limit profiles for the passes that follow (a
// remote configuration applied while running).
func (c *Capture) SetProfiles(ps plume.ProfileSet) { c.profiles.Store(&ps) }

func (c *Capture) profileSet() plume.ProfileSet {
	if p := c.profiles.Load(); p != nil {
		return *p
	}
	return c.Profiles
}

// CaptureStats counts what Capture has handled since start.
type CaptureStats struct {
	Passes, Violations, Invalid, Exceed, Status, Audits, Rejected atomic.Int64
}

// Stats returns the live counters.
func (c *Capture) Stats() *CaptureStats { return &c.counts }

// Pass judges one reading, stores its record and, for a violation
// candidate, its signed evidence. raw is the analyser's frame exactly as
// received; it becomes the first media item.
func (c *Capture) Pass(ctx context.Context, r *plume.Reading, raw []byte) (*plume.Pass, error) {
	if err := r.Validate(); err != nil {
		c.counts.Rejected.Add(1)
		return nil, err
	}
	now := c.Now()
	profile := c.profileSet().For(r.Fuel)
	pass := &plume.Pass{
		ID:         plume.NewPassID(c.Station, r.Time, r.Lane),
		Station:    c.Station,
		Reading:    *r,
		Verdict:    plume.Assess(r, profile),
		ReceivedAt: now,
	}
	var media MediaFunc
	if c.Cameras != nil {
		media = c.Cameras.Fuse(ctx, pass)
		// The camera's smoke verdict is part of the pass's verdict, so the
		// readings, the result code and every sheet say the same.
		pass.Verdict = plume.Judge(r, pass.SmokeSeen, profile)
	}
	minGrade := 0
	if profile != nil {
		minGrade = profile.Smoke.MinGrade
	}
	if pass.Violation(minGrade) {
		if err := c.evidence(ctx, pass, raw, now, media); err != nil {
			return nil, err
		}
		c.counts.Violations.Add(1)
	}
	rec := plume.Record{Kind: plume.RecordPass, ID: string(pass.ID), Station: c.Station, Time: r.Time, Pass: pass}
	if err := c.Outbox.AddRecord(ctx, rec); err != nil {
		return nil, fmt.Errorf("spool pass record: %w", err)
	}
	c.counts.Passes.Add(1)
	switch pass.Verdict.Outcome {
	case plume.OutcomeInvalid:
		c.counts.Invalid.Add(1)
	case plume.OutcomeExceed:
		c.counts.Exceed.Add(1)
	}
	return pass, nil
}

func (c *Capture) evidence(ctx context.Context, pass *plume.Pass, raw []byte, now time.Time, media MediaFunc) error {
	sha, size, err := c.Outbox.PutMedia(ctx, bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("spool analyser frame: %w", err)
	}
	var offset time.Duration
	source := ""
	switch {
	case c.Clock != nil:
		offset, source = c.Clock()
	case c.ClockOffset != nil:
		offset = c.ClockOffset()
	}
	m := &plume.Manifest{
		Schema:        plume.ManifestSchema,
		ID:            plume.EvidenceID(pass.ID),
		Station:       c.Station,
		CapturedAt:    now,
		ClockOffsetMS: offset.Milliseconds(),
		ClockSource:   source,
		Software:      c.Software,
		Pass:          *pass,
		Media: []plume.MediaRef{{
			Name: "analyser-frame.txt", Kind: plume.MediaAnalyserRaw, SHA256: sha, Size: size,
			ContentType: "text/plain; charset=utf-8", CapturedAt: pass.ReceivedAt,
		}},
	}
	if media != nil {
		refs, err := media(ctx, c.Outbox.PutMedia)
		if err != nil {
			return err
		}
		m.Media = append(m.Media, refs...)
	}
	body, sig, err := plume.SignManifest(c.Key, m)
	if err != nil {
		return err
	}
	if err := c.Outbox.AddEvidence(ctx, m, body, sig); err != nil {
		return fmt.Errorf("spool evidence: %w", err)
	}
	return nil
}

// Status stores a device status record.
func (c *Capture) Status(ctx context.Context, s *plume.DeviceStatus) error {
	rec := plume.Record{Kind: plume.RecordStatus, ID: "status-" + stamp(s.Time), Station: c.Station, Time: s.Time, Status: s}
	if err := rec.Validate(); err != nil {
		c.counts.Rejected.Add(1)
		return err
	}
	if err := c.Outbox.AddRecord(ctx, rec); err != nil {
		return fmt.Errorf("spool status: %w", err)
	}
	c.counts.Status.Add(1)
	return nil
}

// Audit stores a calibration or standard-gas audit record.
func (c *Capture) Audit(ctx context.Context, a *plume.Audit) error {
	rec := plume.Record{Kind: plume.RecordAudit, ID: fmt.Sprintf("audit-%s-%s", stamp(a.Time), a.Gas), Station: c.Station, Time: a.Time, Audit: a}
	if err := rec.Validate(); err != nil {
		c.counts.Rejected.Add(1)
		return err
	}
	if err := c.Outbox.AddRecord(ctx, rec); err != nil {
		return fmt.Errorf("spool audit: %w", err)
	}
	c.counts.Audits.Add(1)
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format("20060102T150405.000Z") }
