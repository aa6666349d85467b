// Package export hands approved cases to the traffic police and follows
// them until the police close them (POLICE-CONTRACT.md).
//
// An Exporter sends one case: HTTPPush (a signed multipart PUT through
// go-retryablehttp with an idempotency key) or Drop (files in an agreed
// directory). The Worker runs the durable export queue: the export job is
// queued in the same transaction as the approval, a claimed job is leased,
// a job whose worker died is claimed again, and the idempotency key makes
// the resend harmless, so every case reaches the police exactly once. A
// permanent refusal marks the export failed and leaves it visible for a
// retry by hand; anything else is retried with backoff, forever. Before a
// case leaves central, its media and package are put under legal hold when
// the blob store supports it (LegalHolder: the object store does).
package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/evidence"
)

// RecordSchema is the schema of the case record.
const RecordSchema = "plume.police-record/v1"

// Record is the JSON case record sent with each package.
type Record struct {
	Schema       string             `json:"schema"`
	CaseNumber   string             `json:"case_number"`
	CaseID       plume.CaseID       `json:"case_id"`
	Kind         central.CaseKind   `json:"kind"`
	Violation    evidence.Violation `json:"violation"`
	Vehicle      Vehicle            `json:"vehicle"`
	CapturedAt   time.Time          `json:"captured_at"`
	Place        Place              `json:"place"`
	Standard     string             `json:"standard,omitempty"`
	Profile      string             `json:"profile,omitempty"`
	Measurements []plume.Check      `json:"measurements"`
	Summary      string             `json:"summary"`
	RepeatNote   string             `json:"repeat_note,omitempty"`
	Reviewers    []central.Review   `json:"reviewers"`
	Package      PackageRef         `json:"package"`
	Callback     string             `json:"callback,omitempty"`
}

// Vehicle identifies the vehicle.
type Vehicle struct {
	Plate       string            `json:"plate"`
	PlateColour plume.PlateColour `json:"plate_colour,omitempty"`
	PlateAsRead string            `json:"plate_as_read,omitempty"`
}

// Place is where the measurement was taken.
type Place struct {
	Station     plume.StationID `json:"station"`
	StationName string          `json:"station_name,omitempty"`
	Lane        int             `json:"lane"`
}

// PackageRef names the evidence package sent with the record.
type PackageRef struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	File   string `json:"file"`
}

// Package is the evidence package to send; Open may be called once per
// attempt.
type Package struct {
	PackageRef
	Open func() (io.ReadSeekCloser, error)
}

// Receipt is the police system's acknowledgement of one case.
type Receipt struct {
	ID         string    `json:"receipt"`
	ReceivedAt time.Time `json:"received_at"`
}

// Exporter sends one case. It returns a *PermanentError when the receiver
// refused the case for good; any other error is retried.
type Exporter interface {
	Name() string
	Export(ctx context.Context, key string, rec *Record, pkg Package) (*Receipt, error)
}

// PermanentError is a refusal that retrying will not change.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// NewRecord builds the record of a case from its stored evidence.
func NewRecord(c *central.Case, st *central.Station, m *plume.Manifest, callback string) *Record {
	r := &Record{
		Schema: RecordSchema, CaseNumber: c.Number, CaseID: c.ID, Kind: c.Kind,
		Violation:  evidence.Violation{Code: evidence.ViolationCode, Text: evidence.ViolationText},
		Vehicle:    Vehicle{Plate: c.Plate, PlateColour: c.PlateColour},
		CapturedAt: c.CapturedAt.UTC(),
		Place:      Place{Station: c.Station, Lane: m.Pass.Reading.Lane},
		Standard:   c.Standard, Profile: c.Profile, Measurements: m.Pass.Verdict.Checks,
		Summary: c.Summary, RepeatNote: c.RepeatNote, Reviewers: c.Reviews,
		Package:  PackageRef{SHA256: c.PackageSHA256, Size: c.PackageSize, File: c.Number + ".zip"},
		Callback: callback,
	}
	if c.PlateRead != "" && c.PlateRead != c.Plate {
		r.Vehicle.PlateAsRead = c.PlateRead
	}
	if st != nil {
		r.Place.StationName = st.Name
	}
	if r.Reviewers == nil {
		r.Reviewers = []central.Review{}
	}
	return r
}

// Config configures a Worker.
type Config struct {
	Store    central.Store
	Blobs    central.BlobStore
	Exporter Exporter
	// CallbackURL is where the police send dispositions (put in records).
	CallbackURL string
	Logger      *slog.Logger
	Now         func() time.Time
	Lease       time.Duration // default 5 min
	Poll        time.Duration // default 1 s
	// FailingAfter is the attempt from which a retried export shows as
	// failing (default 3).
	FailingAfter int
	// Enforceable, when set, is asked before each export: its error (a
	// clock outside GA/T 832-2014, a failed audit) fails the export for
	// good with the reason.
	Enforceable func(ctx context.Context, c *central.Case) error
}

// Worker runs the export queue.
type Worker struct {
	cfg    Config
	logger *slog.Logger
	wake   chan struct{}
}

// NewWorker returns a Worker; call Run.
func NewWorker(cfg Config) *Worker {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 5 * time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.FailingAfter <= 0 {
		cfg.FailingAfter = 3
	}
	return &Worker{cfg: cfg, logger: cfg.Logger.With("component", "export", "adapter", cfg.Exporter.Name()), wake: make(chan struct{}, 1)}
}

// Wake tells the worker a job may be ready.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run works the queue until ctx ends; an export in flight is finished
// (RunOne runs without ctx's cancellation).
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-t.C:
		}
		for ctx.Err() == nil {
			ran, err := w.RunOne(context.WithoutCancel(ctx))
			if err != nil {
				w.logger.Error("export queue", "err", err)
				break
			}
			if !ran {
				break
			}
		}
		t.Reset(w.cfg.Poll)
	}
}

// errNotReady means the job waits for the package rebuild.
var errNotReady = errors.New("package not rebuilt yet")

// RunOne claims and runs one ready export job and reports whether there
// was one.
func (w *Worker) RunOne(ctx context.Context) (bool, error) {
	j, err := w.cfg.Store.ClaimJob(ctx, w.cfg.Now(), w.cfg.Lease, central.JobExport)
	if errors.Is(err, central.ErrNoJob) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	err = w.export(ctx, j)
	switch {
	case err == nil:
		return true, w.cfg.Store.CompleteJob(ctx, j.ID)
	case errors.Is(err, errNotReady):
		return true, w.cfg.Store.RetryJob(ctx, j.ID, w.cfg.Now().Add(500*time.Millisecond), err.Error())
	}
	var perm *PermanentError
	permanent := errors.As(err, &perm)
	w.logger.Error("export failed", "case", j.CaseID, "attempt", j.Attempts, "permanent", permanent, "err", err)
	_, uerr := w.cfg.Store.UpdateCase(ctx, j.CaseID, func(c *central.Case) (*central.CaseChange, error) {
		if c.Export == nil || c.Status != central.CaseApproved {
			return nil, errStale
		}
		now := w.cfg.Now().UTC()
		c.Export.Attempts++
		c.Export.LastError, c.Export.LastAttempt = err.Error(), now
		ch := &central.CaseChange{At: now}
		if permanent {
			c.Export.Status = central.ExportFailed
			ch.Audit = []central.AuditEvent{{Time: now, Actor: "central", Action: "case.export-failed", Target: string(c.ID), Station: c.Station, Detail: err.Error()}}
		} else if c.Export.Attempts >= w.cfg.FailingAfter {
			c.Export.Status = central.ExportFailing
		}
		return ch, nil
	})
	if uerr != nil && !errors.Is(uerr, errStale) {
		return true, uerr
	}
	if permanent {
		return true, w.cfg.Store.CompleteJob(ctx, j.ID)
	}
	return true, w.cfg.Store.RetryJob(ctx, j.ID, w.cfg.Now().Add(backoff(j.Attempts)), err.Error())
}

var errStale = errors.New("case no longer awaits export")

func backoff(n int) time.Duration {
	if n > 11 {
		return time.Hour
	}
	return min(time.Duration(1<<n)*time.Second, time.Hour)
}

func (w *Worker) export(ctx context.Context, j *central.Job) error {
	c, err := w.cfg.Store.Case(ctx, j.CaseID)
	if errors.Is(err, central.ErrNotFound) {
		w.logger.Error("export job for a missing case; dropped", "case", j.CaseID)
		return nil
	} else if err != nil {
		return err
	}
	if c.Status != central.CaseApproved || c.Export == nil {
		return nil // exported by an earlier job, or no longer approved
	}
	if !c.PackageCurrent() {
		return errNotReady
	}
	if w.cfg.Enforceable != nil {
		if err := w.cfg.Enforceable(ctx, c); err != nil {
			if plume.ErrorCode(err) == plume.EINTERNAL {
				return err
			}
			return &PermanentError{Err: fmt.Errorf("refused by policy: %s", plume.ErrorMessage(err))}
		}
	}
	ev, err := w.cfg.Store.Evidence(ctx, c.Station, c.EvidenceID)
	if err != nil {
		return err
	}
	m, err := plume.DecodeManifest(ev.Manifest)
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("stored manifest: %w", err)}
	}
	if err := w.hold(ctx, c, m); err != nil {
		return err
	}
	st, _ := w.cfg.Store.Station(ctx, c.Station)
	rec := NewRecord(c, st, m, w.cfg.CallbackURL)
	pkg := Package{PackageRef: rec.Package, Open: func() (io.ReadSeekCloser, error) {
		rc, _, err := w.cfg.Blobs.Open(ctx, c.PackageSHA256)
		return rc, err
	}}
	key := c.Export.Key
	rcpt, err := w.cfg.Exporter.Export(ctx, key, rec, pkg)
	if err != nil {
		return err
	}
	now := w.cfg.Now().UTC()
	_, err = w.cfg.Store.UpdateCase(ctx, c.ID, func(c *central.Case) (*central.CaseChange, error) {
		if c.Status != central.CaseApproved || c.Export == nil {
			return nil, errStale
		}
		before, _ := json.Marshal(map[string]any{"status": c.Status, "export": c.Export.Status})
		c.Status = central.CaseExported
		c.Export.Status, c.Export.Receipt, c.Export.SentAt, c.Export.PackageSHA = central.ExportSent, rcpt.ID, now, c.PackageSHA256
		c.Export.Attempts++
		c.Export.LastAttempt, c.Export.LastError = now, ""
		detail := fmt.Sprintf("sent by %s with key %s; package sha256 %s; police receipt %s", w.cfg.Exporter.Name(), key, c.PackageSHA256, rcpt.ID)
		after, _ := json.Marshal(map[string]any{"status": c.Status, "export": c.Export.Status, "receipt": rcpt.ID})
		return &central.CaseChange{At: now,
			Custody: []central.CustodyEntry{{Time: now, Actor: "central", Action: central.ActionExported, Detail: detail}},
			Audit:   []central.AuditEvent{{Time: now, Actor: "central", Action: "case.exported", Target: string(c.ID), Station: c.Station, Before: string(before), After: string(after), Detail: detail}},
		}, nil
	})
	if errors.Is(err, errStale) {
		return nil
	}
	if err != nil {
		return err
	}
	w.logger.Info("case exported", "case", c.ID, "number", c.Number, "receipt", rcpt.ID)
	return nil
}

// LegalHolder is a blob store that can place a legal hold on a blob
// (objectstore.Store). The filesystem store cannot; with it, hold does
// nothing.
type LegalHolder interface {
	SetLegalHold(ctx context.Context, sha256 string, on bool) error
}

// hold places a legal hold on the media and the package of an approved
// case before the case leaves central, when the blob store supports it.
// Holds are idempotent, so a resent export places them again harmlessly.
func (w *Worker) hold(ctx context.Context, c *central.Case, m *plume.Manifest) error {
	lh, ok := w.cfg.Blobs.(LegalHolder)
	if !ok {
		return nil
	}
	sums := []string{c.PackageSHA256}
	for _, md := range m.Media {
		sums = append(sums, md.SHA256)
	}
	for _, sum := range sums {
		if err := lh.SetLegalHold(ctx, sum, true); err != nil {
			return fmt.Errorf("legal hold on case %s: %w", c.Number, err)
		}
	}
	return nil
}
