package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The record segments keep every queued record outside bbolt, so that a
// spool.db that has to be moved aside loses none of them.
//
//	records/seg-<n>.log   frames of JSON plume.Record, appended and synced
//	                      before the outbox entry is committed
//	records/seg-<n>.ack   frames of record IDs settled since (delivered to
//	                      central or folded into a summary), appended after
//	                      the commit that settled them
//
// A frame is segFrameMagic, the payload length and the CRC32C of the
// payload (both 4-byte big-endian), then the payload. A reader that meets a
// bad frame (a torn tail, a flipped bit) skips ahead to the next magic, so
// one bad frame costs only itself. A segment whose records are all settled
// is deleted, with its ack file, unless it is the one being appended to.
const (
	segDirName    = "records"
	segFrameMagic = "\xa5PR"
	segHeader     = len(segFrameMagic) + 8
	segMaxFrame   = 4 << 20 // larger than any record the spool accepts
	segRotate     = 4 << 20 // a new segment starts once the current passes this
)

// segLog appends frames to the current segment and tracks, per segment,
// how many of its records are still live (queued or dead-lettered).
type segLog struct {
	dir string

	mu    sync.Mutex
	cur   uint64 // segment being appended to; 0 before the first append
	next  uint64 // number the next new segment gets
	f     *os.File
	size  int64
	live  map[uint64]int
	bytes int64 // bytes of the files in dir
}

func newSegLog(dir string) (*segLog, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	n, err := dirBytes(dir)
	if err != nil {
		return nil, err
	}
	l := &segLog{dir: dir, next: 1, live: map[uint64]int{}, bytes: n}
	if len(segs) > 0 {
		l.next = segs[len(segs)-1] + 1
	}
	return l, nil
}

func segPath(dir string, n uint64, ext string) string {
	return filepath.Join(dir, fmt.Sprintf("seg-%016x.%s", n, ext))
}

// listSegments returns the numbers of the segment logs in dir, ascending.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	var out []uint64
	for _, de := range ents {
		name := de.Name()
		if !strings.HasPrefix(name, "seg-") || !strings.HasSuffix(name, ".log") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "seg-"), ".log"), 16, 64)
		if err != nil || n == 0 {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

func frame(payload []byte) []byte {
	out := make([]byte, segHeader+len(payload))
	copy(out, segFrameMagic)
	binary.BigEndian.PutUint32(out[len(segFrameMagic):], uint32(len(payload)))
	binary.BigEndian.PutUint32(out[len(segFrameMagic)+4:], crc32.Checksum(payload, castagnoli))
	copy(out[segHeader:], payload)
	return out
}

// parseFrames returns the payloads of the good frames in data, in order,
// and how many stretches of bad bytes were skipped.
func parseFrames(data []byte) (payloads [][]byte, bad int) {
	magic := []byte(segFrameMagic)
	skipping := false
	for len(data) > 0 {
		if len(data) >= segHeader && bytes.HasPrefix(data, magic) {
			n := int(binary.BigEndian.Uint32(data[len(magic):]))
			sum := binary.BigEndian.Uint32(data[len(magic)+4:])
			if n <= segMaxFrame && n <= len(data)-segHeader {
				p := data[segHeader : segHeader+n]
				if crc32.Checksum(p, castagnoli) == sum {
					payloads = append(payloads, p)
					data = data[segHeader+n:]
					skipping = false
					continue
				}
			}
		}
		if !skipping {
			bad++
			skipping = true
		}
		i := bytes.Index(data[1:], magic)
		if i < 0 {
			break
		}
		data = data[1+i:]
	}
	return payloads, bad
}

// readFrames reads the good frames of one file; a missing file has none.
func readFrames(path string) ([][]byte, int, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	} else if err != nil {
		return nil, 0, err
	}
	p, bad := parseFrames(data)
	return p, bad, nil
}

// append writes payload as one frame to the current segment and syncs it.
// It returns the segment and the bytes added to the directory. A failed
// write is cut off again, so the next frame starts clean.
func (l *segLog) append(payload []byte) (seg uint64, added int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil && l.size >= segRotate {
		l.closeCurrent()
	}
	if l.f == nil {
		n := l.next
		f, err := os.OpenFile(segPath(l.dir, n, "log"), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o640)
		if err != nil {
			return 0, 0, fmt.Errorf("new segment: %w", err)
		}
		if err := syncDir(l.dir); err != nil {
			_ = f.Close()
			return 0, 0, err
		}
		l.next++
		l.cur, l.f, l.size = n, f, 0
	}
	fr := frame(payload)
	if _, err := l.f.WriteAt(fr, l.size); err != nil {
		l.cutBack()
		return 0, 0, fmt.Errorf("append segment: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		l.cutBack()
		return 0, 0, fmt.Errorf("sync segment: %w", err)
	}
	l.size += int64(len(fr))
	l.bytes += int64(len(fr))
	l.live[l.cur]++
	return l.cur, int64(len(fr)), nil
}

// cutBack removes a partly written frame; when that fails it gives up the
// segment so the next frame goes to a fresh one (readers skip the torn
// bytes). Call with l.mu held.
func (l *segLog) cutBack() {
	if err := l.f.Truncate(l.size); err != nil {
		l.closeCurrent()
	}
}

// closeCurrent stops appending to the current segment. Call with l.mu held.
func (l *segLog) closeCurrent() {
	if l.f != nil {
		_ = l.f.Close()
	}
	l.f, l.size = nil, 0
	old := l.cur
	l.cur = 0
	if old != 0 && l.live[old] <= 0 {
		l.removeSegment(old)
	}
}

// settle records that the records ids (by segment) no longer need their
// segment: it appends their IDs to the segments' ack files and removes
// segments none of whose records is live. It returns the bytes freed (a
// negative number when the ack files grew more than was removed).
func (l *segLog) settle(ids map[uint64][]string) (freed int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for seg, list := range ids {
		if seg == 0 || len(list) == 0 {
			continue
		}
		l.live[seg] -= len(list)
		if l.live[seg] <= 0 && seg != l.cur {
			freed += l.removeSegment(seg)
			continue
		}
		var buf []byte
		for _, id := range list {
			buf = append(buf, frame([]byte(id))...)
		}
		if err := appendSync(segPath(l.dir, seg, "ack"), buf); err != nil {
			errs = append(errs, err)
			continue
		}
		freed -= int64(len(buf))
		l.bytes += int64(len(buf))
	}
	return freed, errors.Join(errs...)
}

// removeSegment deletes a segment and its ack file, returning the bytes
// freed. Call with l.mu held.
func (l *segLog) removeSegment(seg uint64) int64 {
	var n int64
	for _, ext := range []string{"log", "ack"} {
		p := segPath(l.dir, seg, ext)
		if st, err := os.Stat(p); err == nil && os.Remove(p) == nil {
			n += st.Size()
		}
	}
	delete(l.live, seg)
	l.bytes -= n
	return n
}

// usage returns the bytes the segments and their ack files take.
func (l *segLog) usage() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bytes
}

// rotate makes the next append start a new segment.
func (l *segLog) rotate() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeCurrent()
}

func (l *segLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
}

func appendSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
