package store

import (
	"bytes"
	"errors"
	"fmt"
	"runtime/debug"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrCorrupt is returned (wrapped) by Open when central.db exists but its
// pages cannot be read: bbolt rejects the file, panics on it, or its own
// consistency check fails. Open changes nothing in that case; the operator
// moves the file aside and restores the last backup.
var ErrCorrupt = errors.New("database file is corrupt")

// openChecked opens the bbolt file and walks every page before anything
// writes to it. bbolt trusts its pages: garbage makes it panic, and a
// flipped element size makes it hand out slices that run off the mapped
// file, where reading faults in a way no recover catches. The walk checks
// those slices before anyone reads them, then bbolt's own check runs.
//
// The edge spool guards its database the same way (edge/spool verifyDB);
// the two adapters may not import each other, and the root package is
// standard library only, so each keeps its own short copy.
func openChecked(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	// A page id past the end of the file faults inside the mmap; with this
	// the fault is a panic that the recover below turns into an error,
	// instead of killing the process.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, opts)
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	} else if err != nil {
		return nil, err
	}
	if err := checkPages(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return db, nil
}

func checkPages(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		info := db.Info()
		lo := info.Data
		hi := lo + uintptr(tx.Size())
		var walk func(path string, b *bolt.Bucket) error
		walk = func(path string, b *bolt.Bucket) error {
			var prev []byte
			var base uintptr
			return b.ForEach(func(k, v []byte) error {
				blo, bhi := lo, hi
				if b.Root() == 0 {
					// An inline bucket lives in its parent's value, which
					// bbolt may copy: its elements lie within one page.
					if base == 0 {
						base = addr(k)
					}
					blo, bhi = base, base+uintptr(info.PageSize)
				}
				if !within(k, blo, bhi) || !within(v, blo, bhi) {
					return fmt.Errorf("bucket %s: an element points outside the file", path)
				}
				if prev != nil && bytes.Compare(prev, k) >= 0 {
					return fmt.Errorf("bucket %s: keys out of order at %q", path, k)
				}
				prev = append(prev[:0], k...)
				if v == nil {
					if c := b.Bucket(k); c != nil {
						return walk(path+"/"+string(k), c)
					}
				}
				return nil
			})
		}
		if err := tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(string(name), b) }); err != nil {
			return err
		}
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// within reports whether b lies inside [lo, hi).
func within(b []byte, lo, hi uintptr) bool {
	if len(b) == 0 {
		return true
	}
	p := addr(b)
	return p >= lo && p <= hi && uintptr(len(b)) <= hi-p
}
