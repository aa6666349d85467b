package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/plume-emissions/plume"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket names.
var (
	bktEvidence = []byte("evidence") // seq → evidenceEntry (the evidence outbox)
	bktRecords  = []byte("records")  // seq → plume.Record (the record outbox)
	bktDead     = []byte("dead")     // seq → deadEntry
	bktSeen     = []byte("seen")     // "e/"+id or "r/"+id → seenEntry
	bktMedia    = []byte("media")    // sha256 → mediaEntry
)

// Kind says whether an item is evidence or a record.
type Kind string

const (
	KindEvidence Kind = "evidence"
	KindRecord   Kind = "record"
)

// States in the seen index.
const (
	stateQueued    = "queued"
	stateDelivered = "delivered"
	stateDead      = "dead"
	stateCompacted = "compacted"
)

// Options configure a spool. The zero value is usable.
type Options struct {
	// Logger receives reconciliation and capacity events; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// MaxBytes caps the bytes used under the spool directory (files plus the
	// live pages of spool.db); 0 means no cap.
	MaxBytes int64
	// MinFreeBytes is the space to leave free on the file system; 0 means
	// none beyond what the file system itself reserves.
	MinFreeBytes int64
	// MediaGrace is how long media and manifest files are kept after
	// central acknowledged them (default 24 h). Under disk pressure they may
	// go sooner.
	MediaGrace time.Duration
	// SeenRetention is how long delivered IDs are remembered so that
	// resends from the analyser are deduplicated (default 7 days; at least
	// MediaGrace).
	SeenRetention time.Duration
	// RecordsMaxBytes is the budget of the records class (the record
	// segments in records/); 0 means the records share MaxBytes and
	// MinFreeBytes with everything else. See Capacity in the package
	// documentation.
	RecordsMaxBytes int64
	// LockTimeout is how long Open waits for another process to release
	// spool.db (default 5 s).
	LockTimeout time.Duration
}

// Spool is the durable outbox. Its methods are safe for concurrent use by
// one producer and one consumer.
type Spool struct {
	dir    string
	db     *bolt.DB
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	notify chan struct{}

	mu          sync.Mutex // guards the fields below and serialises space-making
	fileBytes   int64      // bytes of files under media/, evidence/ and quarantine/
	recentPuts  map[string]time.Time
	leased      map[uint64]bool // record seqs handed to the consumer and not yet settled
	missing     map[plume.EvidenceID][]string
	lastGC      time.Time
	scrubNext   string          // media digest the next Scrub starts from
	lastScrub   ScrubResult     // what the last Scrub found
	damaged     map[string]bool // media Scrub found damaged
	pressure    bool            // the file system reported ENOSPC; cleared once room is made
	reserve     int64           // size of the disk reserve (reserve.go); 0 for none
	reserveGone bool            // the reserve was released and is not yet back

	unreachable        atomic.Bool // the uplink reported central unreachable
	closed             atomic.Bool
	rebuilt            bool
	evidenceDelivered  atomic.Int64
	recordsDelivered   atomic.Int64
	deadLettered       atomic.Int64
	recordsCompacted   atomic.Int64
	orphansQuarantined atomic.Int64
	mediaRemoved       atomic.Int64
	fullRefusals       atomic.Int64
	recordsRecovered   atomic.Int64
	valuesHealed       atomic.Int64

	segs *segLog // records/: the records outside bbolt
}

type evidenceEntry struct {
	ID        plume.EvidenceID `json:"id"`
	Media     []plume.MediaRef `json:"media"`
	Manifest  []byte           `json:"manifest"`
	Signature []byte           `json:"signature"`
	Added     time.Time        `json:"added"`
}

type deadEntry struct {
	DeadLetter
	Evidence *evidenceEntry `json:"evidence,omitempty"`
	Record   *plume.Record  `json:"record,omitempty"`
	Seg      uint64         `json:"seg,omitempty"` // the record's segment
}

type seenEntry struct {
	State   string    `json:"state"`
	Seq     uint64    `json:"seq,omitempty"` // outbox key while queued
	At      time.Time `json:"at"`
	Cleaned bool      `json:"cleaned,omitempty"` // delivered evidence files removed
}

type mediaEntry struct {
	Size     int64     `json:"size"`
	Refs     int       `json:"refs"`              // queued or dead-lettered evidence using it
	Released time.Time `json:"released,omitzero"` // when Refs last fell to 0 on delivery
}

// Open opens (creating if needed) the spool in dir and reconciles its files
// with its database. See the package documentation.
func Open(ctx context.Context, dir string, opts Options) (*Spool, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MediaGrace <= 0 {
		opts.MediaGrace = 24 * time.Hour
	}
	if opts.SeenRetention <= 0 {
		opts.SeenRetention = 7 * 24 * time.Hour
	}
	if opts.SeenRetention < opts.MediaGrace {
		opts.SeenRetention = opts.MediaGrace
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 5 * time.Second
	}
	s := &Spool{
		dir:        dir,
		opts:       opts,
		log:        opts.Logger.With("component", "spool"),
		now:        opts.Now,
		notify:     make(chan struct{}, 1),
		recentPuts: map[string]time.Time{},
		leased:     map[uint64]bool{},
		missing:    map[plume.EvidenceID][]string{},
		damaged:    map[string]bool{},
	}
	for _, d := range []string{dir, s.path("media"), s.path("evidence"), s.path("quarantine")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("open spool: %w", err)
		}
	}
	segs, err := newSegLog(s.path(segDirName))
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s.segs = segs
	if err := s.openDB(); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	if err := s.reconcile(ctx); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("open spool: reconcile: %w", err)
	}
	return s, nil
}

// Close closes the database. Pending items stay on disk for the next Open.
func (s *Spool) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.segs.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close spool: %w", err)
	}
	return nil
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Notify returns a channel that receives a value after new items were
// queued (coalesced; one consumer).
func (s *Spool) Notify() <-chan struct{} { return s.notify }

func (s *Spool) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *Spool) path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

// openDB opens spool.db. A file bbolt rejects, or whose pages cannot be
// walked, is moved aside and a fresh database is created; reconcile then
// rebuilds the outbox from evidence/.
func (s *Spool) openDB() error {
	p := s.path("spool.db")
	db, err := s.tryOpen(p)
	if err == nil {
		if err = verifyDB(db); err == nil {
			s.db = db
			err = s.prepareDB()
		}
		if err != nil {
			_ = db.Close()
		}
	}
	if err == nil {
		return nil
	}
	if !isCorrupt(err) {
		return err
	}
	aside := fmt.Sprintf("%s.corrupt-%s", p, s.now().UTC().Format("20060102T150405.000000000Z"))
	s.log.Error("spool database is corrupt; moving it aside and rebuilding from evidence and record files", "path", p, "aside", aside, "err", err)
	if rerr := os.Rename(p, aside); rerr != nil {
		return fmt.Errorf("move corrupt database aside: %w", rerr)
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	if db, err = s.tryOpen(p); err != nil {
		return err
	}
	s.rebuilt = true
	s.db = db
	return s.prepareDB()
}

// prepareDB creates the buckets and drops the values that fail their
// check (reconcile adopts what they described from the files). bbolt
// panics on some damaged pages only when it writes; such a panic, or bad
// values that deleting does not remove (a damaged page layout), make the
// database corrupt.
func (s *Spool) prepareDB() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &corruptError{fmt.Errorf("panic writing pages: %v", r)}
		}
	}()
	err = s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktEvidence, bktRecords, bktDead, bktSeen, bktMedia} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := s.dropBad(); err != nil {
		return err
	}
	var left []badValue
	if err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		left, err = s.findBad(tx)
		return err
	}); err != nil {
		return err
	}
	if len(left) > 0 {
		return &corruptError{fmt.Errorf("%d damaged values could not be removed (first: %s)", len(left), left[0].why)}
	}
	return nil
}

// corruptError marks a database that exists but cannot be read.
type corruptError struct{ err error }

func (e *corruptError) Error() string { return "corrupt database: " + e.err.Error() }
func (e *corruptError) Unwrap() error { return e.err }

func isCorrupt(err error) bool {
	var ce *corruptError
	return errors.As(err, &ce) || errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch)
}

// tryOpen opens the bbolt file, turning a panic on garbage pages into a
// corruptError.
func (s *Spool) tryOpen(p string) (db *bolt.DB, err error) {
	// A page id past the end of the file faults inside the mmap; with this
	// the fault is a panic that the recover below turns into an error,
	// instead of killing the process.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, &corruptError{fmt.Errorf("panic in open: %v", r)}
		}
	}()
	db, err = bolt.Open(p, 0o600, &bolt.Options{Timeout: s.opts.LockTimeout})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	return db, nil
}

// verifyDB walks every page of every bucket, turning failures and panics
// (bbolt panics on some garbage pages) into a corruptError, and then runs
// bbolt's own consistency check. The walk runs in the calling goroutine so
// that a panic can be recovered, unlike (*bolt.Tx).Check, which therefore
// runs only on pages the walk has read. Values that fail their checksum do
// not make the database corrupt: heal replaces them from the files.
func verifyDB(db *bolt.DB) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // as in tryOpen
	defer func() {
		if r := recover(); r != nil {
			err = &corruptError{fmt.Errorf("panic reading pages: %v", r)}
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		lo, pageSize := db.Info().Data, db.Info().PageSize
		hi := lo + uintptr(tx.Size())
		if err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			var prev []byte
			var base uintptr
			return b.ForEach(func(k, v []byte) error {
				// A flipped size in an element header makes bbolt hand out
				// slices that run off the mapped file; touching them is a
				// fault no recover catches, so check before anyone reads.
				// Small buckets live inline in their parent's value, which
				// bbolt may copy to the heap: their elements must lie
				// within one page of the first.
				blo, bhi := lo, hi
				if b.Root() == 0 {
					if base == 0 {
						base = addr(k)
					}
					blo, bhi = base, base+uintptr(pageSize)
				}
				if !within(k, blo, bhi) || !within(v, blo, bhi) {
					return fmt.Errorf("bucket %q: an element points outside the file", name)
				}
				if prev != nil && bytes.Compare(prev, k) >= 0 {
					return fmt.Errorf("bucket %q: keys out of order at %q", name, k)
				}
				prev = append(prev[:0], k...)
				if !keyShapeOK(name, k) {
					return fmt.Errorf("bucket %q: malformed key %q", name, k)
				}
				return nil
			})
		}); err != nil {
			return err
		}
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		if _, ok := err.(*corruptError); ok {
			return err
		}
		return &corruptError{err}
	}
	return nil
}

// within reports whether b lies inside the mapped range [lo, hi).
func within(b []byte, lo, hi uintptr) bool {
	if len(b) == 0 {
		return true
	}
	p := addr(b)
	return p >= lo && p <= hi && uintptr(len(b)) <= hi-p
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// keyShapeOK reports whether k can be a key of the spool's bucket name; a
// key of the wrong shape means a damaged page, not a damaged value.
func keyShapeOK(name, k []byte) bool {
	switch string(name) {
	case string(bktEvidence), string(bktRecords), string(bktDead):
		return len(k) == 8
	case string(bktSeen):
		return len(k) > 2 && (k[0] == 'e' || k[0] == 'r') && k[1] == '/'
	case string(bktMedia):
		return plume.ValidSHA256(string(k))
	}
	return true
}

func (s *Spool) check(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

func itob(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func btoi(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func seenKey(k Kind, id string) []byte {
	if k == KindEvidence {
		return []byte("e/" + id)
	}
	return []byte("r/" + id)
}
