package spool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/plume-emissions/plume"
	bolt "go.etcd.io/bbolt"
)

// Every value in spool.db can be derived again from the files: queued and
// delivered evidence from evidence/, queued records from records/, media
// reference counts from the evidence entries, and the seen index from both.
// So a value that fails its checksum is deleted, and the adoption steps
// that rebuild a lost database put back whatever it described. Totals are
// counters only; a corrupt one restarts from zero.

// badValue names a value that failed its checksum, or an outbox entry the
// seen index does not point at (a second copy of an item).
type badValue struct {
	bucket string
	key    []byte
	why    string
}

// findBad lists the values in tx that fail their checksum or decoding, and
// the outbox entries the seen index does not point at. Evidence entries
// written before checksums existed are compared with their manifest file.
func (s *Spool) findBad(tx *bolt.Tx) ([]badValue, error) {
	var bad []badValue
	for _, name := range [][]byte{bktEvidence, bktRecords, bktDead, bktSeen, bktMedia, bktTotals} {
		b := tx.Bucket(name)
		if b == nil {
			continue
		}
		err := b.ForEach(func(k, v []byte) error {
			if v == nil {
				return nil // a nested bucket; the spool makes none
			}
			var dst any
			switch string(name) {
			case string(bktEvidence):
				dst = new(evidenceEntry)
			case string(bktRecords):
				dst = new(recordEntry)
			case string(bktDead):
				dst = new(deadEntry)
			case string(bktSeen):
				dst = new(seenEntry)
			case string(bktMedia):
				dst = new(mediaEntry)
			default:
				dst = new(Totals)
			}
			if err := decodeValue(k, v, dst); err != nil {
				bad = append(bad, badValue{string(name), slices.Clone(k), err.Error()})
				return nil
			}
			var kind Kind
			var id string
			switch e := dst.(type) {
			case *evidenceEntry:
				kind, id = KindEvidence, string(e.ID)
				if v[0] == '{' && !s.matchesFile(e) {
					bad = append(bad, badValue{string(name), slices.Clone(k), "manifest differs from its file"})
					return nil
				}
			case *recordEntry:
				kind, id = KindRecord, e.ID
			default:
				return nil
			}
			var st seenEntry
			if _, err := getJSON(tx.Bucket(bktSeen), seenKey(kind, id), &st); err != nil || st.State != stateQueued || st.Seq != btoi(k) {
				bad = append(bad, badValue{string(name), slices.Clone(k), fmt.Sprintf("%s %s: not the queued copy the seen index names", kind, id)})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return bad, nil
}

// heal deletes the bad values in spool.db, recounts the media references
// and adopts from the files what the deleted values described. It returns
// how many values it deleted.
func (s *Spool) heal(ctx context.Context) (int, error) {
	n, err := s.dropBad()
	if err != nil || n == 0 {
		return n, err
	}
	if err := s.adoptManifests(ctx); err != nil {
		return n, fmt.Errorf("heal: %w", err)
	}
	if err := s.adoptRecords(ctx, false); err != nil {
		return n, fmt.Errorf("heal: %w", err)
	}
	return n, nil
}

// dropBad deletes the bad values and recounts the media references; the
// caller adopts from the files what they described.
func (s *Spool) dropBad() (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, &corruptError{fmt.Errorf("panic writing pages: %v", r)}
		}
	}()
	var bad []badValue
	err = s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if bad, err = s.findBad(tx); err != nil {
			return err
		}
		for _, bv := range bad {
			if err := tx.Bucket([]byte(bv.bucket)).Delete(bv.key); err != nil {
				return err
			}
		}
		if err := sealLegacy(tx); err != nil {
			return err
		}
		if len(bad) == 0 {
			return nil
		}
		return recountMedia(tx)
	})
	if err != nil {
		return 0, fmt.Errorf("heal: %w", err)
	}
	if len(bad) == 0 {
		return 0, nil
	}
	for _, bv := range bad {
		s.log.Error("spool value failed its check; replacing it from the files", "bucket", bv.bucket, "key", fmt.Sprintf("%q", bv.key), "reason", bv.why)
	}
	s.valuesHealed.Add(int64(len(bad)))
	return len(bad), nil
}

// sealLegacy gives values written before checksums existed (bare JSON,
// already checked by findBad) their checksum.
func sealLegacy(tx *bolt.Tx) error {
	for _, name := range [][]byte{bktEvidence, bktRecords, bktDead, bktSeen, bktMedia, bktTotals} {
		b := tx.Bucket(name)
		if b == nil {
			continue
		}
		var keys, bodies [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			if len(v) > 0 && v[0] == '{' {
				keys, bodies = append(keys, slices.Clone(k)), append(bodies, slices.Clone(v))
			}
			return nil
		}); err != nil {
			return err
		}
		for i, k := range keys {
			if err := b.Put(k, sealValue(k, bodies[i])); err != nil {
				return err
			}
		}
	}
	return nil
}

// recountMedia sets every media entry's reference count from the queued
// and dead-lettered evidence that lists it.
func recountMedia(tx *bolt.Tx) error {
	refs := map[string]int64{} // sha → size, for the referenced ones
	count := map[string]int{}
	note := func(e *evidenceEntry) {
		seen := map[string]bool{}
		for _, md := range e.Media {
			if !seen[md.SHA256] {
				seen[md.SHA256] = true
				count[md.SHA256]++
				refs[md.SHA256] = md.Size
			}
		}
	}
	err := tx.Bucket(bktEvidence).ForEach(func(k, v []byte) error {
		var e evidenceEntry
		if err := decodeValue(k, v, &e); err != nil {
			return err
		}
		note(&e)
		return nil
	})
	if err != nil {
		return err
	}
	err = tx.Bucket(bktDead).ForEach(func(k, v []byte) error {
		var d deadEntry
		if err := decodeValue(k, v, &d); err != nil {
			return err
		}
		if d.Evidence != nil {
			note(d.Evidence)
		}
		return nil
	})
	if err != nil {
		return err
	}
	mb := tx.Bucket(bktMedia)
	type upd struct {
		k  []byte
		me mediaEntry
	}
	var fix []upd
	err = mb.ForEach(func(k, v []byte) error {
		var me mediaEntry
		if err := decodeValue(k, v, &me); err != nil {
			return err
		}
		if me.Refs != count[string(k)] {
			me.Refs = count[string(k)]
			fix = append(fix, upd{slices.Clone(k), me})
		}
		delete(refs, string(k))
		return nil
	})
	if err != nil {
		return err
	}
	for sha, size := range refs {
		fix = append(fix, upd{[]byte(sha), mediaEntry{Size: size, Refs: count[sha]}})
	}
	for _, u := range fix {
		if err := putJSON(mb, u.k, u.me); err != nil {
			return err
		}
	}
	return nil
}

// adoptRecords queues every record in records/ that is neither settled
// (listed in its segment's ack file) nor known to the seen index: all of
// them after a rebuild, those whose value was healed, or one appended just
// before a crash. atOpen also counts the live records of each segment,
// removes segments with none, acknowledges frames the database settled or
// holds elsewhere, and copies records queued before segments existed into
// one.
func (s *Spool) adoptRecords(ctx context.Context, atOpen bool) error {
	dir := s.path(segDirName)
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	// Where the database keeps each live record: queued entries name
	// their segment, and so do dead letters.
	home := map[string]uint64{}
	err = s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bktRecords).ForEach(func(k, v []byte) error {
			var r recordEntry
			if decodeValue(k, v, &r) == nil {
				home[r.ID] = r.Seg
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bktDead).ForEach(func(k, v []byte) error {
			var d deadEntry
			if decodeValue(k, v, &d) == nil && d.Record != nil {
				home[d.Record.ID] = d.Seg
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("adopt records: %w", err)
	}
	type found struct {
		rec plume.Record
		seg uint64
	}
	var todo []found
	taken := map[string]bool{}
	live := map[uint64]int{}
	settle := map[uint64][]string{}
	badFrames := 0
	for _, seg := range segs {
		if err := ctx.Err(); err != nil {
			return err
		}
		acks, bad1, err := readFrames(segPath(dir, seg, "ack"))
		if err != nil {
			return fmt.Errorf("adopt records: %w", err)
		}
		frames, bad2, err := readFrames(segPath(dir, seg, "log"))
		if err != nil {
			return fmt.Errorf("adopt records: %w", err)
		}
		badFrames += bad1 + bad2
		acked := map[string]bool{}
		for _, a := range acks {
			acked[string(a)] = true
		}
		for _, p := range frames {
			var rec plume.Record
			if err := json.Unmarshal(p, &rec); err != nil || rec.Validate() != nil {
				badFrames++
				continue
			}
			if acked[rec.ID] {
				continue
			}
			if h, ok := home[rec.ID]; ok {
				if h == seg && !taken[rec.ID] {
					taken[rec.ID] = true
					live[seg]++
				} else {
					settle[seg] = append(settle[seg], rec.ID) // a second copy
				}
				continue
			}
			state, err := s.seenState(KindRecord, rec.ID)
			if err != nil && !errors.Is(err, ErrCorruptValue) {
				return fmt.Errorf("adopt records: %w", err)
			}
			// A queued or dead state without its entry (home) is stale: the
			// entry was lost with a damaged page.
			switch {
			case state == stateDelivered || state == stateCompacted:
				settle[seg] = append(settle[seg], rec.ID)
			case taken[rec.ID]:
				settle[seg] = append(settle[seg], rec.ID)
			default:
				taken[rec.ID] = true
				live[seg]++
				todo = append(todo, found{rec, seg})
			}
		}
	}
	if badFrames > 0 {
		s.log.Error("record segments hold damaged frames; skipped them", "frames", badFrames)
	}
	if len(todo) > 0 {
		err = s.db.Update(func(tx *bolt.Tx) error {
			for i := range todo {
				f := &todo[i]
				if st, err := getSeen(tx, KindRecord, f.rec.ID); err == nil && st.State != "" && liveIn(tx, KindRecord, f.rec.ID, st) {
					continue
				}
				if err := enqueueRecord(tx, &recordEntry{Record: f.rec, Seg: f.seg}, s.now()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("adopt records: %w", err)
		}
		s.recordsRecovered.Add(int64(len(todo)))
		s.log.Warn("queued records found in records/ that the database did not hold", "records", len(todo), "rebuilt", s.rebuilt)
	}
	if !atOpen {
		return nil
	}
	s.segs.mu.Lock()
	for _, seg := range segs {
		s.segs.live[seg] = live[seg] + len(settle[seg])
	}
	s.segs.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range segs {
		if live[seg] == 0 && len(settle[seg]) == 0 {
			s.segs.mu.Lock()
			s.segs.live[seg] = 0
			s.fileBytes -= s.segs.removeSegment(seg)
			s.segs.mu.Unlock()
		}
	}
	s.settleSegments(settle)
	return s.migrateRecords(ctx)
}

// migrateRecords copies records queued before segments existed (Seg 0)
// into a segment. Call with s.mu held.
func (s *Spool) migrateRecords(ctx context.Context) error {
	var old []uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktRecords).ForEach(func(k, v []byte) error {
			var r recordEntry
			if decodeValue(k, v, &r) == nil && r.Seg == 0 {
				old = append(old, btoi(k))
			}
			return nil
		})
	})
	if err != nil || len(old) == 0 {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktRecords)
		for _, seq := range old {
			if err := ctx.Err(); err != nil {
				return err
			}
			var r recordEntry
			if ok, err := getJSON(b, itob(seq), &r); err != nil || !ok {
				return err
			}
			payload, err := json.Marshal(r.Record)
			if err != nil {
				return err
			}
			seg, added, err := s.segs.append(payload)
			if err != nil {
				return err
			}
			s.fileBytes += added
			r.Seg = seg
			if err := putJSON(b, itob(seq), r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("copy queued records into a segment: %w", err)
	}
	s.log.Info("copied records queued before segments existed into a segment", "records", len(old))
	return nil
}

// matchesFile reports whether e's manifest is the one in evidence/, or
// there is no readable file to compare with.
func (s *Spool) matchesFile(e *evidenceEntry) bool {
	body, err := os.ReadFile(s.path("evidence", string(e.ID)+".json"))
	if err != nil {
		return true
	}
	if m, err := plume.DecodeManifest(body); err != nil || m.ID != e.ID {
		return true
	}
	return bytes.Equal(body, e.Manifest)
}

// liveIn reports whether the item st describes is really there: a queued
// item's outbox entry, or a dead letter, or a settled state (delivered,
// compacted), which needs no entry.
func liveIn(tx *bolt.Tx, k Kind, id string, st seenEntry) bool {
	switch st.State {
	case stateQueued:
		b := tx.Bucket(bktRecords)
		if k == KindEvidence {
			b = tx.Bucket(bktEvidence)
		}
		raw := b.Get(itob(st.Seq))
		if raw == nil {
			return false
		}
		if k == KindEvidence {
			var e evidenceEntry
			return decodeValue(itob(st.Seq), raw, &e) == nil && string(e.ID) == id
		}
		var r recordEntry
		return decodeValue(itob(st.Seq), raw, &r) == nil && r.ID == id
	case stateDead:
		found := false
		_ = tx.Bucket(bktDead).ForEach(func(k2, v []byte) error {
			var d deadEntry
			if !found && decodeValue(k2, v, &d) == nil && d.Kind == k && d.ID == id {
				found = true
			}
			return nil
		})
		return found
	}
	return true
}

// knownState is the seen state of an item, or "" when the state says
// queued or dead but the entry is gone (lost with a damaged page).
func (s *Spool) knownState(k Kind, id string) (string, error) {
	var state string
	err := s.db.View(func(tx *bolt.Tx) error {
		st, err := getSeen(tx, k, id)
		if err != nil {
			return err
		}
		if st.State != "" && liveIn(tx, k, id, st) {
			state = st.State
		}
		return nil
	})
	return state, err
}
