package spool

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/plume-emissions/plume"
	bolt "go.etcd.io/bbolt"
)

// Evidence is one queued evidence item as the uplink sees it.
type Evidence struct {
	Seq       uint64
	ID        plume.EvidenceID
	Media     []plume.MediaRef
	Manifest  []byte // the exact signed bytes (plume.EncodeManifest)
	Signature []byte // the station's Ed25519 signature of Manifest
	Added     time.Time
}

// RecordItem is one queued record as the uplink sees it.
type RecordItem struct {
	Seq    uint64
	Record plume.Record
}

// DeadLetter is an item central refused for good. It stays in the spool,
// with the reason, until Requeue.
type DeadLetter struct {
	Kind   Kind      `json:"kind"`
	ID     string    `json:"id"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// AddEvidence queues a signed manifest for delivery. body must be the exact
// signed bytes of m (plume.SignManifest) and sig their signature. Every media
// item m lists must already be stored with PutMedia, with the listed size,
// or an error wrapping ErrMediaMissing is returned. The manifest and
// signature are written to evidence/ (synced) before the outbox entry is
// committed. Adding an ID that is already queued, delivered or dead-lettered
// is a no-op. When the spool cannot make room it returns an error wrapping
// ErrFull.
func (s *Spool) AddEvidence(ctx context.Context, m *plume.Manifest, body, sig []byte) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("add evidence: %w", err)
	}
	dm, err := plume.DecodeManifest(body)
	if err != nil {
		return fmt.Errorf("add evidence: %w", err)
	}
	if m != nil && m.ID != dm.ID {
		return fmt.Errorf("add evidence: %w", plume.Errorf(plume.EINVALID, "manifest body is for %s, not %s", dm.ID, m.ID))
	}
	if len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("add evidence %s: %w", dm.ID, plume.Errorf(plume.EINVALID, "signature must be %d bytes", ed25519.SignatureSize))
	}
	if known, err := s.seenStateHealed(ctx, KindEvidence, string(dm.ID)); err != nil {
		return fmt.Errorf("add evidence %s: %w", dm.ID, err)
	} else if known != "" {
		return nil
	}
	for _, md := range dm.Media {
		st, err := os.Stat(s.mediaPath(md.SHA256))
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("add evidence %s: media %s (%s): %w", dm.ID, md.Name, md.SHA256, ErrMediaMissing)
		} else if err != nil {
			return fmt.Errorf("add evidence %s: %w", dm.ID, err)
		} else if st.Size() != md.Size {
			return fmt.Errorf("add evidence %s: media %s is %d bytes, manifest says %d: %w", dm.ID, md.Name, st.Size(), md.Size, ErrMediaMissing)
		}
	}
	sigText := []byte(base64.StdEncoding.EncodeToString(sig) + "\n")
	e := evidenceEntry{ID: dm.ID, Media: dm.Media, Manifest: body, Signature: sig, Added: s.now().UTC()}
	need := int64(len(body)+len(sigText)) + 2*int64(len(body)+len(sig)) + 4096
	if err := s.ensureSpace(ctx, need); err != nil {
		return fmt.Errorf("add evidence %s: %w", dm.ID, err)
	}
	evDir := s.path("evidence")
	if err := s.writeFileSync(evDir, string(dm.ID)+".json", body); err != nil {
		return fmt.Errorf("add evidence %s: %w", dm.ID, err)
	}
	if err := s.writeFileSync(evDir, string(dm.ID)+".sig", sigText); err != nil {
		return fmt.Errorf("add evidence %s: %w", dm.ID, err)
	}
	s.mu.Lock()
	s.fileBytes += int64(len(body) + len(sigText))
	s.mu.Unlock()
	err = s.db.Update(func(tx *bolt.Tx) error {
		if st, err := getSeen(tx, KindEvidence, string(dm.ID)); err != nil || st.State != "" {
			return err
		}
		return enqueueEvidence(tx, &e, s.now())
	})
	if err != nil {
		return fmt.Errorf("add evidence %s: %w", dm.ID, s.fullErr(err))
	}
	// The media is referenced now; it no longer needs the protection of a
	// recent put.
	s.mu.Lock()
	for _, md := range dm.Media {
		delete(s.recentPuts, md.SHA256)
	}
	s.mu.Unlock()
	s.wake()
	return nil
}

// enqueueEvidence appends e to the outbox, marks it queued and takes a
// reference on each of its media items.
func enqueueEvidence(tx *bolt.Tx, e *evidenceEntry, now time.Time) error {
	if err := bumpTotals(tx, func(t *Totals) { t.EvidenceQueued++ }); err != nil {
		return err
	}
	b := tx.Bucket(bktEvidence)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	if err := putJSON(b, itob(seq), e); err != nil {
		return err
	}
	if err := putJSON(tx.Bucket(bktSeen), seenKey(KindEvidence, string(e.ID)), seenEntry{State: stateQueued, Seq: seq, At: now.UTC()}); err != nil {
		return err
	}
	return addMediaRefs(tx, e.Media, +1, now)
}

func addMediaRefs(tx *bolt.Tx, media []plume.MediaRef, delta int, now time.Time) error {
	mb := tx.Bucket(bktMedia)
	done := map[string]bool{}
	for _, md := range media {
		if done[md.SHA256] {
			continue
		}
		done[md.SHA256] = true
		var me mediaEntry
		if _, err := getJSON(mb, []byte(md.SHA256), &me); err != nil {
			return err
		}
		me.Size = md.Size
		me.Refs += delta
		if me.Refs <= 0 {
			me.Refs = 0
			me.Released = now.UTC()
		} else {
			me.Released = time.Time{}
		}
		if err := putJSON(mb, []byte(md.SHA256), me); err != nil {
			return err
		}
	}
	return nil
}

// AddRecord queues a compact record. A record ID already queued, delivered,
// compacted or dead-lettered is a no-op. It returns an error wrapping
// ErrFull when even compaction cannot make room.
func (s *Spool) AddRecord(ctx context.Context, rec plume.Record) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("add record: %w", err)
	}
	if err := rec.Validate(); err != nil {
		return fmt.Errorf("add record: %w", err)
	}
	if known, err := s.seenStateHealed(ctx, KindRecord, rec.ID); err != nil {
		return fmt.Errorf("add record %s: %w", rec.ID, err)
	} else if known != "" {
		return nil
	}
	payload, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("add record %s: %w", rec.ID, err)
	}
	if err := s.ensureRecordSpace(ctx, 4096+int64(len(payload))); err != nil {
		return fmt.Errorf("add record %s: %w", rec.ID, err)
	}
	// The segment first, synced: from here on a rebuild finds the record
	// even if spool.db is lost.
	seg, added, err := s.segs.append(payload)
	if err != nil {
		return fmt.Errorf("add record %s: %w", rec.ID, s.fullErr(err))
	}
	s.mu.Lock()
	s.fileBytes += added
	s.mu.Unlock()
	err = s.db.Update(func(tx *bolt.Tx) error {
		if st, err := getSeen(tx, KindRecord, rec.ID); err != nil || st.State != "" {
			return err
		}
		return enqueueRecord(tx, &recordEntry{Record: rec, Seg: seg}, s.now())
	})
	if err != nil {
		return fmt.Errorf("add record %s: %w", rec.ID, s.fullErr(err))
	}
	s.wake()
	return nil
}

// recordEntry is a queued record and the segment that holds its copy (0
// for records queued before segments existed, until Open copies them).
type recordEntry struct {
	plume.Record
	Seg uint64 `json:"seg,omitempty"`
}

func enqueueRecord(tx *bolt.Tx, e *recordEntry, now time.Time) error {
	if err := bumpTotals(tx, func(t *Totals) { t.RecordsQueued++ }); err != nil {
		return err
	}
	b := tx.Bucket(bktRecords)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	if err := putJSON(b, itob(seq), e); err != nil {
		return err
	}
	return putJSON(tx.Bucket(bktSeen), seenKey(KindRecord, e.ID), seenEntry{State: stateQueued, Seq: seq, At: now.UTC()})
}

func getSeen(tx *bolt.Tx, k Kind, id string) (seenEntry, error) {
	var st seenEntry
	_, err := getJSON(tx.Bucket(bktSeen), seenKey(k, id), &st)
	return st, err
}

func (s *Spool) seenState(k Kind, id string) (string, error) {
	var state string
	err := s.db.View(func(tx *bolt.Tx) error {
		st, err := getSeen(tx, k, id)
		state = st.State
		return err
	})
	return state, err
}

// seenStateHealed is seenState, healing a corrupt entry first.
func (s *Spool) seenStateHealed(ctx context.Context, k Kind, id string) (string, error) {
	state, err := s.seenState(k, id)
	if errors.Is(err, ErrCorruptValue) {
		if _, herr := s.heal(ctx); herr != nil {
			return "", fmt.Errorf("%w (heal: %w)", err, herr)
		}
		state, err = s.seenState(k, id)
	}
	return state, err
}

// PendingEvidence returns up to max queued evidence items, oldest first.
// An entry that fails its checksum is replaced from evidence/ first.
func (s *Spool) PendingEvidence(ctx context.Context, max int) ([]Evidence, error) {
	out, err := s.pendingEvidence(ctx, max)
	if errors.Is(err, ErrCorruptValue) {
		if _, herr := s.heal(ctx); herr != nil {
			return nil, fmt.Errorf("%w (heal: %w)", err, herr)
		}
		out, err = s.pendingEvidence(ctx, max)
	}
	return out, err
}

func (s *Spool) pendingEvidence(ctx context.Context, max int) ([]Evidence, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("pending evidence: %w", err)
	}
	var out []Evidence
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktEvidence).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			var e evidenceEntry
			if err := decodeValue(k, v, &e); err != nil {
				return fmt.Errorf("evidence %d: %w", btoi(k), err)
			}
			out = append(out, Evidence{Seq: btoi(k), ID: e.ID, Media: e.Media, Manifest: e.Manifest, Signature: e.Signature, Added: e.Added})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pending evidence: %w", err)
	}
	return out, nil
}

// PendingRecords returns up to max queued records, oldest first. The spool
// will not compact the records returned until they are settled with
// MarkRecordsDelivered or DeadLetter, or the next call to PendingRecords.
// An entry that fails its checksum is replaced from records/ first.
func (s *Spool) PendingRecords(ctx context.Context, max int) ([]RecordItem, error) {
	out, err := s.pendingRecords(ctx, max)
	if errors.Is(err, ErrCorruptValue) {
		if _, herr := s.heal(ctx); herr != nil {
			return nil, fmt.Errorf("%w (heal: %w)", err, herr)
		}
		out, err = s.pendingRecords(ctx, max)
	}
	return out, err
}

func (s *Spool) pendingRecords(ctx context.Context, max int) ([]RecordItem, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("pending records: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []RecordItem
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktRecords).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			var r recordEntry
			if err := decodeValue(k, v, &r); err != nil {
				return fmt.Errorf("record %d: %w", btoi(k), err)
			}
			out = append(out, RecordItem{Seq: btoi(k), Record: r.Record})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pending records: %w", err)
	}
	clear(s.leased)
	for _, it := range out {
		s.leased[it.Seq] = true
	}
	return out, nil
}

// MarkEvidenceDelivered removes an acknowledged evidence item from the
// outbox. Its media and manifest files stay for Options.MediaGrace. Marking
// an item that is not queued is a no-op.
func (s *Spool) MarkEvidenceDelivered(ctx context.Context, id plume.EvidenceID) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("mark delivered: %w", err)
	}
	now := s.now()
	var done bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		st, err := getSeen(tx, KindEvidence, string(id))
		if err != nil || st.State != stateQueued {
			return err
		}
		b := tx.Bucket(bktEvidence)
		var e evidenceEntry
		if ok, err := getJSON(b, itob(st.Seq), &e); err != nil || !ok {
			return err
		}
		if err := b.Delete(itob(st.Seq)); err != nil {
			return err
		}
		if err := addMediaRefs(tx, e.Media, -1, now); err != nil {
			return err
		}
		done = true
		if err := bumpTotals(tx, func(t *Totals) { t.EvidenceDelivered++ }); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bktSeen), seenKey(KindEvidence, string(id)), seenEntry{State: stateDelivered, At: now.UTC()})
	})
	if err != nil {
		return fmt.Errorf("mark delivered %s: %w", id, err)
	}
	if !done {
		return nil
	}
	s.evidenceDelivered.Add(1)
	s.mu.Lock()
	delete(s.missing, id)
	s.mu.Unlock()
	// The marker lets a rebuild skip delivered items. Losing it only costs
	// a harmless re-upload, so it is written after the commit.
	if err := s.writeFileSync(s.path("evidence"), string(id)+".delivered", nil); err != nil {
		s.log.Warn("write delivered marker", "id", id, "err", err)
	}
	s.maybeGC(ctx)
	return nil
}

// MarkRecordsDelivered removes acknowledged records from the outbox. Items
// are matched by sequence and ID, so an entry that changed meanwhile is
// left alone.
func (s *Spool) MarkRecordsDelivered(ctx context.Context, items []RecordItem) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("mark records delivered: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	settled := map[uint64][]string{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		clear(settled)
		b, seen := tx.Bucket(bktRecords), tx.Bucket(bktSeen)
		for _, it := range items {
			var r recordEntry
			if ok, err := getJSON(b, itob(it.Seq), &r); err != nil {
				return err
			} else if !ok || r.ID != it.Record.ID {
				continue
			}
			if err := b.Delete(itob(it.Seq)); err != nil {
				return err
			}
			if err := putJSON(seen, seenKey(KindRecord, r.ID), seenEntry{State: stateDelivered, At: now.UTC()}); err != nil {
				return err
			}
			settled[r.Seg] = append(settled[r.Seg], r.ID)
			n++
		}
		return bumpTotals(tx, func(t *Totals) { t.RecordsDelivered += int64(n) })
	})
	if err != nil {
		return fmt.Errorf("mark records delivered: %w", err)
	}
	for _, it := range items {
		delete(s.leased, it.Seq)
	}
	s.recordsDelivered.Add(int64(n))
	s.settleSegments(settled)
	return nil
}

// DeadLetter moves a queued item that central refused for good to the dead
// letters, with the reason. Its media stays. It returns an error wrapping
// ErrNotFound when no such item is queued.
func (s *Spool) DeadLetter(ctx context.Context, kind Kind, id, reason string) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC()
	err := s.db.Update(func(tx *bolt.Tx) error {
		st, err := getSeen(tx, kind, id)
		if err != nil {
			return err
		}
		if st.State != stateQueued {
			return fmt.Errorf("%s %s: %w", kind, id, ErrNotFound)
		}
		d := deadEntry{DeadLetter: DeadLetter{Kind: kind, ID: id, Reason: reason, At: now}}
		var ob *bolt.Bucket
		switch kind {
		case KindEvidence:
			ob = tx.Bucket(bktEvidence)
			d.Evidence = new(evidenceEntry)
			_, err = getJSON(ob, itob(st.Seq), d.Evidence)
		case KindRecord:
			ob = tx.Bucket(bktRecords)
			var r recordEntry
			_, err = getJSON(ob, itob(st.Seq), &r)
			d.Record, d.Seg = &r.Record, r.Seg
		default:
			return fmt.Errorf("unknown kind %q", kind)
		}
		if err != nil {
			return err
		}
		if err := ob.Delete(itob(st.Seq)); err != nil {
			return err
		}
		db := tx.Bucket(bktDead)
		seq, err := db.NextSequence()
		if err != nil {
			return err
		}
		if err := putJSON(db, itob(seq), d); err != nil {
			return err
		}
		delete(s.leased, st.Seq)
		if err := bumpTotals(tx, func(t *Totals) { t.DeadLettered++ }); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bktSeen), seenKey(kind, id), seenEntry{State: stateDead, At: now})
	})
	if err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	s.deadLettered.Add(1)
	s.log.Warn("dead-lettered", "kind", kind, "id", id, "reason", reason)
	return nil
}

// DeadLetters lists the dead letters, oldest first.
func (s *Spool) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	var out []DeadLetter
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktDead).ForEach(func(k, v []byte) error {
			var d deadEntry
			if err := decodeValue(k, v, &d); err != nil {
				return err
			}
			out = append(out, d.DeadLetter)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	return out, nil
}

// Requeue puts a dead letter back at the end of its outbox, for an
// operator who fixed the cause. It returns an error wrapping ErrNotFound
// when there is no such dead letter.
func (s *Spool) Requeue(ctx context.Context, kind Kind, id string) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("requeue: %w", err)
	}
	now := s.now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		db := tx.Bucket(bktDead)
		c := db.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var d deadEntry
			if err := decodeValue(k, v, &d); err != nil {
				return err
			}
			if d.Kind != kind || d.ID != id {
				continue
			}
			if err := db.Delete(k); err != nil {
				return err
			}
			switch {
			case d.Evidence != nil:
				// The dead letter kept its media references; move them over.
				if err := addMediaRefs(tx, d.Evidence.Media, -1, now); err != nil {
					return err
				}
				return enqueueEvidence(tx, d.Evidence, now)
			case d.Record != nil:
				return enqueueRecord(tx, &recordEntry{Record: *d.Record, Seg: d.Seg}, now)
			}
			return fmt.Errorf("dead letter %s %s has no payload", kind, id)
		}
		return fmt.Errorf("%s %s: %w", kind, id, ErrNotFound)
	})
	if err != nil {
		return fmt.Errorf("requeue: %w", err)
	}
	s.log.Info("requeued dead letter", "kind", kind, "id", id)
	s.wake()
	return nil
}

// settleSegments notes records that no longer need their segment copy and
// frees segments left with none. Call with s.mu held. A failure only leaves
// a segment behind, which costs a harmless re-upload after a rebuild.
func (s *Spool) settleSegments(ids map[uint64][]string) {
	if len(ids) == 0 {
		return
	}
	freed, err := s.segs.settle(ids)
	s.fileBytes -= freed
	if err != nil {
		s.log.Warn("settle record segments", "err", err)
	}
}
