package export

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Drop writes cases as files to an agreed directory (POLICE-CONTRACT.md
// §3): the package first, then the record, each atomically.
type Drop struct {
	dir string
	now func() time.Time
}

// NewDrop returns the folder-drop adapter writing to dir.
func NewDrop(dir string, now func() time.Time) (*Drop, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("drop folder: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Drop{dir: dir, now: now}, nil
}

// Name implements Exporter.
func (d *Drop) Name() string { return "folder-drop" }

// Export implements Exporter.
func (d *Drop) Export(ctx context.Context, key string, rec *Record, pkg Package) (*Receipt, error) {
	zipPath := filepath.Join(d.dir, rec.CaseNumber+".zip")
	if filepath.Base(zipPath) != rec.CaseNumber+".zip" {
		return nil, &PermanentError{Err: fmt.Errorf("case number %q cannot name a file", rec.CaseNumber)}
	}
	if sum, err := fileSHA(zipPath); err != nil || sum != pkg.SHA256 {
		f, err := pkg.Open()
		if err != nil {
			return nil, fmt.Errorf("open package: %w", err)
		}
		err = writeAtomic(zipPath, io.LimitReader(f, pkg.Size))
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, &PermanentError{Err: err}
	}
	jsonPath := filepath.Join(d.dir, rec.CaseNumber+".json")
	if old, err := os.ReadFile(jsonPath); err != nil || !bytes.Equal(old, append(b, '\n')) {
		if err := writeAtomic(jsonPath, bytes.NewReader(append(b, '\n'))); err != nil {
			return nil, err
		}
	}
	return &Receipt{ID: "drop:" + pkg.SHA256, ReceivedAt: d.now().UTC()}, nil
}

func fileSHA(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeAtomic(path string, r io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("drop: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("drop %s: %w", filepath.Base(path), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("drop %s: %w", filepath.Base(path), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("drop %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("drop %s: %w", filepath.Base(path), err)
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		dir.Sync()
		dir.Close()
	}
	return nil
}
