// Package packer builds evidence packages from central's durable work
// queue. When a case is opened, the store queues a build job in the same
// transaction; a Packer claims it, streams the case's media from the blob
// store into a signed BagIt zip (central/evidence), verifies the result,
// stores it in the blob store and records its digest on the case.
//
// Builds are idempotent and crash-safe: a job is leased while it runs, a
// job whose worker died is claimed again when its lease runs out (or at
// once when the bbolt store is reopened), and a case whose package is
// already built and held completes without rebuilding. A failed build is
// retried with backoff and stays visible in the queue; nothing is dropped.
//
// Every media byte comes from a station and is hostile. A panic inside a
// build (in a library that parses station media, say) is recovered and
// becomes that build's error, so one poison case never stops the process
// or the other cases. After Config.MaxAttempts failures a job is parked
// as failed (central.JobGaveUp) with its last error, shown to the
// administrator, who may retry it (RetryFailed) once the cause is fixed.
package packer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/evidence"
	"github.com/plume-emissions/plume/central/metrics"
)

// Config configures a Packer.
type Config struct {
	Store   central.Store
	Blobs   central.BlobStore
	Key     ed25519.PrivateKey // central's signing key
	TempDir string             // where packages are assembled before they are stored
	// Organization goes into bag-info.txt as Source-Organization.
	Organization string
	Logger       *slog.Logger
	Now          func() time.Time
	Metrics      *metrics.Metrics // may be nil
	Workers      int              // concurrent builds (default 1)
	Lease        time.Duration    // how long a claimed job is held (default 10 min)
	Poll         time.Duration    // how often an idle worker looks for jobs without a wake-up (default 1 s)
	// SheetFont, when set, makes packages carry the PDF evidence sheet
	// (evidence.LoadSheetFont).
	SheetFont []byte
	// MaxAttempts is how many times a build is tried before its job is
	// parked as failed (default 8: with the backoff, about 4 minutes).
	MaxAttempts int
}

// DefaultMaxAttempts is Config.MaxAttempts' default.
const DefaultMaxAttempts = 8

// Packer runs package builds.
type Packer struct {
	cfg    Config
	logger *slog.Logger
	wake   chan struct{}
}

// New returns a Packer; call Run to start its workers.
func New(cfg Config) *Packer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 10 * time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	}
	return &Packer{cfg: cfg, logger: cfg.Logger.With("component", "packer"), wake: make(chan struct{}, 1)}
}

// Wake tells an idle worker that a job was queued.
func (p *Packer) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run runs the workers until ctx ends. A build in progress when ctx ends
// is finished first (shutdown drains), then Run returns nil.
func (p *Packer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range p.cfg.Workers {
		wg.Go(func() { p.work(ctx) })
	}
	wg.Wait()
	return nil
}

func (p *Packer) work(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-timer.C:
		}
		// Drain the queue before sleeping again.
		for ctx.Err() == nil {
			ran, err := p.RunOne(context.WithoutCancel(ctx))
			if err != nil {
				p.logger.Error("package queue", "err", err)
				break
			}
			if !ran {
				break
			}
		}
		timer.Reset(p.cfg.Poll)
	}
}

// RunOne claims and runs one ready job. It reports whether there was one;
// a failed build is rescheduled, not returned as an error.
func (p *Packer) RunOne(ctx context.Context) (bool, error) {
	j, err := p.cfg.Store.ClaimJob(ctx, p.cfg.Now(), p.cfg.Lease, central.JobBuildPackage)
	if errors.Is(err, central.ErrNoJob) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if j.Kind != central.JobBuildPackage {
		p.logger.Error("unknown job kind; kept in the queue", "job", j.ID, "kind", j.Kind)
		return true, p.cfg.Store.RetryJob(ctx, j.ID, p.cfg.Now().Add(time.Hour), "unknown job kind")
	}
	start := time.Now()
	if err := p.safeBuild(ctx, j.CaseID); err != nil {
		p.cfg.Metrics.PackageBuild("failed", time.Since(start))
		if j.Attempts >= p.cfg.MaxAttempts {
			p.logger.Error("package build failed; gave up, an administrator may retry it", "case", j.CaseID, "job", j.ID, "attempts", j.Attempts, "err", err)
			return true, p.cfg.Store.RetryJob(ctx, j.ID, central.JobGaveUp, fmt.Sprintf("gave up after %d attempts: %v", j.Attempts, err))
		}
		delay := backoff(j.Attempts)
		p.logger.Error("package build failed; will retry", "case", j.CaseID, "attempt", j.Attempts, "retry_in", delay, "err", err)
		return true, p.cfg.Store.RetryJob(ctx, j.ID, p.cfg.Now().Add(delay), err.Error())
	}
	p.cfg.Metrics.PackageBuild("built", time.Since(start))
	return true, p.cfg.Store.CompleteJob(ctx, j.ID)
}

// safeBuild is Build with a panic turned into the build's error.
func (p *Packer) safeBuild(ctx context.Context, id plume.CaseID) (err error) {
	defer func() {
		if v := recover(); v != nil {
			p.logger.Error("package build panicked", "case", id, "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("build package %s: panic: %v", id, v)
		}
	}()
	return p.Build(ctx, id)
}

// RetryFailed puts a failed build job (central.Job.Failed) back in the
// queue as a fresh job with its attempts reset, for an administrator who
// fixed the cause. It returns the new job.
func RetryFailed(ctx context.Context, st central.Store, id uint64, now time.Time) (central.Job, error) {
	jobs, err := st.Jobs(ctx)
	if err != nil {
		return central.Job{}, fmt.Errorf("retry job: %w", err)
	}
	for _, j := range jobs {
		if j.ID != id {
			continue
		}
		if !j.Failed() {
			return central.Job{}, plume.Errorf(plume.ECONFLICT, "job %d has not failed", id)
		}
		if err := st.CompleteJob(ctx, id); err != nil {
			return central.Job{}, fmt.Errorf("retry job: %w", err)
		}
		return st.EnqueueJob(ctx, central.Job{Kind: j.Kind, CaseID: j.CaseID, CreatedAt: now})
	}
	return central.Job{}, plume.Errorf(plume.ENOTFOUND, "no job %d", id)
}

// backoff returns the delay before attempt n+1: 2^n seconds, at most an hour.
func backoff(n int) time.Duration {
	if n > 12 {
		return time.Hour
	}
	return min(time.Duration(1<<n)*time.Second, time.Hour)
}

// Build builds, verifies and stores a case's evidence package and records
// it on the case. A case whose package is built for its current revision
// and held is left as it is; after a review changes the case, the package
// is built again with the grown custody log (the old one stays in the
// blob store).
func (p *Packer) Build(ctx context.Context, id plume.CaseID) error {
	c, err := p.cfg.Store.Case(ctx, id)
	if err != nil {
		return fmt.Errorf("build package: %w", err)
	}
	if c.PackageCurrent() {
		if ok, err := p.cfg.Blobs.Exists(ctx, c.PackageSHA256); err != nil {
			return fmt.Errorf("build package: %w", err)
		} else if ok {
			return nil
		}
	}
	if err := p.build(ctx, c); err != nil {
		return fmt.Errorf("build package %s: %w", c.Number, err)
	}
	return nil
}

func (p *Packer) build(ctx context.Context, c *central.Case) error {
	ev, err := p.cfg.Store.Evidence(ctx, c.Station, c.EvidenceID)
	if err != nil {
		return err
	}
	st, err := p.cfg.Store.Station(ctx, c.Station)
	if err != nil {
		return err
	}
	log, err := p.cfg.Store.Custody(ctx, c.ID)
	if err != nil {
		return err
	}
	// The custody entry "package built … signed" is written only once the
	// package is built, verified and stored; the package carries it as its
	// last entry, chained where the store will put it. A build that
	// crashed after logging itself reuses its entry, so retries do not
	// grow the log.
	var pending *central.CustodyEntry
	if len(log) == 0 || log[len(log)-1].Action != central.ActionPackageBuilt {
		e := central.CustodyEntry{
			Time: p.cfg.Now().UTC(), Actor: "central", Action: central.ActionPackageBuilt,
			Detail: fmt.Sprintf("evidence package v%s signed by central key %s", evidence.PackageVersion, plume.EncodeKey(p.cfg.Key.Public().(ed25519.PublicKey))),
		}
		pending = &e
		var last *central.CustodyEntry
		if len(log) > 0 {
			last = &log[len(log)-1]
		}
		log = append(log, central.ChainCustody(last, e))
	}
	builtAt := log[len(log)-1].Time

	f, err := os.CreateTemp(p.cfg.TempDir, "package-*.zip")
	if err != nil {
		return err
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	err = evidence.Write(ctx, cw, &evidence.Input{
		Case: c, Station: st, Evidence: ev, Custody: log, Organization: p.cfg.Organization,
		Key: p.cfg.Key, BuiltAt: builtAt, SheetFont: p.cfg.SheetFont,
		OpenMedia: func(ctx context.Context, sum string) (io.ReadCloser, error) {
			rc, _, err := p.cfg.Blobs.Open(ctx, sum)
			return rc, err
		},
	})
	if err != nil {
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	// Never store a package that does not verify.
	rep, err := evidence.Verify(f, cw.n, evidence.VerifyOptions{CentralKey: p.cfg.Key.Public().(ed25519.PublicKey)})
	if err != nil {
		return fmt.Errorf("self-check: %w\n%s", err, rep)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := p.cfg.Blobs.Put(ctx, sum, f, cw.n); err != nil {
		return err
	}
	if pending != nil {
		e, err := p.cfg.Store.AppendCustody(ctx, c.ID, *pending)
		if err != nil {
			return err
		}
		if !bytes.Equal(central.EncodeCustody(e), central.EncodeCustody(log[len(log)-1])) {
			// The log grew while this package was built (a review); the
			// case changed, so it is built again with the longer log.
			return fmt.Errorf("custody log grew during the build; building again")
		}
	}
	if err := p.cfg.Store.SetCasePackage(ctx, c.ID, sum, cw.n, builtAt, c.Revision); err != nil {
		return err
	}
	p.logger.Info("package built", "case", c.ID, "number", c.Number, "sha256", sum, "size", cw.n)
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
