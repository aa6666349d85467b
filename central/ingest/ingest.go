// Package ingest accepts what stations upload (central/api/PROTOCOL.md):
// media blobs, signed evidence manifests and record batches. It checks
// them, stores them, and opens a case when an evidence manifest is a
// violation candidate. HTTP and request authentication live in
// central/api; this package sees an already authenticated station.
//
// Errors are *plume.Error values (or wrap one), so the API maps them to
// statuses in one place.
package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/metrics"
	"github.com/plume-emissions/plume/central/profile"
	"github.com/plume-emissions/plume/central/review"
)

// Protocol limits.
const (
	MaxManifestSize = 1 << 20 // bytes of one evidence manifest
	MaxBatchSize    = 4 << 20 // bytes of one records batch
	MaxBatchRecords = 1000    // records in one batch
)

var batchPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Config configures a Service.
type Config struct {
	Store   central.Store
	Blobs   central.BlobStore
	Logger  *slog.Logger
	Now     func() time.Time
	Metrics *metrics.Metrics // may be nil
	// MinSmokeGrade is passed to plume.Pass.Violation: camera smoke at or
	// above it makes a case. 0 means only an analyser exceedance does.
	MinSmokeGrade int
	// OnCase is called after a case is opened (to wake the package
	// builder). May be nil.
	OnCase func(plume.CaseID)
	// Profiles gives the repeat-exceedance rule of the profile a verdict
	// cites; nil uses profile.DefaultRepeat.
	Profiles *profile.Set
	// Flags marks a new case's evidence (clock offset, audits; see
	// central/ops). May be nil.
	Flags func(ctx context.Context, m *plume.Manifest) ([]central.CaseFlag, error)
	// OnRecords is given every records batch after the store accepted it
	// (the integrity rules and the cloned-plate check). May be nil.
	OnRecords func(ctx context.Context, station plume.StationID, recs []plume.Record)
}

// Service accepts station uploads.
type Service struct {
	cfg    Config
	logger *slog.Logger
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, logger: cfg.Logger.With("component", "ingest")}
}

// PutBlob stores one media item of size bytes from body under sum. It
// returns created=false when the blob is already held (body is not read).
// A body that does not hash to sum gets central.ErrDigestMismatch.
func (s *Service) PutBlob(ctx context.Context, st *central.Station, sum string, body io.Reader, size int64) (bool, error) {
	switch {
	case !plume.ValidSHA256(sum):
		s.cfg.Metrics.Ingest("blob", "rejected", 1)
		return false, plume.Errorf(plume.EINVALID, "blob name must be a lowercase hex sha256")
	case size < 0:
		s.cfg.Metrics.Ingest("blob", "rejected", 1)
		return false, plume.Errorf(plume.EINVALID, "Content-Length is required")
	case size > plume.MaxMediaSize:
		s.cfg.Metrics.Ingest("blob", "rejected", 1)
		return false, plume.Errorf(plume.ETOOLARGE, "media of %d bytes exceeds %d", size, plume.MaxMediaSize)
	}
	if info, err := s.cfg.Blobs.Stat(ctx, sum); err == nil && info.Size == size {
		// Held already: a resend by its owner is answered without reading;
		// another station proves it has the bytes (owner.go).
		if ok, err := s.owns(ctx, st.ID, sum); err != nil {
			return false, err
		} else if !ok {
			if err := proveHeld(body, sum, size); err != nil {
				s.cfg.Metrics.Ingest("blob", "rejected", 1)
				return false, err
			}
			if err := s.recordOwner(ctx, st.ID, sum); err != nil {
				return false, err
			}
		}
		s.cfg.Metrics.Ingest("blob", "duplicate", 1)
		return false, nil
	}
	created, err := s.cfg.Blobs.Put(ctx, sum, body, size)
	if err != nil {
		s.cfg.Metrics.Ingest("blob", "rejected", 1)
		return false, err
	}
	if err := s.recordOwner(ctx, st.ID, sum); err != nil {
		return false, err
	}
	outcome := "created"
	if !created {
		outcome = "duplicate"
	}
	s.cfg.Metrics.Ingest("blob", outcome, 1)
	s.logger.Debug("blob stored", "station", st.ID, "sha256", sum, "size", size, "created", created)
	return created, nil
}

// PutEvidence stores one evidence manifest: body is the exact signed bytes
// and sig the station's capture signature. It checks the ID, the station,
// the signature, the manifest itself, and that every listed media item is
// held and was uploaded by this station (else *central.MissingMediaError). It is idempotent: identical bytes
// give the stored item with created=false, different bytes a conflict.
func (s *Service) PutEvidence(ctx context.Context, st *central.Station, id plume.EvidenceID, body, sig []byte) (*central.StoredEvidence, bool, error) {
	ev, created, err := s.putEvidence(ctx, st, id, body, sig)
	switch {
	case err != nil:
		s.cfg.Metrics.Ingest("evidence", "rejected", 1)
	case created:
		s.cfg.Metrics.Ingest("evidence", "created", 1)
	default:
		s.cfg.Metrics.Ingest("evidence", "duplicate", 1)
	}
	return ev, created, err
}

func (s *Service) putEvidence(ctx context.Context, st *central.Station, id plume.EvidenceID, body, sig []byte) (*central.StoredEvidence, bool, error) {
	if err := id.Validate(); err != nil {
		return nil, false, err
	}
	if len(body) > MaxManifestSize {
		return nil, false, plume.Errorf(plume.ETOOLARGE, "manifest larger than %d bytes", MaxManifestSize)
	}
	if !plume.VerifyManifest(st.PublicKey, body, sig) {
		return nil, false, plume.Errorf(plume.EINVALID, "the manifest signature does not verify with station %s's key", st.ID)
	}
	m, err := plume.DecodeManifest(body)
	if err != nil {
		return nil, false, err
	}
	if m.Station != st.ID {
		return nil, false, plume.Errorf(plume.EFORBIDDEN, "station %s may not upload evidence of station %s", st.ID, m.Station)
	}
	if m.ID != id {
		return nil, false, plume.Errorf(plume.EINVALID, "manifest ID %s does not match the path's %s", m.ID, id)
	}

	// Replays are answered before media is looked at, so a resent manifest
	// never fails on housekeeping.
	if prev, err := s.cfg.Store.Evidence(ctx, st.ID, id); err == nil {
		if !bytes.Equal(prev.Manifest, body) {
			return nil, false, plume.Errorf(plume.ECONFLICT, "a different manifest is already stored as %s", id)
		}
		return prev, false, nil
	} else if !errors.Is(err, central.ErrNotFound) {
		return nil, false, err
	}

	// A blob the station did not upload itself counts as missing: it is
	// asked to upload it (owner.go).
	var missing []string
	for _, md := range m.Media {
		info, err := s.cfg.Blobs.Stat(ctx, md.SHA256)
		if errors.Is(err, central.ErrNotFound) || (err == nil && info.Size != md.Size) {
			missing = append(missing, md.SHA256)
			continue
		} else if err != nil {
			return nil, false, fmt.Errorf("stat media %s: %w", md.Name, err)
		}
		if ok, err := s.owns(ctx, st.ID, md.SHA256); err != nil {
			return nil, false, err
		} else if !ok {
			missing = append(missing, md.SHA256)
		}
	}
	if len(missing) > 0 {
		return nil, false, &central.MissingMediaError{Missing: missing}
	}

	now := s.cfg.Now().UTC()
	ev := &central.StoredEvidence{
		ID: id, Station: st.ID, Manifest: body, StationSig: sig, StationKey: st.PublicKey, ReceivedAt: now,
	}
	var (
		c       *central.Case
		custody []central.CustodyEntry
	)
	if m.Pass.Violation(s.cfg.MinSmokeGrade) {
		c = central.NewCase(m)
		custody = []central.CustodyEntry{
			{Time: m.CapturedAt, Actor: "station:" + string(st.ID), Action: central.ActionCaptured,
				Detail: fmt.Sprintf("manifest sha256 %s signed by station key %s; software %s", plume.ContentSHA256(body), plume.EncodeKey(st.PublicKey), m.Software)},
			{Time: now, Actor: "central", Action: central.ActionReceived,
				Detail: fmt.Sprintf("station signature verified; %d media item(s) held with the listed sha256 and size", len(m.Media))},
			{Time: now, Actor: "central", Action: central.ActionCaseOpened, Detail: m.Pass.Verdict.Summary},
		}
	}
	if c != nil {
		var history []central.VehicleEntry
		if c.Plate != "" {
			if history, err = s.cfg.Store.VehicleHistory(ctx, c.Plate, 200); err != nil {
				return nil, false, err
			}
		}
		rule, known := s.cfg.Profiles.Repeat(c.Profile)
		c.Kind, c.RepeatNote = review.Classify(c, &m.Pass, history, rule, known)
		custody[len(custody)-1].Detail += " [" + string(c.Kind) + "]"
		if s.cfg.Flags != nil {
			if c.Flags, err = s.cfg.Flags(ctx, m); err != nil {
				return nil, false, fmt.Errorf("flag evidence %s: %w", id, err)
			}
		}
		// Central judges the reading again with its own copy of the
		// profile; a disagreement blocks the case (review refuses it).
		if why := s.cfg.Profiles.Rejudge(&m.Pass); why != "" {
			c.Flags = append(c.Flags, central.CaseFlag{Code: central.FlagVerdictMismatch, Blocks: true, Message: "判定不一致 " + why})
			s.logger.Warn("station verdict not confirmed by central", "station", st.ID, "evidence", id, "why", why)
		}
		for _, f := range c.Flags {
			custody[len(custody)-1].Detail += "; flagged " + f.Code
		}
	}
	stored, created, err := s.cfg.Store.PutEvidence(ctx, ev, c, custody)
	if err != nil {
		return nil, false, err
	}
	if created && c != nil {
		s.cfg.Metrics.CaptureToCase(now.Sub(m.CapturedAt))
		s.logger.Info("case opened", "case", c.ID, "number", c.Number, "station", st.ID, "evidence", id, "summary", m.Pass.Verdict.Summary)
		if s.cfg.OnCase != nil {
			s.cfg.OnCase(c.ID)
		}
	}
	return stored, created, nil
}

// Batch is the body of a records upload.
type Batch struct {
	Records []plume.Record `json:"records"`
}

// DecodeRecordsBatch parses and checks a records batch of station: at most
// MaxBatchSize bytes and MaxBatchRecords records, no unknown fields, every
// record valid. A record of another station gets EFORBIDDEN.
func DecodeRecordsBatch(b []byte, station plume.StationID) ([]plume.Record, error) {
	if len(b) > MaxBatchSize {
		return nil, plume.Errorf(plume.ETOOLARGE, "records batch larger than %d bytes", MaxBatchSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var batch Batch
	if err := dec.Decode(&batch); err != nil {
		return nil, plume.Errorf(plume.EINVALID, "records batch: %v", err)
	}
	if dec.More() {
		return nil, plume.Errorf(plume.EINVALID, "records batch: trailing data after the JSON object")
	}
	if len(batch.Records) > MaxBatchRecords {
		return nil, plume.Errorf(plume.ETOOLARGE, "%d records in one batch, at most %d", len(batch.Records), MaxBatchRecords)
	}
	seen := make(map[string]bool, len(batch.Records))
	for i := range batch.Records {
		r := &batch.Records[i]
		if r.Station != station {
			return nil, plume.Errorf(plume.EFORBIDDEN, "record %d belongs to station %q, not %s", i, r.Station, station)
		}
		if err := r.Validate(); err != nil {
			return nil, plume.Errorf(plume.EINVALID, "record %d: %s", i, plume.ErrorMessage(err))
		}
		if seen[r.ID] {
			return nil, plume.Errorf(plume.EINVALID, "record ID %q twice in one batch", r.ID)
		}
		seen[r.ID] = true
	}
	return batch.Records, nil
}

// PutRecords stores a records batch (body) named batch, idempotent by
// (station, record ID).
func (s *Service) PutRecords(ctx context.Context, st *central.Station, batch string, body []byte) (accepted, duplicates int, err error) {
	if !batchPattern.MatchString(batch) {
		s.cfg.Metrics.Ingest("record", "rejected", 1)
		return 0, 0, plume.Errorf(plume.EINVALID, "batch name must match [A-Za-z0-9_-]{1,64}")
	}
	recs, err := DecodeRecordsBatch(body, st.ID)
	if err != nil {
		s.cfg.Metrics.Ingest("record", "rejected", 1)
		return 0, 0, err
	}
	accepted, duplicates, err = s.cfg.Store.PutRecords(ctx, st.ID, recs, s.cfg.Now().UTC())
	if err != nil {
		return 0, 0, err
	}
	if s.cfg.OnRecords != nil && accepted > 0 {
		s.cfg.OnRecords(ctx, st.ID, recs)
	}
	s.cfg.Metrics.Ingest("record", "created", accepted)
	s.cfg.Metrics.Ingest("record", "duplicate", duplicates)
	return accepted, duplicates, nil
}
