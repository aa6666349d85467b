package spool

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	bolt "go.etcd.io/bbolt"
)

// MissingMedia names a queued or dead-lettered evidence item whose media
// file was not on disk at start-up.
type MissingMedia struct {
	ID     plume.EvidenceID
	SHA256 []string
}

// reconcile brings the files and the database into agreement at start-up;
// see the package documentation.
func (s *Spool) reconcile(ctx context.Context) error {
	if err := s.removeTemps(); err != nil {
		return err
	}
	if err := s.adoptManifests(ctx); err != nil {
		return err
	}
	if err := s.adoptRecords(ctx, true); err != nil {
		return err
	}
	// Entries lost with a damaged page leave reference counts too high;
	// counting again from the outbox keeps their media collectable.
	if err := s.db.Update(recountMedia); err != nil {
		return fmt.Errorf("recount media: %w", err)
	}
	if err := s.quarantineOrphans(ctx); err != nil {
		return err
	}
	if err := s.flagMissing(); err != nil {
		return err
	}
	n, err := dirBytes(s.path("media"), s.path("evidence"), s.path("quarantine"), s.path(segDirName))
	if err != nil {
		return err
	}
	s.fileBytes = n
	st := s.Stats()
	s.log.Info("spool open", "dir", s.dir, "queued_evidence", st.QueuedEvidence, "queued_records", st.QueuedRecords,
		"dead_letters", st.DeadLetters, "missing_media", st.MissingMedia, "orphans_quarantined", st.OrphansQuarantined,
		"rebuilt", st.Rebuilt, "bytes", st.Bytes)
	return nil
}

// removeTemps deletes temporary files left by a crash. They never became
// visible under their final name, and the producer still holds their data.
func (s *Spool) removeTemps() error {
	return filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p == s.path("quarantine") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), tmpPrefix) {
			s.log.Info("removing leftover temporary file", "path", p)
			return os.Remove(p)
		}
		return nil
	})
}

// adoptManifests queues every manifest in evidence/ the database does not
// know: all of them after a rebuild, or one written just before a crash.
// Manifests marked delivered are recorded as delivered instead.
func (s *Spool) adoptManifests(ctx context.Context) error {
	dir := s.path("evidence")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	type found struct {
		e         evidenceEntry
		captured  time.Time
		delivered time.Time
	}
	var todo []found
	for _, de := range ents {
		name := de.Name()
		if de.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		id := strings.TrimSuffix(name, ".json")
		state, err := s.knownState(KindEvidence, id)
		if err != nil {
			return err
		}
		if state != "" {
			continue
		}
		body, err1 := os.ReadFile(filepath.Join(dir, name))
		sigText, err2 := os.ReadFile(filepath.Join(dir, id+".sig"))
		var m *plume.Manifest
		var sig []byte
		if err = errors.Join(err1, err2); err == nil {
			if m, err = plume.DecodeManifest(body); err == nil && string(m.ID) != id {
				err = fmt.Errorf("file holds manifest %s", m.ID)
			}
		}
		if err == nil {
			sig, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(sigText)))
		}
		if err != nil {
			for _, p := range []string{name, id + ".sig", id + ".delivered"} {
				if _, serr := os.Stat(filepath.Join(dir, p)); serr == nil {
					if qerr := s.quarantine(filepath.Join(dir, p), "unreadable manifest: "+err.Error()); qerr != nil {
						return qerr
					}
				}
			}
			continue
		}
		f := found{e: evidenceEntry{ID: m.ID, Media: m.Media, Manifest: body, Signature: sig, Added: s.now().UTC()}, captured: m.CapturedAt}
		if st, err := os.Stat(filepath.Join(dir, id+".delivered")); err == nil {
			f.delivered = st.ModTime()
		}
		todo = append(todo, f)
	}
	if len(todo) == 0 {
		return nil
	}
	slices.SortFunc(todo, func(a, b found) int {
		if c := a.captured.Compare(b.captured); c != 0 {
			return c
		}
		return strings.Compare(string(a.e.ID), string(b.e.ID))
	})
	queued := 0
	err = s.db.Update(func(tx *bolt.Tx) error {
		for i := range todo {
			f := &todo[i]
			if st, err := getSeen(tx, KindEvidence, string(f.e.ID)); err == nil && st.State != "" && liveIn(tx, KindEvidence, string(f.e.ID), st) {
				continue // queued meanwhile by AddEvidence
			}
			if f.delivered.IsZero() {
				queued++
				if err := enqueueEvidence(tx, &f.e, s.now()); err != nil {
					return err
				}
				continue
			}
			if err := putJSON(tx.Bucket(bktSeen), seenKey(KindEvidence, string(f.e.ID)), seenEntry{State: stateDelivered, At: f.delivered.UTC()}); err != nil {
				return err
			}
			mb := tx.Bucket(bktMedia)
			for _, md := range f.e.Media {
				if mb.Get([]byte(md.SHA256)) == nil {
					if err := putJSON(mb, []byte(md.SHA256), mediaEntry{Size: md.Size, Released: f.delivered.UTC()}); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("adopt manifests: %w", err)
	}
	s.log.Warn("queued manifests found in evidence/ that the database did not hold", "queued", queued, "delivered", len(todo)-queued, "rebuilt", s.rebuilt)
	return nil
}

// quarantineOrphans moves media files no entry refers to into quarantine/.
func (s *Spool) quarantineOrphans(ctx context.Context) error {
	known := map[string]bool{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktMedia).ForEach(func(k, _ []byte) error { known[string(k)] = true; return nil })
	})
	if err != nil {
		return err
	}
	return filepath.WalkDir(s.path("media"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := d.Name()
		if plume.ValidSHA256(name) && filepath.Base(filepath.Dir(p)) == name[:2] && known[name] {
			return nil
		}
		if err := s.quarantine(p, "media file no spool entry refers to"); err != nil {
			return err
		}
		s.orphansQuarantined.Add(1)
		return nil
	})
}

// flagMissing finds queued and dead-lettered evidence whose media file is
// gone. Such items are kept: central may already hold the media.
func (s *Spool) flagMissing() error {
	gone := map[string]bool{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		mb := tx.Bucket(bktMedia)
		var stale [][]byte
		err := mb.ForEach(func(k, v []byte) error {
			if _, err := os.Stat(s.mediaPath(string(k))); err == nil {
				return nil
			}
			var me mediaEntry
			if err := decodeValue(k, v, &me); err != nil {
				return err
			}
			if me.Refs > 0 {
				gone[string(k)] = true
			} else {
				stale = append(stale, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := mb.Delete(k); err != nil {
				return err
			}
		}
		if len(gone) == 0 {
			return nil
		}
		check := func(e *evidenceEntry) {
			for _, md := range e.Media {
				if gone[md.SHA256] && !slices.Contains(s.missing[e.ID], md.SHA256) {
					s.missing[e.ID] = append(s.missing[e.ID], md.SHA256)
				}
			}
		}
		if err := tx.Bucket(bktEvidence).ForEach(func(k, v []byte) error {
			var e evidenceEntry
			if err := decodeValue(k, v, &e); err != nil {
				return err
			}
			check(&e)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bktDead).ForEach(func(k, v []byte) error {
			var d deadEntry
			if err := decodeValue(k, v, &d); err != nil {
				return err
			}
			if d.Evidence != nil {
				check(d.Evidence)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("flag missing media: %w", err)
	}
	for id, shas := range s.missing {
		s.log.Error("evidence media missing on disk; kept queued", "id", id, "sha256", shas)
	}
	return nil
}

// MissingMedia lists the evidence whose media was missing at start-up and
// that has not been delivered since.
func (s *Spool) MissingMedia() []MissingMedia {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]MissingMedia, 0, len(s.missing))
	for id, shas := range s.missing {
		out = append(out, MissingMedia{ID: id, SHA256: slices.Clone(shas)})
	}
	slices.SortFunc(out, func(a, b MissingMedia) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

func dirBytes(dirs ...string) (int64, error) {
	var n int64
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}
