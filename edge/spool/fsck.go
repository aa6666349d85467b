package spool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FsckReport is what Fsck found. Problems are readable lines; an empty list
// means the spool is sound.
type FsckReport struct {
	Dir            string
	Values         int // bbolt values checked
	Media          int // media files hashed
	Manifests      int // manifest files decoded
	Records        int // good frames in records/
	QueuedEvidence int
	QueuedRecords  int
	Problems       []string
}

// OK reports whether nothing was found.
func (r *FsckReport) OK() bool { return len(r.Problems) == 0 }

func (r *FsckReport) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Fsck checks the spool in dir offline and changes nothing: the pages of
// spool.db (a walk plus bbolt's own consistency check), the checksum of
// every value, every media file against its name (SHA-256), every queued
// manifest against its file in evidence/, every manifest file and the
// frames in records/. The spool must not be open in another process
// (spool.db is locked while it is). It returns an error only when it could
// not look; what it found is in the report.
func Fsck(ctx context.Context, dir string) (*FsckReport, error) {
	rep := &FsckReport{Dir: dir}
	p := filepath.Join(dir, "spool.db")
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	s := &Spool{dir: dir, log: slog.New(slog.DiscardHandler), now: time.Now,
		opts: Options{LockTimeout: 2 * time.Second}}
	db, err := s.openReadOnly(p)
	if err != nil {
		if isCorrupt(err) {
			rep.problem("spool.db: %v (plume-edge run moves it aside and rebuilds it from the files)", err)
			db = nil
		} else {
			return nil, fmt.Errorf("fsck: %w", err)
		}
	}
	if db != nil {
		defer db.Close()
		s.db = db
		if err := verifyDB(db); err != nil {
			rep.problem("spool.db: %v (plume-edge run moves it aside and rebuilds it from the files)", err)
		} else {
			s.fsckValues(rep)
		}
	}
	if err := s.fsckMedia(ctx, rep); err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	if err := s.fsckManifests(ctx, rep); err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	if err := s.fsckSegments(rep); err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	return rep, nil
}

// openReadOnly opens spool.db without writing to it, turning a panic on
// garbage pages into a corruptError.
func (s *Spool) openReadOnly(p string) (db *bolt.DB, err error) {
	// A page id past the end of the file faults inside the mmap; with this
	// the fault is a panic that the recover below turns into an error,
	// instead of killing the process.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, &corruptError{fmt.Errorf("panic in open: %v", r)}
		}
	}()
	db, err = bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true, Timeout: s.opts.LockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: locked by a running agent; stop it first", p)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	return db, nil
}

// fsckValues checks every value and that queued manifests match their
// files.
func (s *Spool) fsckValues(rep *FsckReport) {
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bktEvidence, bktRecords, bktDead, bktSeen, bktMedia, bktTotals} {
			if b := tx.Bucket(name); b != nil {
				rep.Values += b.Stats().KeyN
			}
		}
		if b := tx.Bucket(bktEvidence); b != nil {
			rep.QueuedEvidence = b.Stats().KeyN
		}
		if b := tx.Bucket(bktRecords); b != nil {
			rep.QueuedRecords = b.Stats().KeyN
		}
		bad, err := s.findBad(tx)
		if err != nil {
			return err
		}
		for _, bv := range bad {
			rep.problem("spool.db: %s/%q: %s (healed from the files at the next start)", bv.bucket, bv.key, bv.why)
		}
		b := tx.Bucket(bktEvidence)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var e evidenceEntry
			if decodeValue(k, v, &e) != nil {
				return nil // reported above
			}
			body, err := os.ReadFile(s.path("evidence", string(e.ID)+".json"))
			switch {
			case err != nil:
				rep.problem("evidence %s: queued, but its manifest file is unreadable: %v", e.ID, err)
			case !bytes.Equal(body, e.Manifest):
				rep.problem("evidence %s: the queued manifest differs from evidence/%s.json", e.ID, e.ID)
			}
			sigText, err := os.ReadFile(s.path("evidence", string(e.ID)+".sig"))
			if sig, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sigText))); err != nil || derr != nil || !bytes.Equal(sig, e.Signature) {
				rep.problem("evidence %s: evidence/%s.sig is missing or differs from the queued signature", e.ID, e.ID)
			}
			for _, md := range e.Media {
				if st, err := os.Stat(s.mediaPath(md.SHA256)); err != nil || st.Size() != md.Size {
					rep.problem("evidence %s: media %s (%s) missing or of the wrong size", e.ID, md.Name, md.SHA256)
				}
			}
			return nil
		})
	})
	if err != nil {
		rep.problem("spool.db: %v", err)
	}
}

// fsckMedia hashes every media file and compares the hash with its name.
func (s *Spool) fsckMedia(ctx context.Context, rep *FsckReport) error {
	return filepath.WalkDir(s.path("media"), func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := d.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			return nil
		}
		rep.Media++
		if !plume.ValidSHA256(name) {
			rep.problem("media %s: not named by a SHA-256", p)
			return nil
		}
		sum, err := fileSHA256(p)
		if err != nil {
			rep.problem("media %s: %v", name, err)
		} else if sum != name {
			rep.problem("media %s: content hashes to %s (the file is damaged; central would refuse it)", name, sum)
		}
		return nil
	})
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
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

// fsckManifests decodes every manifest file.
func (s *Spool) fsckManifests(ctx context.Context, rep *FsckReport) error {
	ents, err := os.ReadDir(s.path("evidence"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, de := range ents {
		name := de.Name()
		if de.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rep.Manifests++
		id := strings.TrimSuffix(name, ".json")
		body, err := os.ReadFile(s.path("evidence", name))
		if err == nil {
			var m *plume.Manifest
			if m, err = plume.DecodeManifest(body); err == nil && string(m.ID) != id {
				err = fmt.Errorf("holds manifest %s", m.ID)
			}
		}
		if err != nil {
			rep.problem("evidence/%s: %v", name, err)
		}
	}
	return nil
}

// fsckSegments reads every frame in records/.
func (s *Spool) fsckSegments(rep *FsckReport) error {
	dir := s.path(segDirName)
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	for _, seg := range segs {
		for _, ext := range []string{"log", "ack"} {
			frames, bad, err := readFrames(segPath(dir, seg, ext))
			if err != nil {
				return err
			}
			if ext == "log" {
				rep.Records += len(frames)
			}
			if bad > 0 {
				rep.problem("%s: %d damaged stretch(es) skipped", filepath.Base(segPath(dir, seg, ext)), bad)
			}
		}
	}
	return nil
}
