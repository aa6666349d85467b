package analyser

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
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
	Raw      []byte    `json:"raw"`            // exact bytes, base64 in JSON
	Text     string    `json:"text,omitempty"` // the same bytes when they are UTF-8, for reading by eye
}

// Quarantiner keeps rejected input where an operator can see it.
// Implementations must be safe for concurrent use and return only once the
// item is durable.
type Quarantiner interface {
	Quarantine(ctx context.Context, r Rejected) error
}

// QuarantineFile appends rejected input to a file, one JSON object per line,
// and fsyncs after each. It implements Quarantiner.
type QuarantineFile struct {
	mu sync.Mutex
	f  *os.File
}

// OpenQuarantine opens (creating if needed) a quarantine file for appending.
func OpenQuarantine(path string) (*QuarantineFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open quarantine: %w", err)
	}
	return &QuarantineFile{f: f}, nil
}

// Quarantine appends r and syncs the file.
func (q *QuarantineFile) Quarantine(_ context.Context, r Rejected) error {
	if r.Text == "" && utf8.Valid(r.Raw) {
		r.Text = string(r.Raw)
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
	if _, err := q.f.Write(b); err != nil {
		return fmt.Errorf("quarantine: write: %w", err)
	}
	if err := q.f.Sync(); err != nil {
		return fmt.Errorf("quarantine: sync: %w", err)
	}
	return nil
}

// Close closes the file.
func (q *QuarantineFile) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.f == nil {
		return nil
	}
	err := q.f.Close()
	q.f = nil
	return err
}

// ReadQuarantine reads every entry of a quarantine file.
func ReadQuarantine(path string) ([]Rejected, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read quarantine: %w", err)
	}
	defer f.Close()
	var out []Rejected
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var r Rejected
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return out, fmt.Errorf("read quarantine: line %d: %w", len(out)+1, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read quarantine: %w", err)
	}
	return out, nil
}
