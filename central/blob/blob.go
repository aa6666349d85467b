// Package blob is central's embedded blob store: a central.BlobStore that
// keeps each blob as a read-only file named by its SHA-256 under a root
// directory (<root>/<first two hex digits>/<sha256>).
//
// A blob becomes visible only once it is complete and verified: Put streams
// into a temporary file while hashing, checks size and digest, fsyncs,
// renames into place and fsyncs the directory. Paths are built only from
// digests that passed plume.ValidSHA256, never from other input.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Store is the filesystem implementation of central.BlobStore. It is safe
// for concurrent use, also by several goroutines putting the same blob.
type Store struct {
	root string
}

var _ central.BlobStore = (*Store)(nil)

// Open opens (creating if needed) the blob store rooted at dir. Temporary
// files left by an interrupted Put are removed: they were never visible.
func Open(dir string) (*Store, error) {
	s := &Store{root: dir}
	if err := os.MkdirAll(s.tmpDir(), 0o750); err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	leftovers, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	for _, e := range leftovers {
		if err := os.Remove(filepath.Join(s.tmpDir(), e.Name())); err != nil {
			return nil, fmt.Errorf("open blob store: remove partial upload: %w", err)
		}
	}
	return s, nil
}

func (s *Store) tmpDir() string { return filepath.Join(s.root, "tmp") }

// path returns the file of a validated digest.
func (s *Store) path(sum string) (string, error) {
	if !plume.ValidSHA256(sum) {
		return "", plume.Errorf(plume.EINVALID, "invalid sha256 %q", truncate(sum))
	}
	return filepath.Join(s.root, sum[:2], sum), nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Put implements central.BlobStore. size < 0 means unknown.
func (s *Store) Put(ctx context.Context, sum string, r io.Reader, size int64) (bool, error) {
	dst, err := s.path(sum)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(dst); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("put blob: %w", err)
	}
	if err := s.write(ctx, dst, sum, r, size); errors.Is(err, syscall.ENOSPC) {
		return false, plume.Errorf(plume.EUNAVAILABLE, "central's blob store is full; retry later")
	} else if err != nil {
		return false, fmt.Errorf("put blob %s: %w", sum[:12], err)
	}
	return true, nil
}

func (s *Store) write(ctx context.Context, dst, sum string, r io.Reader, size int64) (err error) {
	f, err := os.CreateTemp(s.tmpDir(), "put-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	src := io.Reader(ctxReader{ctx, r})
	if size >= 0 {
		src = io.LimitReader(src, size+1) // one extra byte reveals a longer body
	}
	n, err := io.Copy(io.MultiWriter(f, h), src)
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return central.ErrSizeMismatch
	}
	if hex.EncodeToString(h.Sum(nil)) != sum {
		return central.ErrDigestMismatch
	}
	if err := f.Chmod(0o440); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops a long copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Open implements central.BlobStore.
func (s *Store) Open(ctx context.Context, sum string) (io.ReadSeekCloser, central.BlobInfo, error) {
	p, err := s.path(sum)
	if err != nil {
		return nil, central.BlobInfo{}, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, central.BlobInfo{}, fmt.Errorf("blob %s: %w", sum[:12], central.ErrNotFound)
	} else if err != nil {
		return nil, central.BlobInfo{}, fmt.Errorf("open blob: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, central.BlobInfo{}, fmt.Errorf("open blob: %w", err)
	}
	return f, central.BlobInfo{SHA256: sum, Size: fi.Size()}, nil
}

// Stat implements central.BlobStore.
func (s *Store) Stat(ctx context.Context, sum string) (central.BlobInfo, error) {
	p, err := s.path(sum)
	if err != nil {
		return central.BlobInfo{}, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return central.BlobInfo{}, fmt.Errorf("blob %s: %w", sum[:12], central.ErrNotFound)
	} else if err != nil {
		return central.BlobInfo{}, fmt.Errorf("stat blob: %w", err)
	}
	return central.BlobInfo{SHA256: sum, Size: fi.Size()}, nil
}

// Exists implements central.BlobStore.
func (s *Store) Exists(ctx context.Context, sum string) (bool, error) {
	_, err := s.Stat(ctx, sum)
	if errors.Is(err, central.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
