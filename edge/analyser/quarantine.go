package analyser

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"
	"unicode/utf8"
)

// Rejected is one quarantined input: bytes that could not be turned into a
// valid record, with why.
type Rejected struct {
	Time     time.Time `json:"time"`
	Remote   string    `json:"remote"`
	Protocol string    `json:"protocol"`
	Reason   Reason    `json:"reason"`
	Error    string    `json:"error"`
	// Raw holds the exact bytes (base64 in JSON). A QuarantineFile stores
	// them once: as Text when they are UTF-8, in Raw otherwise.
	// ReadQuarantine sets Raw in either case.
	Raw  []byte `json:"raw,omitempty"`
	Text string `json:"text,omitempty"`
	// Truncated is the input's full length when only its first
	// QuarantineOptions.MaxItemBytes were kept.
	Truncated int `json:"truncated,omitempty"`
}

// Quarantiner keeps rejected input where an operator can see it.
// Implementations must be safe for concurrent use and return only once the
// item is stored, or with an error.
type Quarantiner interface {
	Quarantine(ctx context.Context, r Rejected) error
}

// QuarantineOptions bound a quarantine file. The zero value gives the
// defaults.
type QuarantineOptions struct {
	// MaxBytes caps the quarantine on disk: the file and its one rotated
	// predecessor (path.1) together (default 64 MiB). When the file
	// reaches half of it, it becomes path.1, and the older path.1 with its
	// items is dropped (counted in QuarantineStats).
	MaxBytes int64
	// MaxItemBytes keeps only the first bytes of a larger input (default
	// 64 KiB); Rejected.Truncated gives its length.
	MaxItemBytes int
	// DiskFree reports the free bytes of the file system; nil does not
	// look. While it is under MinFreeBytes, items are dropped (and
	// counted) rather than written, so garbage never takes the space
	// that passes need.
	DiskFree     func() (int64, bool)
	MinFreeBytes int64
	// SyncEvery is the most a written item waits for fsync (default 1 s):
	// a flood of garbage costs one sync a second, not one per item.
	SyncEvery time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// QuarantineStats count what the quarantine kept and dropped since it was
// opened.
type QuarantineStats struct {
	Written      int64 // items written
	Bytes        int64 // bytes on disk now (file and path.1)
	Truncated    int64 // items kept only in part
	DroppedItems int64 // items dropped: rotated out, or refused for disk space
	DroppedBytes int64 // their stored (or would-be) bytes
	Rotations    int64
}

// QuarantineFile appends rejected input to a bounded, rotating file, one
// JSON object per line. It implements Quarantiner.
type QuarantineFile struct {
	path string
	opts QuarantineOptions

	mu       sync.Mutex
	f        *os.File
	size     int64 // of the current file
	items    int64 // in the current file
	oldSize  int64 // of path.1
	oldItems int64
	lastSync time.Time
	dirty    bool
	stats    QuarantineStats
}

// OpenQuarantine opens (creating if needed) a quarantine file with the
// default bounds.
func OpenQuarantine(path string) (*QuarantineFile, error) {
	return OpenQuarantineWith(path, QuarantineOptions{})
}

// OpenQuarantineWith opens (creating if needed) a quarantine file.
func OpenQuarantineWith(path string, opts QuarantineOptions) (*QuarantineFile, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 64 << 20
	}
	if opts.MaxItemBytes <= 0 {
		opts.MaxItemBytes = 64 << 10
	}
	if opts.SyncEvery <= 0 {
		opts.SyncEvery = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	q := &QuarantineFile{path: path, opts: opts}
	var err error
	if q.oldSize, q.oldItems, err = countLines(path + ".1"); err != nil {
		return nil, fmt.Errorf("open quarantine: %w", err)
	}
	if q.size, q.items, err = countLines(path); err != nil {
		return nil, fmt.Errorf("open quarantine: %w", err)
	}
	if q.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err != nil {
		return nil, fmt.Errorf("open quarantine: %w", err)
	}
	return q, nil
}

// countLines returns a file's size and line count; a missing file has
// none.
func countLines(path string) (size, lines int64, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	} else if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		b, err := r.ReadSlice('\n')
		size += int64(len(b))
		if err == nil {
			lines++
			continue
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return size, lines, nil
	}
}

// Quarantine appends r. It never waits for more than one fsync, and drops
// (counting it) what the bounds do not allow.
func (q *QuarantineFile) Quarantine(_ context.Context, r Rejected) error {
	if len(r.Raw) > q.opts.MaxItemBytes {
		r.Truncated = len(r.Raw)
		r.Raw = r.Raw[:q.opts.MaxItemBytes]
	}
	if r.Text == "" && utf8.Valid(r.Raw) {
		r.Text, r.Raw = string(r.Raw), nil
	} else if r.Text != "" {
		r.Raw = nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	b = append(b, '\n')
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.f == nil {
		return fmt.Errorf("quarantine: file is closed")
	}
	if q.opts.DiskFree != nil {
		if free, ok := q.opts.DiskFree(); ok && free-int64(len(b)) < q.opts.MinFreeBytes {
			q.stats.DroppedItems++
			q.stats.DroppedBytes += int64(len(b))
			return fmt.Errorf("quarantine: %d bytes free, keeping %d for passes: item dropped", free, q.opts.MinFreeBytes)
		}
	}
	if q.size > 0 && q.size+int64(len(b)) > q.opts.MaxBytes/2 {
		if err := q.rotate(); err != nil {
			return fmt.Errorf("quarantine: rotate: %w", err)
		}
	}
	if _, err := q.f.Write(b); err != nil {
		return fmt.Errorf("quarantine: write: %w", err)
	}
	q.size += int64(len(b))
	q.items++
	q.stats.Written++
	if r.Truncated > 0 {
		q.stats.Truncated++
	}
	q.dirty = true
	if now := q.opts.Now(); now.Sub(q.lastSync) >= q.opts.SyncEvery {
		q.lastSync = now
		q.dirty = false
		if err := q.f.Sync(); err != nil {
			return fmt.Errorf("quarantine: sync: %w", err)
		}
	}
	return nil
}

// rotate makes the current file path.1, dropping the older one. Call with
// q.mu held.
func (q *QuarantineFile) rotate() error {
	if err := q.f.Sync(); err != nil {
		return err
	}
	if err := q.f.Close(); err != nil {
		return err
	}
	q.f = nil
	if err := os.Rename(q.path, q.path+".1"); err != nil {
		return err
	}
	q.stats.DroppedItems += q.oldItems
	q.stats.DroppedBytes += q.oldSize
	q.stats.Rotations++
	q.oldSize, q.oldItems = q.size, q.items
	q.size, q.items = 0, 0
	f, err := os.OpenFile(q.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	q.f = f
	return nil
}

// Stats returns the counters.
func (q *QuarantineFile) Stats() QuarantineStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.stats
	st.Bytes = q.size + q.oldSize
	return st
}

// Close syncs and closes the file.
func (q *QuarantineFile) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.f == nil {
		return nil
	}
	err := q.f.Sync()
	err = errors.Join(err, q.f.Close())
	q.f = nil
	return err
}

// ReadQuarantine reads every entry of a quarantine file, oldest first,
// starting with its rotated predecessor (path.1) when there is one.
func ReadQuarantine(path string) ([]Rejected, error) {
	var out []Rejected
	for _, p := range []string{path + ".1", path} {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) && p != path {
			continue
		} else if err != nil {
			return out, fmt.Errorf("read quarantine: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var r Rejected
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				f.Close()
				return out, fmt.Errorf("read quarantine: %s line %d: %w", p, len(out)+1, err)
			}
			if len(r.Raw) == 0 && r.Text != "" {
				r.Raw = []byte(r.Text)
			}
			out = append(out, r)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return out, fmt.Errorf("read quarantine: %w", err)
		}
	}
	return out, nil
}
