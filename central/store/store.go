// Package store is central's embedded metadata store: a central.Store kept
// in one bbolt file in the data directory.
//
// bbolt allows one process per file, so a second central (or
// "plume-central enroll" while central runs) fails at Open with ErrLocked
// instead of waiting. Because only one process can hold the file, job
// leases left by a process that died are released at Open, and pending
// package builds resume at once.
//
// Lists filter by scanning newest first from the cursor; that is fine for
// one city on one machine. The PostgreSQL store serves larger deployments.
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// ErrLocked is returned by Open when another process holds the database
// file, usually a running central.
var ErrLocked = errors.New("database is in use by another process (is central running?)")

// FileName is the database file's name inside the data directory.
const FileName = "central.db"

var (
	bucketStations = []byte("stations")
	bucketEvidence = []byte("evidence")
	bucketRecords  = []byte("records")
	bucketPasses   = []byte("passes")
	bucketCases    = []byte("cases")
	bucketCustody  = []byte("custody")
	bucketJobs     = []byte("jobs")
	bucketMeta     = []byte("meta")

	// Indexes and the officer side (schema 2).
	bucketCaseSum      = []byte("case_summary")     // case ID → summary
	bucketCaseStatus   = []byte("idx_case_status")  // status \x00 case ID → summary
	bucketCasePlate    = []byte("idx_case_plate")   // plate \x00 case ID → summary
	bucketCaseStation  = []byte("idx_case_station") // station \x00 case ID → summary
	bucketVehicles     = []byte("vehicles")         // plate \x00 time \x00 pass ID → VehicleEntry
	bucketStationAudit = []byte("station_audits")   // station \x00 time \x00 record ID → plume.Audit
	bucketDaily        = []byte("daily")            // day \x00 station → DayStats
	bucketOfficers     = []byte("officers")
	bucketSessions     = []byte("sessions")
	bucketAudit        = []byte("audit_log") // seq → AuditEvent

	keySchema   = []byte("schema")
	keyPackages = []byte("packages_built")
	schema      = []byte("2")
)

var allBuckets = [][]byte{
	bucketStations, bucketEvidence, bucketRecords, bucketPasses, bucketCases, bucketCustody, bucketJobs, bucketMeta,
	bucketCaseSum, bucketCaseStatus, bucketCasePlate, bucketCaseStation, bucketVehicles, bucketStationAudit,
	bucketDaily, bucketOfficers, bucketSessions, bucketAudit,
}

// Options tune Open.
type Options struct {
	// LockTimeout is how long Open waits for another process to release the
	// file before returning ErrLocked (default 1 s).
	LockTimeout time.Duration
	// NoSync skips fsync at commit: a crash may lose or corrupt the
	// database. Only for seeding tests and benchmarks.
	NoSync bool
}

// Store is the bbolt implementation of central.Store. It is safe for
// concurrent use.
type Store struct {
	db *bolt.DB
}

var _ central.Store = (*Store)(nil)

// Open opens or creates the database at path. A file whose pages cannot be
// read returns an error wrapping ErrCorrupt, and is left as it is.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db, err := openChecked(path, &bolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w", path, ErrLocked)
	} else if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = guardedUpdate(db, func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keySchema); {
		case v == nil:
			if err := meta.Put(keySchema, schema); err != nil {
				return err
			}
		case string(v) == "1":
			// Schema 1 had no case indexes: build them.
			if err := migrate1to2(tx); err != nil {
				return fmt.Errorf("migrate schema 1 to 2: %w", err)
			}
			if err := meta.Put(keySchema, schema); err != nil {
				return err
			}
		case !bytes.Equal(v, schema):
			return fmt.Errorf("schema version %q, this build reads %q", v, schema)
		}
		// Only this process can hold the file now: leases of a process
		// that died are void.
		jobs := tx.Bucket(bucketJobs)
		return jobs.ForEach(func(k, v []byte) error {
			var j central.Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("job %x: %w", k, err)
			}
			if j.LeaseUntil.IsZero() {
				return nil
			}
			j.LeaseUntil = time.Time{}
			return putJSON(jobs, k, &j)
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.NoSync = opts.NoSync
	return &Store{db: db}, nil
}

// guardedUpdate is db.Update for Open: bbolt panics on some damaged pages
// only when it writes, which the page check cannot see.
func guardedUpdate(db *bolt.DB, fn func(tx *bolt.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: panic writing pages: %v", ErrCorrupt, r)
		}
	}()
	return db.Update(fn)
}

// Close closes the database file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

func (s *Store) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, buf)
}

func getJSON(b *bolt.Bucket, k []byte, v any) (bool, error) {
	buf := b.Get(k)
	if buf == nil {
		return false, nil
	}
	if err := json.Unmarshal(buf, v); err != nil {
		return true, fmt.Errorf("decode %q: %w", k, err)
	}
	return true, nil
}

func itob(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func pairKey(a, b string) []byte { return []byte(a + "\x00" + b) }

// PutStation implements central.Store.
func (s *Store) PutStation(ctx context.Context, st *central.Station) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketStations)
		if b.Get([]byte(st.ID)) != nil {
			return fmt.Errorf("station %s already enrolled: %w", st.ID, central.ErrConflict)
		}
		return putJSON(b, []byte(st.ID), st)
	})
	if err != nil {
		return fmt.Errorf("put station: %w", err)
	}
	return nil
}

// Station implements central.Store.
func (s *Store) Station(ctx context.Context, id plume.StationID) (*central.Station, error) {
	var st central.Station
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketStations), []byte(id), &st)
		if err == nil && !ok {
			err = fmt.Errorf("station %s: %w", id, central.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// Stations implements central.Store.
func (s *Store) Stations(ctx context.Context) ([]*central.Station, error) {
	var out []*central.Station
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStations).ForEach(func(k, v []byte) error {
			var st central.Station
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("decode station %s: %w", k, err)
			}
			out = append(out, &st)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list stations: %w", err)
	}
	return out, nil
}

// PutEvidence implements central.Store.
func (s *Store) PutEvidence(ctx context.Context, ev *central.StoredEvidence, c *central.Case, custody []central.CustodyEntry) (*central.StoredEvidence, bool, error) {
	var (
		stored  central.StoredEvidence
		created bool
	)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		evb := tx.Bucket(bucketEvidence)
		key := pairKey(string(ev.Station), string(ev.ID))
		if ok, err := getJSON(evb, key, &stored); err != nil {
			return err
		} else if ok {
			if !bytes.Equal(stored.Manifest, ev.Manifest) {
				return fmt.Errorf("evidence %s: a different manifest is stored: %w", ev.ID, central.ErrConflict)
			}
			return nil
		}
		created = true
		if c != nil {
			cb := tx.Bucket(bucketCases)
			seq, err := cb.NextSequence()
			if err != nil {
				return err
			}
			c.ID = central.FormatCaseID(seq)
			c.Number = central.FormatCaseNumber(ev.ReceivedAt, seq)
			c.CreatedAt = ev.ReceivedAt
			ev.CaseID = c.ID
			if err := putJSON(cb, []byte(c.ID), c); err != nil {
				return err
			}
			if err := indexCase(tx, nil, c); err != nil {
				return err
			}
			ds := newDayCache(tx)
			ds.get(central.DayOf(c.CapturedAt), c.Station).AddTransition(nil, c)
			if err := ds.flush(); err != nil {
				return err
			}
			var last *central.CustodyEntry
			for _, e := range custody {
				e = central.ChainCustody(last, e)
				if err := tx.Bucket(bucketCustody).Put(custodyKey(c.ID, e.Seq), central.EncodeCustody(e)); err != nil {
					return err
				}
				last = &e
			}
			if _, err := enqueue(tx, central.Job{Kind: central.JobBuildPackage, CaseID: c.ID, CreatedAt: ev.ReceivedAt}); err != nil {
				return err
			}
		}
		stored = *ev
		// Ingest verified this manifest, so one that does not decode here is
		// a fault to report, never a vehicle-file entry skipped in silence.
		m, err := plume.DecodeManifest(ev.Manifest)
		if err != nil {
			return fmt.Errorf("evidence %s: decode manifest: %w", ev.ID, err)
		}
		if ve := central.NewVehicleEntry(&m.Pass); ve != nil {
			ve.CaseID = ev.CaseID
			if c != nil {
				ve.Plate = c.Plate
			}
			if err := putVehicle(tx, ve); err != nil {
				return err
			}
		}
		return putJSON(evb, key, ev)
	})
	if err != nil {
		return nil, false, fmt.Errorf("put evidence: %w", err)
	}
	return &stored, created, nil
}

// Evidence implements central.Store.
func (s *Store) Evidence(ctx context.Context, station plume.StationID, id plume.EvidenceID) (*central.StoredEvidence, error) {
	var ev central.StoredEvidence
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketEvidence), pairKey(string(station), string(id)), &ev)
		if err == nil && !ok {
			err = fmt.Errorf("evidence %s: %w", id, central.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &ev, nil
}

// PutRecords implements central.Store.
func (s *Store) PutRecords(ctx context.Context, station plume.StationID, recs []plume.Record, receivedAt time.Time) (accepted, duplicates int, err error) {
	err = s.update(ctx, func(tx *bolt.Tx) error {
		accepted, duplicates = 0, 0 // bbolt may not retry, but keep the counts honest if it did
		rb, pb := tx.Bucket(bucketRecords), tx.Bucket(bucketPasses)
		days := newDayCache(tx)
		for i := range recs {
			r := &recs[i]
			if r.Station != station {
				return fmt.Errorf("record %s belongs to station %s: %w", r.ID, r.Station, central.ErrConflict)
			}
			key := pairKey(string(station), r.ID)
			if rb.Get(key) != nil {
				duplicates++
				continue
			}
			if err := putJSON(rb, key, r); err != nil {
				return err
			}
			if r.Kind == plume.RecordPass && r.Pass != nil {
				seq, err := pb.NextSequence()
				if err != nil {
					return err
				}
				if err := putJSON(pb, itob(seq), central.NewPassRow(r.Pass, receivedAt)); err != nil {
					return err
				}
				if ve := central.NewVehicleEntry(r.Pass); ve != nil {
					if err := putVehicle(tx, ve); err != nil {
						return err
					}
				}
				days.get(central.DayOf(r.Pass.Reading.Time), station).AddPass(r.Pass)
			}
			if r.Kind == plume.RecordAudit && r.Audit != nil {
				k := append(append([]byte(string(station)+"\x00"), itob(uint64(r.Audit.Time.UnixNano()))...), []byte("\x00"+r.ID)...)
				if err := putJSON(tx.Bucket(bucketStationAudit), k, r.Audit); err != nil {
					return err
				}
			}
			accepted++
		}
		return days.flush()
	})
	if err != nil {
		return 0, 0, fmt.Errorf("put records: %w", err)
	}
	return accepted, duplicates, nil
}

// Passes implements central.Store. The cursor is the sequence number of the
// last row of the previous page.
func (s *Store) Passes(ctx context.Context, f central.PassFilter) ([]*central.PassRow, string, error) {
	var start []byte
	if f.Cursor != "" {
		n, err := strconv.ParseUint(f.Cursor, 10, 64)
		if err != nil || n == 0 {
			return nil, "", plume.Errorf(plume.EINVALID, "bad cursor %q", f.Cursor)
		}
		start = itob(n)
	}
	limit := central.PageLimit(f.Limit)
	var (
		out  []*central.PassRow
		next string
	)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return scanBack(tx.Bucket(bucketPasses), start, func(k, v []byte) (bool, error) {
			var row central.PassRow
			if err := json.Unmarshal(v, &row); err != nil {
				return false, fmt.Errorf("decode pass %x: %w", k, err)
			}
			if (f.Station != "" && row.Station != f.Station) || (f.Outcome != "" && row.Outcome != f.Outcome) || (len(f.Stations) > 0 && !slices.Contains(f.Stations, row.Station)) {
				return true, nil
			}
			if len(out) == limit {
				next = strconv.FormatUint(out[len(out)-1].Seq, 10)
				return false, nil
			}
			row.Seq = binary.BigEndian.Uint64(k)
			out = append(out, &row)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("list passes: %w", err)
	}
	return out, next, nil
}

// scanBack calls fn for each key strictly before start (or from the last
// key when start is nil), newest first, while fn returns true.
func scanBack(b *bolt.Bucket, start []byte, fn func(k, v []byte) (bool, error)) error {
	c := b.Cursor()
	var k, v []byte
	if start == nil {
		k, v = c.Last()
	} else {
		k, v = c.Seek(start)
		if k == nil {
			k, v = c.Last()
		}
		for k != nil && bytes.Compare(k, start) >= 0 {
			k, v = c.Prev()
		}
	}
	for ; k != nil; k, v = c.Prev() {
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// Case implements central.Store.
func (s *Store) Case(ctx context.Context, id plume.CaseID) (*central.Case, error) {
	var c central.Case
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketCases), []byte(id), &c)
		if err == nil && !ok {
			err = fmt.Errorf("case %s: %w", id, central.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// SetCasePackage implements central.Store.
func (s *Store) SetCasePackage(ctx context.Context, id plume.CaseID, sha string, size int64, builtAt time.Time, revision int) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		cb := tx.Bucket(bucketCases)
		var c central.Case
		if ok, err := getJSON(cb, []byte(id), &c); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("case %s: %w", id, central.ErrNotFound)
		}
		if c.PackageSHA256 == "" {
			meta := tx.Bucket(bucketMeta)
			n := uint64(0)
			if v := meta.Get(keyPackages); len(v) == 8 {
				n = binary.BigEndian.Uint64(v)
			}
			if err := meta.Put(keyPackages, itob(n+1)); err != nil {
				return err
			}
		}
		c.PackageSHA256, c.PackageSize, c.PackageBuiltAt, c.PackageRevision = sha, size, builtAt.UTC(), revision
		return putJSON(cb, []byte(id), &c)
	})
	if err != nil {
		return fmt.Errorf("set case package: %w", err)
	}
	return nil
}

func custodyKey(id plume.CaseID, seq int64) []byte {
	return append([]byte(string(id)+"\x00"), itob(uint64(seq))...)
}

// AppendCustody implements central.Store.
func (s *Store) AppendCustody(ctx context.Context, id plume.CaseID, e central.CustodyEntry) (central.CustodyEntry, error) {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketCases).Get([]byte(id)) == nil {
			return fmt.Errorf("case %s: %w", id, central.ErrNotFound)
		}
		var err error
		e, err = appendCustody(tx, id, e)
		return err
	})
	if err != nil {
		return central.CustodyEntry{}, fmt.Errorf("append custody: %w", err)
	}
	return e, nil
}

func appendCustody(tx *bolt.Tx, id plume.CaseID, e central.CustodyEntry) (central.CustodyEntry, error) {
	b := tx.Bucket(bucketCustody)
	prefix := []byte(string(id) + "\x00")
	var last *central.CustodyEntry
	c := b.Cursor()
	var k, v []byte
	if k, _ = c.Seek(custodyKey(id, 1<<62)); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k != nil && bytes.HasPrefix(k, prefix) {
		last = new(central.CustodyEntry)
		if err := json.Unmarshal(v, last); err != nil {
			return e, fmt.Errorf("decode custody entry: %w", err)
		}
	}
	e = central.ChainCustody(last, e)
	return e, b.Put(custodyKey(id, e.Seq), central.EncodeCustody(e))
}

// Custody implements central.Store.
func (s *Store) Custody(ctx context.Context, id plume.CaseID) ([]central.CustodyEntry, error) {
	var out []central.CustodyEntry
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketCases).Get([]byte(id)) == nil {
			return fmt.Errorf("case %s: %w", id, central.ErrNotFound)
		}
		prefix := []byte(string(id) + "\x00")
		c := tx.Bucket(bucketCustody).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var e central.CustodyEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode custody entry: %w", err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("custody: %w", err)
	}
	return out, nil
}

func enqueue(tx *bolt.Tx, j central.Job) (central.Job, error) {
	b := tx.Bucket(bucketJobs)
	id, err := b.NextSequence()
	if err != nil {
		return j, err
	}
	j.ID = id
	j.CreatedAt = j.CreatedAt.UTC()
	return j, putJSON(b, itob(id), &j)
}

// EnqueueJob implements central.Store.
func (s *Store) EnqueueJob(ctx context.Context, j central.Job) (central.Job, error) {
	if j.CreatedAt.IsZero() {
		j.CreatedAt = time.Now()
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		var err error
		j, err = enqueue(tx, j)
		return err
	})
	if err != nil {
		return j, fmt.Errorf("enqueue job: %w", err)
	}
	return j, nil
}

// ClaimJob implements central.Store.
func (s *Store) ClaimJob(ctx context.Context, now time.Time, lease time.Duration, kinds ...central.JobKind) (*central.Job, error) {
	var claimed *central.Job
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var j central.Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("decode job %x: %w", k, err)
			}
			if now.Before(j.NotBefore) || now.Before(j.LeaseUntil) || (len(kinds) > 0 && !slices.Contains(kinds, j.Kind)) {
				continue
			}
			j.LeaseUntil = now.Add(lease).UTC()
			j.Attempts++
			claimed = &j
			return putJSON(b, k, &j)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim job: %w", err)
	}
	if claimed == nil {
		return nil, central.ErrNoJob
	}
	return claimed, nil
}

// CompleteJob implements central.Store.
func (s *Store) CompleteJob(ctx context.Context, id uint64) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		if b.Get(itob(id)) == nil {
			return fmt.Errorf("job %d: %w", id, central.ErrNotFound)
		}
		return b.Delete(itob(id))
	})
	if err != nil {
		return fmt.Errorf("complete job: %w", err)
	}
	return nil
}

// RetryJob implements central.Store.
func (s *Store) RetryJob(ctx context.Context, id uint64, notBefore time.Time, reason string) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		var j central.Job
		if ok, err := getJSON(b, itob(id), &j); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("job %d: %w", id, central.ErrNotFound)
		}
		j.LeaseUntil, j.NotBefore, j.LastError = time.Time{}, notBefore.UTC(), reason
		return putJSON(b, itob(id), &j)
	})
	if err != nil {
		return fmt.Errorf("retry job: %w", err)
	}
	return nil
}

// Stats implements central.Store.
func (s *Store) Stats(ctx context.Context) (central.Stats, error) {
	var st central.Stats
	err := s.view(ctx, func(tx *bolt.Tx) error {
		st.Stations = tx.Bucket(bucketStations).Stats().KeyN
		st.Evidence = tx.Bucket(bucketEvidence).Stats().KeyN
		st.Records = tx.Bucket(bucketRecords).Stats().KeyN
		st.Cases = tx.Bucket(bucketCases).Stats().KeyN
		st.PendingJobs = tx.Bucket(bucketJobs).Stats().KeyN
		if v := tx.Bucket(bucketMeta).Get(keyPackages); len(v) == 8 {
			st.PackagesBuilt = int(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}
