package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/plume-emissions/plume"
	bolt "go.etcd.io/bbolt"
)

// pressureMargin is the free space wanted before writing again after ENOSPC.
const pressureMargin = 1 << 20

// errNoRoom stops a compaction that could not write its summary.
var errNoRoom = errors.New("no room for the summary")

// compactChunk bounds the pass records folded into one summary.
const compactChunk = 5000

// usage returns the bytes the spool uses: its files plus the pages of
// spool.db in use (free pages are reused by later writes, so they count as
// room for records and manifests). Call with s.mu held.
func (s *Spool) usage() int64 {
	used := s.fileBytes
	_ = s.db.View(func(tx *bolt.Tx) error {
		st := s.db.Stats()
		used += tx.Size() - int64(st.FreePageN+st.PendingPageN)*int64(s.db.Info().PageSize)
		return nil
	})
	return used
}

// room returns how many more bytes fit, or -1 for no known limit. Call with
// s.mu held.
func (s *Spool) room() int64 {
	room := int64(-1)
	if s.opts.MaxBytes > 0 {
		room = max(s.opts.MaxBytes-s.usage(), 0)
	}
	if s.opts.MinFreeBytes > 0 {
		if free, ok := freeBytes(s.dir); ok {
			r := max(free-s.opts.MinFreeBytes, 0)
			if room < 0 || r < room {
				room = r
			}
		}
	}
	return room
}

// SetCentralReachable tells the spool whether central answers. The uplink
// calls it; until it says otherwise central counts as reachable. Pass
// records are folded into summaries only while central is unreachable.
func (s *Spool) SetCentralReachable(ok bool) {
	if s.unreachable.Swap(!ok) == ok {
		s.log.Info("central reachability changed", "reachable", ok)
	}
}

// foldCause is the Cause of every summary the spool writes.
const foldCause = "central unreachable and the edge records budget exhausted"

// ensureRecordSpace makes room for need more bytes of records: within
// Options.RecordsMaxBytes first, then within the whole spool.
func (s *Spool) ensureRecordSpace(ctx context.Context, need int64) error {
	if s.opts.RecordsMaxBytes > 0 {
		s.mu.Lock()
		for s.segs.usage()+need > s.opts.RecordsMaxBytes {
			before := s.segs.usage()
			n, err := s.foldLocked(ctx)
			if err != nil {
				s.mu.Unlock()
				return err
			}
			if n == 0 || s.segs.usage() >= before {
				s.fullRefusals.Add(1)
				s.mu.Unlock()
				s.log.Warn("records budget full", "need", need, "used", s.segs.usage(), "records_max_bytes", s.opts.RecordsMaxBytes, "central_unreachable", s.unreachable.Load())
				return fmt.Errorf("%w: records budget of %d bytes spent (%d used)", ErrFull, s.opts.RecordsMaxBytes, s.segs.usage())
			}
		}
		s.mu.Unlock()
	}
	return s.ensureSpace(ctx, need)
}

// ensureSpace makes room for need more bytes, in order: remove delivered
// files past their grace, remove delivered files still within their grace,
// and only while central is unreachable fold plain pass records into
// summaries. Unacknowledged evidence is never touched.
func (s *Spool) ensureSpace(ctx context.Context, need int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fits := func() bool {
		if s.pressure {
			// ENOSPC was seen: trust the file system's free space, with
			// a margin, or nothing until something was removed.
			if free, ok := freeBytes(s.dir); !ok || free < need+pressureMargin {
				return false
			}
			s.pressure = false
		}
		r := s.room()
		return r < 0 || r >= need
	}
	if fits() {
		return nil
	}
	before := s.fileBytes
	if err := s.gcLocked(ctx, false); err != nil {
		return err
	}
	if !fits() {
		if err := s.gcLocked(ctx, true); err != nil {
			return err
		}
	}
	for !fits() {
		used := s.fileBytes
		n, err := s.foldLocked(ctx)
		if err != nil {
			return err
		}
		if n == 0 || s.fileBytes >= used {
			break
		}
	}
	if s.pressure && s.fileBytes < before {
		s.pressure = false
	}
	if !fits() {
		s.fullRefusals.Add(1)
		s.log.Warn("spool full", "need", need, "room", s.room(), "max_bytes", s.opts.MaxBytes, "min_free_bytes", s.opts.MinFreeBytes, "central_unreachable", s.unreachable.Load())
		return fmt.Errorf("%w: need %d bytes, %d available", ErrFull, need, s.room())
	}
	return nil
}

// foldLocked folds pass records into a summary and moves the records that
// stay into a fresh segment, so the old segments can go; it does nothing
// while central is reachable. Call with s.mu held.
func (s *Spool) foldLocked(ctx context.Context) (int, error) {
	if !s.unreachable.Load() {
		return 0, nil
	}
	n, err := s.compactLocked(ctx)
	if err != nil || n == 0 {
		return n, err
	}
	if err := s.relocateLocked(ctx); err != nil {
		s.log.Warn("move live records to a fresh segment", "err", err)
	}
	return n, nil
}

// relocateLocked copies the live records (queued and dead-lettered) into a
// new segment and settles their old copies, which frees every older
// segment. Call with s.mu held.
func (s *Spool) relocateLocked(ctx context.Context) error {
	type move struct {
		dead    bool
		key     []byte
		id      string
		old     uint64
		payload []byte
		seg     uint64
	}
	var moves []move
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bktRecords).ForEach(func(k, v []byte) error {
			var r recordEntry
			if err := decodeValue(k, v, &r); err != nil {
				return err
			}
			p, err := json.Marshal(r.Record)
			moves = append(moves, move{key: slices.Clone(k), id: r.ID, old: r.Seg, payload: p})
			return err
		}); err != nil {
			return err
		}
		return tx.Bucket(bktDead).ForEach(func(k, v []byte) error {
			var d deadEntry
			if err := decodeValue(k, v, &d); err != nil || d.Record == nil {
				return err
			}
			p, err := json.Marshal(d.Record)
			moves = append(moves, move{dead: true, key: slices.Clone(k), id: d.Record.ID, old: d.Seg, payload: p})
			return err
		})
	})
	if err != nil {
		return err
	}
	s.segs.rotate()
	done := 0
	for i := range moves {
		if err = ctx.Err(); err != nil {
			break
		}
		seg, added, aerr := s.segs.append(moves[i].payload)
		if aerr != nil {
			err = s.fullErr(aerr)
			break
		}
		s.fileBytes += added
		moves[i].seg = seg
		done++
	}
	moves = moves[:done]
	settled := map[uint64][]string{}
	uerr := s.db.Update(func(tx *bolt.Tx) error {
		clear(settled)
		for _, m := range moves {
			if m.dead {
				var d deadEntry
				if ok, err := getJSON(tx.Bucket(bktDead), m.key, &d); err != nil || !ok || d.Record == nil || d.Record.ID != m.id {
					settled[m.seg] = append(settled[m.seg], m.id)
					continue
				}
				d.Seg = m.seg
				if err := putJSON(tx.Bucket(bktDead), m.key, d); err != nil {
					return err
				}
			} else {
				var r recordEntry
				if ok, err := getJSON(tx.Bucket(bktRecords), m.key, &r); err != nil || !ok || r.ID != m.id {
					settled[m.seg] = append(settled[m.seg], m.id) // gone meanwhile: the new copy is not needed
					continue
				}
				r.Seg = m.seg
				if err := putJSON(tx.Bucket(bktRecords), m.key, r); err != nil {
					return err
				}
			}
			settled[m.old] = append(settled[m.old], m.id)
		}
		return nil
	})
	if uerr != nil {
		// The entries still name their old copies; the new ones are spare.
		clear(settled)
		for _, m := range moves {
			settled[m.seg] = append(settled[m.seg], m.id)
		}
		s.settleSegments(settled)
		return errors.Join(err, uerr)
	}
	s.settleSegments(settled)
	return err
}

// GC removes media and manifest files of evidence central acknowledged more
// than Options.MediaGrace ago, and forgets delivered IDs older than
// Options.SeenRetention. The spool also runs it by itself now and then.
func (s *Spool) GC(ctx context.Context) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gcLocked(ctx, false)
}

func (s *Spool) maybeGC(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.now().Sub(s.lastGC) < time.Minute {
		return
	}
	if err := s.gcLocked(ctx, false); err != nil {
		s.log.Warn("gc", "err", err)
	}
}

// gcLocked does the work of GC; with ignoreGrace it also removes delivered
// files still within their grace (disk pressure). Call with s.mu held.
func (s *Spool) gcLocked(ctx context.Context, ignoreGrace bool) error {
	now := s.now()
	s.lastGC = now
	expired := func(t time.Time) bool { return ignoreGrace || now.Sub(t) >= s.opts.MediaGrace }
	for sha, t := range s.recentPuts {
		if now.Sub(t) > time.Hour {
			delete(s.recentPuts, sha)
		}
	}
	var files []string
	err := s.db.Update(func(tx *bolt.Tx) error {
		var dead [][]byte
		mb := tx.Bucket(bktMedia)
		c := mb.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var me mediaEntry
			if err := decodeValue(k, v, &me); err != nil {
				return err
			}
			if me.Refs > 0 || me.Released.IsZero() || !expired(me.Released) {
				continue
			}
			if _, recent := s.recentPuts[string(k)]; recent {
				continue
			}
			files = append(files, s.mediaPath(string(k)))
			dead = append(dead, k)
		}
		// Delete after the walk: deleting under a cursor can skip keys.
		for _, k := range dead {
			if err := mb.Delete(k); err != nil {
				return err
			}
		}
		dead = dead[:0]
		sb := tx.Bucket(bktSeen)
		cleaned := map[string]seenEntry{}
		c = sb.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var st seenEntry
			if err := decodeValue(k, v, &st); err != nil {
				return err
			}
			if st.State != stateDelivered && st.State != stateCompacted {
				continue
			}
			isEvidence := len(k) > 2 && string(k[:2]) == "e/"
			if isEvidence && !st.Cleaned && expired(st.At) {
				id := string(k[2:])
				files = append(files, s.path("evidence", id+".json"), s.path("evidence", id+".sig"), s.path("evidence", id+".delivered"))
				st.Cleaned = true
				cleaned[string(k)] = st
				continue
			}
			if (!isEvidence || st.Cleaned) && now.Sub(st.At) >= s.opts.SeenRetention {
				dead = append(dead, k)
			}
		}
		for _, k := range dead {
			if err := sb.Delete(k); err != nil {
				return err
			}
		}
		for k, st := range cleaned {
			if err := putJSON(sb, []byte(k), st); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	// The entries are gone; now the files. A crash in between leaves
	// unreferenced files, which the next Open quarantines.
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			continue
		}
		if err := os.Remove(f); err != nil {
			s.log.Warn("gc: remove", "path", f, "err", err)
			continue
		}
		s.fileBytes -= st.Size()
		if len(f) > 0 && !isEvidenceFile(f) {
			s.mediaRemoved.Add(1)
		}
	}
	return ctx.Err()
}

func isEvidenceFile(p string) bool {
	for _, suf := range []string{".json", ".sig", ".delivered"} {
		if len(p) > len(suf) && p[len(p)-len(suf):] == suf {
			return true
		}
	}
	return false
}

// compactLocked folds up to compactChunk of the oldest plain pass records
// (outcome pass or invalid; not exceedances, not leased to the uplink) into
// one plume.RecordSummary record placed where the first of them was. It
// returns how many records it folded. Call with s.mu held.
func (s *Spool) compactLocked(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now := s.now().UTC()
	n := 0
	settled := map[uint64][]string{}
	var sumSeg uint64
	var sumID string
	err := s.db.Update(func(tx *bolt.Tx) error {
		n, sumSeg = 0, 0
		clear(settled)
		b, seen := tx.Bucket(bktRecords), tx.Bucket(bktSeen)
		var first []byte
		var folded [][]byte
		var ids []string
		var sum plume.Record
		c := b.Cursor()
		for k, v := c.First(); k != nil && n < compactChunk; k, v = c.Next() {
			if s.leased[btoi(k)] {
				continue
			}
			var r recordEntry
			if err := decodeValue(k, v, &r); err != nil {
				return err
			}
			if r.Kind != plume.RecordPass || r.Pass == nil || r.Pass.Verdict.Outcome == plume.OutcomeExceed {
				continue
			}
			if first == nil {
				first = append([]byte(nil), k...)
				sum = plume.Record{Kind: plume.RecordSummary, ID: "summary-" + r.ID, Station: r.Station,
					Summary: &plume.PassSummary{From: r.Time, To: r.Time, ByOutcome: map[plume.Outcome]int{}, Cause: foldCause}}
			}
			if r.Station != sum.Station {
				continue
			}
			ps := sum.Summary
			ps.Count++
			ps.ByOutcome[r.Pass.Verdict.Outcome]++
			ps.Passes = append(ps.Passes, r.Pass.Fold())
			if r.Time.Before(ps.From) {
				ps.From = r.Time
			}
			if r.Time.After(ps.To) {
				ps.To = r.Time
			}
			folded = append(folded, append([]byte(nil), k...))
			ids = append(ids, r.ID)
			settled[r.Seg] = append(settled[r.Seg], r.ID)
			n++
		}
		if n == 0 {
			return nil
		}
		for i, k := range folded {
			if err := b.Delete(k); err != nil {
				return err
			}
			if err := putJSON(seen, seenKey(KindRecord, ids[i]), seenEntry{State: stateCompacted, At: now}); err != nil {
				return err
			}
		}
		sum.Time = sum.Summary.To
		slices.SortStableFunc(sum.Summary.Passes, func(a, b plume.FoldedPass) int { return a.Time.Compare(b.Time) })
		payload, err := json.Marshal(sum)
		if err != nil {
			return err
		}
		// The summary needs its own segment copy before it replaces the
		// records it folds.
		seg, added, err := s.segs.append(payload)
		if err != nil {
			return fmt.Errorf("%w: %w", errNoRoom, err)
		}
		s.fileBytes += added
		sumSeg, sumID = seg, sum.ID
		if err := putJSON(b, first, recordEntry{Record: sum, Seg: seg}); err != nil {
			return err
		}
		return putJSON(seen, seenKey(KindRecord, sum.ID), seenEntry{State: stateQueued, Seq: btoi(first), At: now})
	})
	if errors.Is(err, errNoRoom) {
		s.log.Warn("no room even for a summary record", "err", err)
		return 0, nil
	}
	if err != nil {
		if sumSeg != 0 {
			// The summary never replaced anything: a rebuild must not
			// queue it beside the records it would have folded.
			s.settleSegments(map[uint64][]string{sumSeg: {sumID}})
		}
		return 0, fmt.Errorf("compact records: %w", err)
	}
	s.settleSegments(settled)
	if n > 0 {
		s.recordsCompacted.Add(int64(n))
		s.log.Warn("compacted pass records into a summary under disk pressure", "records", n)
	}
	return n, nil
}
