package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/blob"
	"github.com/plume-emissions/plume/central/objectstore"
	"github.com/plume-emissions/plume/central/sqlstore"
	"github.com/plume-emissions/plume/central/store"
)

// runMigrate copies an embedded central (DATA/central.db and DATA/blobs)
// into PostgreSQL (PLUME_STORE_DSN or -to-dsn) and MinIO (PLUME_BLOB_*),
// then verifies the copy: every blob read back from MinIO and hashed,
// every case, custody log, evidence item and the audit chain compared.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./central-data", "the embedded central's data directory (central stopped, or a backup from deploy/backup-central)")
	dsn := fs.String("to-dsn", getenv(EnvStoreDSN), "PostgreSQL connection string of the empty target database (default $PLUME_STORE_DSN)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dsn == "" {
		return errors.New("migrate: give the target database with -to-dsn or PLUME_STORE_DSN")
	}
	if getenv(EnvBlobEndpoint) == "" {
		return errors.New("migrate: set the PLUME_BLOB_* variables to the target object store")
	}
	src, err := store.Open(filepath.Join(*data, store.FileName), store.Options{LockTimeout: 500 * time.Millisecond})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("migrate: %s is in use by a running central; stop it first, or migrate a backup made by deploy/backup-central", *data)
	} else if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer src.Close()
	srcBlobs, err := blob.Open(filepath.Join(*data, "blobs"))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	dst, err := sqlstore.Open(ctx, *dsn, sqlstore.Options{})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer dst.Close()
	oc, err := objectstore.ConfigFromEnv(getenv)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	dstBlobs, err := objectstore.Open(ctx, oc)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	m := &migration{src: src, srcBlobs: srcBlobs, dst: dst, dstBlobs: dstBlobs, out: stdout}
	return m.run(ctx)
}

// migration moves one embedded central; it prints progress to out.
type migration struct {
	src      *store.Store
	srcBlobs *blob.Store
	dst      *sqlstore.Store
	dstBlobs central.BlobStore
	out      io.Writer
	last     time.Time
}

// progress prints a line at most every two seconds, and always when force.
func (m *migration) progress(force bool, format string, args ...any) {
	if !force && time.Since(m.last) < 2*time.Second {
		return
	}
	m.last = time.Now()
	fmt.Fprintf(m.out, format+"\n", args...)
}

func (m *migration) run(ctx context.Context) error {
	start := time.Now()
	imp, err := m.dst.NewImport(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}

	// 1. Blobs. Put hashes every byte on the way and refuses a mismatch.
	var total, totalBytes int64
	if err := m.srcBlobs.Walk(ctx, func(_ string, size int64) error { total++; totalBytes += size; return nil }); err != nil {
		return fmt.Errorf("migrate: list blobs: %w", err)
	}
	m.progress(true, "blobs: copying %d (%s) to the object store", total, mib(totalBytes))
	var done, doneBytes int64
	err = m.srcBlobs.Walk(ctx, func(sum string, size int64) error {
		rc, _, err := m.srcBlobs.Open(ctx, sum)
		if err != nil {
			return err
		}
		defer rc.Close()
		if _, err := m.dstBlobs.Put(ctx, sum, rc, size); err != nil {
			return fmt.Errorf("blob %s: %w", sum, err)
		}
		done++
		doneBytes += size
		m.progress(done == total, "blobs: %d/%d (%s of %s)", done, total, mib(doneBytes), mib(totalBytes))
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}

	// 2. Metadata, in one consistent read of the source.
	m.progress(true, "metadata: copying to PostgreSQL")
	count := func() {
		c := imp.Counts()
		m.progress(false, "metadata: %d cases, %d records, %d passes, %d custody entries, %d audit events", c["cases"], c["records"], c["passes"], c["custody"], c["audit_log"])
	}
	err = m.src.Dump(ctx, store.Dump{
		Station:  func(st *central.Station) error { return imp.Station(ctx, st) },
		Evidence: func(ev *central.StoredEvidence) error { return imp.Evidence(ctx, ev) },
		Record:   func(s plume.StationID, raw []byte) error { count(); return imp.Record(ctx, s, raw) },
		Pass:     func(p *central.PassRow) error { count(); return imp.Pass(ctx, p) },
		Case:     func(c *central.Case) error { count(); return imp.Case(ctx, c) },
		Custody:  func(id plume.CaseID, seq int64, line []byte) error { return imp.Custody(ctx, id, seq, line) },
		Job:      func(j central.Job) error { return imp.Job(ctx, j) },
		Vehicle:  func(e *central.VehicleEntry) error { return imp.Vehicle(ctx, e) },
		StationAudit: func(s plume.StationID, id string, a *plume.Audit) error {
			return imp.StationAudit(ctx, s, id, a)
		},
		Day:     func(d *central.DayStats) error { return imp.Day(ctx, d) },
		Officer: func(o *central.Officer) error { return imp.Officer(ctx, o) },
		Session: func(se *central.Session) error { return imp.Session(ctx, se) },
		Audit:   func(seq uint64, line []byte) error { return imp.Audit(ctx, seq, line) },
		Health:  func(h *central.StationHealth) error { return imp.Health(ctx, h) },
		HealthHistory: func(h *central.StationHealth) error {
			return imp.HealthHistory(ctx, h)
		},
		Alert:         func(a *central.Alert) error { return imp.Alert(ctx, a) },
		DesiredConfig: func(c *central.DesiredConfig) error { return imp.DesiredConfig(ctx, c) },
		Counters: func(lastCase, lastPass, lastJob uint64, packages int) error {
			imp.Counters(lastCase, lastPass, lastJob, packages)
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := imp.Finish(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	c := imp.Counts()
	m.progress(true, "metadata: %d stations, %d evidence items, %d cases, %d records, %d passes, %d custody entries, %d jobs, %d officers, %d audit events, %d alerts, %d heartbeats",
		c["stations"], c["evidence"], c["cases"], c["records"], c["passes"], c["custody"], c["jobs"], c["officers"], c["audit_log"], c["ops_alerts"], c["ops_health_history"])

	// 3. Verify.
	if err := m.verify(ctx, total); err != nil {
		return fmt.Errorf("migrate: verify: %w", err)
	}
	m.progress(true, "migrated and verified in %v", time.Since(start).Round(time.Millisecond))
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// verify reads every blob back from the object store and hashes it, and
// compares every case, custody log, evidence item and count, and the
// audit chain, with the source.
func (m *migration) verify(ctx context.Context, total int64) error {
	var n int64
	held := map[string]int64{}
	err := m.srcBlobs.Walk(ctx, func(sum string, size int64) error {
		rc, _, err := m.dstBlobs.Open(ctx, sum)
		if err != nil {
			return fmt.Errorf("blob %s: %w", sum, err)
		}
		h := sha256.New()
		got, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("blob %s: %w", sum, err)
		}
		if hex.EncodeToString(h.Sum(nil)) != sum || got != size {
			return fmt.Errorf("blob %s: the object store holds other bytes (%d, want %d)", sum, got, size)
		}
		held[sum] = size
		n++
		m.progress(n == total, "verify: blobs re-hashed from the object store: %d/%d", n, total)
		return nil
	})
	if err != nil {
		return err
	}
	var cases int
	err = m.src.Dump(ctx, store.Dump{
		Case: func(c *central.Case) error {
			got, err := m.dst.Case(ctx, c.ID)
			if err != nil {
				return err
			}
			a, _ := json.Marshal(c)
			b, _ := json.Marshal(got)
			if string(a) != string(b) {
				return fmt.Errorf("case %s differs", c.ID)
			}
			if c.PackageSHA256 != "" && held[c.PackageSHA256] != c.PackageSize {
				return fmt.Errorf("case %s: package %s not in the object store", c.ID, c.PackageSHA256)
			}
			log, err := m.dst.Custody(ctx, c.ID)
			if err != nil {
				return err
			}
			srcLog, err := m.src.Custody(ctx, c.ID)
			if err != nil {
				return err
			}
			if len(log) != len(srcLog) {
				return fmt.Errorf("case %s: %d custody entries, want %d", c.ID, len(log), len(srcLog))
			}
			prev := central.CustodyGenesis
			for i, e := range log {
				if e.PrevSHA256 != prev || string(central.EncodeCustody(e)) != string(central.EncodeCustody(srcLog[i])) {
					return fmt.Errorf("case %s: custody entry %d differs or breaks the chain", c.ID, e.Seq)
				}
				prev = central.CustodyHash(central.EncodeCustody(e))
			}
			cases++
			m.progress(false, "verify: cases %d", cases)
			return nil
		},
		Evidence: func(ev *central.StoredEvidence) error {
			got, err := m.dst.Evidence(ctx, ev.Station, ev.ID)
			if err != nil {
				return err
			}
			if string(got.Manifest) != string(ev.Manifest) || string(got.StationSig) != string(ev.StationSig) || got.CaseID != ev.CaseID {
				return fmt.Errorf("evidence %s differs", ev.ID)
			}
			man, err := plume.DecodeManifest(ev.Manifest)
			if err != nil {
				return nil // stored as received; nothing to check against
			}
			for _, md := range man.Media {
				if _, ok := held[md.SHA256]; !ok {
					return fmt.Errorf("evidence %s: media %s not in the object store", ev.ID, md.SHA256)
				}
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	a, err := m.src.Stats(ctx)
	if err != nil {
		return err
	}
	b, err := m.dst.Stats(ctx)
	if err != nil {
		return err
	}
	if a != b {
		return fmt.Errorf("counts differ: source %+v, PostgreSQL %+v", a, b)
	}
	events, err := verifyAudit(ctx, m.dst)
	if err != nil {
		return err
	}
	m.progress(true, "verify: %d cases with their custody logs, %d evidence items, the audit chain of %d events, counts %+v", cases, a.Evidence, events, b)
	return nil
}

// verifyAudit walks the audit log oldest to newest and checks the chain.
func verifyAudit(ctx context.Context, st central.Store) (int, error) {
	var all []central.AuditEvent
	cursor := ""
	for {
		evs, next, err := st.Audit(ctx, central.AuditFilter{Limit: central.MaxPageSize, Cursor: cursor})
		if err != nil {
			return 0, err
		}
		all = append(all, evs...)
		if next == "" {
			break
		}
		cursor = next
	}
	prev := central.CustodyGenesis
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].PrevSHA256 != prev {
			return 0, fmt.Errorf("audit event %d breaks the chain", all[i].Seq)
		}
		b, _ := json.Marshal(all[i])
		prev = central.CustodyHash(b)
	}
	return len(all), nil
}
