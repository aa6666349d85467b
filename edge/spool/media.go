package spool

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
)

const tmpPrefix = ".tmp-"

func (s *Spool) mediaPath(sha string) string {
	return s.path("media", sha[:2], sha)
}

// PutMedia streams r into the spool and returns its SHA-256 and size. The
// bytes go to a temporary file in media/, are synced, and the file is renamed
// to its content address and the directory synced. Storing content the
// spool already holds is a no-op. It returns an error wrapping ErrFull when
// the item does not fit, and a plume.ETOOLARGE error for items larger than
// plume.MaxMediaSize.
func (s *Spool) PutMedia(ctx context.Context, r io.Reader) (sha string, size int64, err error) {
	if err := s.check(ctx); err != nil {
		return "", 0, fmt.Errorf("put media: %w", err)
	}
	f, err := os.CreateTemp(s.path("media"), tmpPrefix+"*")
	if err != nil {
		return "", 0, fmt.Errorf("put media: %w", s.fullErr(err))
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// Copy in chunks, making room for each before writing it. Once no room
	// can be made, keep hashing only: the content may already be stored,
	// which makes the call a no-op.
	h := sha256.New()
	src := &ctxReader{ctx, r}
	buf := make([]byte, putChunk)
	var n int64
	var full error
	for {
		k, rerr := io.ReadFull(src, buf)
		if k > 0 {
			h.Write(buf[:k])
			if full == nil {
				full = s.writeChunk(ctx, f, n, buf[:k])
				if full != nil && !errors.Is(full, ErrFull) {
					return "", 0, fmt.Errorf("put media: %w", full)
				}
			}
			n += int64(k)
			if n > plume.MaxMediaSize {
				return "", 0, plume.Errorf(plume.ETOOLARGE, "media larger than %d bytes", int64(plume.MaxMediaSize))
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		} else if rerr != nil {
			return "", 0, fmt.Errorf("put media: %w", rerr)
		}
	}
	if full != nil {
		sha = hex.EncodeToString(h.Sum(nil))
		if st, serr := os.Stat(s.mediaPath(sha)); serr == nil && st.Size() == n {
			s.mu.Lock()
			s.recentPuts[sha] = s.now()
			s.mu.Unlock()
			return sha, n, os.Remove(tmp)
		}
		err = fmt.Errorf("put media: %w", full)
		return "", 0, err
	}
	if err = f.Sync(); err != nil {
		return "", 0, fmt.Errorf("put media: sync: %w", s.fullErr(err))
	}
	if err = f.Close(); err != nil {
		return "", 0, fmt.Errorf("put media: %w", s.fullErr(err))
	}
	sha = hex.EncodeToString(h.Sum(nil))
	dst := s.mediaPath(sha)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.recentPuts[sha] = s.now()
	if st, serr := os.Stat(dst); serr == nil && st.Size() == n {
		_ = os.Remove(tmp)
		return sha, n, nil
	}
	if err = os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return "", 0, fmt.Errorf("put media: %w", s.fullErr(err))
	}
	if err = os.Rename(tmp, dst); err != nil {
		return "", 0, fmt.Errorf("put media: %w", err)
	}
	if err = syncDir(filepath.Dir(dst)); err != nil {
		return "", 0, fmt.Errorf("put media: %w", err)
	}
	if err = syncDir(s.path("media")); err != nil {
		return "", 0, fmt.Errorf("put media: %w", err)
	}
	s.fileBytes += n
	return sha, n, nil
}

// putChunk is the unit PutMedia makes room for and writes.
const putChunk = 64 << 10

// writeChunk writes p at offset off of the temporary file f, after making
// room for everything written so far plus p (the temporary file is not yet
// counted in the usage). On ENOSPC it truncates, makes room and tries once
// more.
func (s *Spool) writeChunk(ctx context.Context, f *os.File, off int64, p []byte) error {
	for try := 0; ; try++ {
		if err := s.ensureSpace(ctx, off+int64(len(p))); err != nil {
			return err
		}
		_, err := f.WriteAt(p, off)
		if err == nil {
			return nil
		}
		err = s.fullErr(err)
		if !errors.Is(err, ErrFull) || try > 0 {
			return err
		}
		if terr := f.Truncate(off); terr != nil {
			return terr
		}
	}
}

// OpenMedia opens the media item with the given digest for reading, so that
// an upload can stream it and rewind it with Seek. The caller closes the
// file. It returns an error wrapping ErrMediaMissing when the file is absent.
func (s *Spool) OpenMedia(sha string) (*os.File, int64, error) {
	if !plume.ValidSHA256(sha) {
		return nil, 0, fmt.Errorf("open media: bad digest %q", sha)
	}
	f, err := os.Open(s.mediaPath(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("open media %s: %w", sha, ErrMediaMissing)
	} else if err != nil {
		return nil, 0, fmt.Errorf("open media: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("open media: %w", err)
	}
	return f, st.Size(), nil
}

// ctxReader stops a copy when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// fullErr marks ENOSPC (and EDQUOT) as ErrFull, and notes the pressure so
// that the next call makes room even when no limit is configured.
func (s *Spool) fullErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		s.mu.Lock()
		s.pressure = true
		s.mu.Unlock()
		s.fullRefusals.Add(1)
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return err
}

// writeFileSync writes data to dir/name through a synced temporary file, a
// rename and a directory sync.
func (s *Spool) writeFileSync(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return s.fullErr(err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return s.fullErr(err)
	}
	if err = f.Sync(); err != nil {
		return s.fullErr(err)
	}
	if err = f.Close(); err != nil {
		return s.fullErr(err)
	}
	if err = os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// quarantine moves path into quarantine/ under a unique name.
func (s *Spool) quarantine(path, why string) error {
	dst := s.path("quarantine", s.now().UTC().Format("20060102T150405.000000000Z")+"-"+filepath.Base(path))
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("quarantine %s: %w", path, err)
	}
	s.log.Warn("quarantined file", "path", path, "to", dst, "reason", why)
	return nil
}
