package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Case summaries are kept in the indexes as one line of fields separated
// by \x1f, so that list filters never decode whole cases:
// station, status, kind, plate, grade, pollutants (comma-separated),
// capture time (Unix nanoseconds).
func encodeSummary(s central.CaseSummary) []byte {
	pol := make([]string, len(s.Pollutants))
	for i, p := range s.Pollutants {
		pol[i] = string(p)
	}
	return []byte(strings.Join([]string{
		string(s.Station), string(s.Status), string(s.Kind), s.Plate, strconv.Itoa(s.Grade),
		strings.Join(pol, ","), strconv.FormatInt(s.CapturedAt.UnixNano(), 10),
	}, "\x1f"))
}

func decodeSummary(id []byte, b []byte) (central.CaseSummary, error) {
	f := strings.Split(string(b), "\x1f")
	if len(f) != 7 {
		return central.CaseSummary{}, fmt.Errorf("case %s: bad index entry", id)
	}
	grade, _ := strconv.Atoi(f[4])
	ns, _ := strconv.ParseInt(f[6], 10, 64)
	s := central.CaseSummary{
		ID: plume.CaseID(id), Station: plume.StationID(f[0]), Status: central.CaseStatus(f[1]), Kind: central.CaseKind(f[2]),
		Plate: f[3], Grade: grade, CapturedAt: time.Unix(0, ns).UTC(),
	}
	if f[5] != "" {
		for _, p := range strings.Split(f[5], ",") {
			s.Pollutants = append(s.Pollutants, plume.Pollutant(p))
		}
	}
	return s, nil
}

func indexKey(field string, id plume.CaseID) []byte { return []byte(field + "\x00" + string(id)) }

// indexCase replaces before's index entries (nil for a new case) with
// after's.
func indexCase(tx *bolt.Tx, before, after *central.Case) error {
	if before != nil {
		for _, d := range []struct {
			b   []byte
			key []byte
		}{
			{bucketCaseStatus, indexKey(string(before.Status), before.ID)},
			{bucketCasePlate, indexKey(before.Plate, before.ID)},
			{bucketCaseStation, indexKey(string(before.Station), before.ID)},
		} {
			if err := tx.Bucket(d.b).Delete(d.key); err != nil {
				return err
			}
		}
	}
	sum := encodeSummary(after.Summarize())
	for _, d := range []struct {
		b   []byte
		key []byte
	}{
		{bucketCaseSum, []byte(after.ID)},
		{bucketCaseStatus, indexKey(string(after.Status), after.ID)},
		{bucketCasePlate, indexKey(after.Plate, after.ID)},
		{bucketCaseStation, indexKey(string(after.Station), after.ID)},
	} {
		if err := tx.Bucket(d.b).Put(d.key, sum); err != nil {
			return err
		}
	}
	return nil
}

func migrate1to2(tx *bolt.Tx) error {
	days := newDayCache(tx)
	err := tx.Bucket(bucketCases).ForEach(func(k, v []byte) error {
		var c central.Case
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("decode case %s: %w", k, err)
		}
		days.get(central.DayOf(c.CapturedAt), c.Station).AddTransition(nil, &c)
		return indexCase(tx, nil, &c)
	})
	if err != nil {
		return err
	}
	return days.flush()
}

// dayCache batches day-counter updates within one transaction.
type dayCache struct {
	tx   *bolt.Tx
	days map[string]*central.DayStats
}

func newDayCache(tx *bolt.Tx) *dayCache {
	return &dayCache{tx: tx, days: map[string]*central.DayStats{}}
}

func (c *dayCache) get(day string, station plume.StationID) *central.DayStats {
	k := day + "\x00" + string(station)
	if d, ok := c.days[k]; ok {
		return d
	}
	d := &central.DayStats{Day: day, Station: station}
	getJSON(c.tx.Bucket(bucketDaily), []byte(k), d) // a damaged counter restarts at zero
	d.Day, d.Station = day, station
	c.days[k] = d
	return d
}

func (c *dayCache) flush() error {
	for k, d := range c.days {
		if err := putJSON(c.tx.Bucket(bucketDaily), []byte(k), d); err != nil {
			return err
		}
	}
	return nil
}

func vehicleKey(e *central.VehicleEntry) []byte {
	k := append([]byte(e.Plate+"\x00"), itob(uint64(e.Time.UnixNano()))...)
	return append(k, []byte("\x00"+string(e.PassID))...)
}

// putVehicle stores a vehicle-file entry, keeping a case link that an
// earlier write of the same pass made.
func putVehicle(tx *bolt.Tx, e *central.VehicleEntry) error {
	b := tx.Bucket(bucketVehicles)
	k := vehicleKey(e)
	var old central.VehicleEntry
	if ok, _ := getJSON(b, k, &old); ok && e.CaseID == "" {
		e.CaseID = old.CaseID
	}
	return putJSON(b, k, e)
}

// scanIndex walks the keys of b that start with prefix, newest (largest)
// first or oldest first, starting strictly after the key after (nil: from
// the end), while fn returns true.
func scanIndex(b *bolt.Bucket, prefix, after []byte, desc bool, fn func(k, v []byte) (bool, error)) error {
	c := b.Cursor()
	var k, v []byte
	switch {
	case desc && after == nil:
		if len(prefix) == 0 {
			k, v = c.Last()
		} else if k, _ = c.Seek(append(bytes.Clone(prefix), 0xff)); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
	case desc:
		if k, v = c.Seek(after); k == nil {
			k, v = c.Last()
		}
		for k != nil && bytes.Compare(k, after) >= 0 {
			k, v = c.Prev()
		}
	case after == nil:
		if len(prefix) == 0 {
			k, v = c.First()
		} else {
			k, v = c.Seek(prefix)
		}
	default:
		if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
			k, v = c.Next()
		}
	}
	for k != nil && bytes.HasPrefix(k, prefix) {
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
		if desc {
			k, v = c.Prev()
		} else {
			k, v = c.Next()
		}
	}
	return nil
}

// plan picks the index a case query walks: the most selective one the
// filter names.
func plan(f *central.CaseFilter) (bucket []byte, prefix []byte) {
	switch {
	case f.Plate != "":
		return bucketCasePlate, []byte(f.Plate + "\x00")
	case f.Status != "":
		return bucketCaseStatus, []byte(string(f.Status) + "\x00")
	case f.Station != "":
		return bucketCaseStation, []byte(string(f.Station) + "\x00")
	case len(f.Stations) == 1:
		return bucketCaseStation, []byte(string(f.Stations[0]) + "\x00")
	}
	return bucketCaseSum, nil
}

// Cases implements central.Store. The cursor is the ID of the last case of
// the previous page. Filters are matched on the index entries; only the
// cases returned are decoded.
func (s *Store) Cases(ctx context.Context, f central.CaseFilter) ([]*central.Case, string, error) {
	if len(f.Cursor) > 64 {
		return nil, "", plume.Errorf(plume.EINVALID, "bad cursor")
	}
	limit := central.PageLimit(f.Limit)
	if f.SortBy != "" {
		return s.sortedCases(ctx, f, limit)
	}
	bucket, prefix := plan(&f)
	var after []byte
	if f.Cursor != "" {
		after = append(bytes.Clone(prefix), f.Cursor...)
	}
	var (
		out  []*central.Case
		next string
	)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		cb := tx.Bucket(bucketCases)
		return scanIndex(tx.Bucket(bucket), prefix, after, !f.Oldest, func(k, v []byte) (bool, error) {
			sum, err := decodeSummary(k[len(prefix):], v)
			if err != nil {
				return false, err
			}
			if !f.MatchSummary(sum) {
				return true, nil
			}
			if len(out) == limit {
				next = string(out[len(out)-1].ID)
				return false, nil
			}
			var c central.Case
			if ok, err := getJSON(cb, []byte(sum.ID), &c); err != nil || !ok {
				return false, fmt.Errorf("case %s: indexed but not stored (%v)", sum.ID, err)
			}
			out = append(out, &c)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("list cases: %w", err)
	}
	return out, next, nil
}

// sortedCases serves Cases ordered by a column: it walks the planned index
// for the matching summaries (no case is decoded), sorts them, and decodes
// only the page after the cursor.
func (s *Store) sortedCases(ctx context.Context, f central.CaseFilter, limit int) ([]*central.Case, string, error) {
	if !f.SortBy.Valid() {
		return nil, "", plume.Errorf(plume.EINVALID, "cannot sort by %q", f.SortBy)
	}
	var (
		cur    central.SortCursor
		cursor = f.Cursor != ""
	)
	if cursor {
		var err error
		if cur, err = central.DecodeSortCursor(f.SortBy, f.Cursor); err != nil {
			return nil, "", err
		}
	}
	bucket, prefix := plan(&f)
	var (
		out  []*central.Case
		next string
	)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		// Keep only the first limit+1 in order (a bounded insertion
		// list): most summaries lose one comparison with the last kept,
		// which is far cheaper than sorting them all.
		// Walking the index in the sort's direction keeps insertions rare
		// (IDs break ties and follow capture time closely).
		sums := make([]central.CaseSummary, 0, limit+1)
		err := scanIndex(tx.Bucket(bucket), prefix, nil, f.Descending, func(k, v []byte) (bool, error) {
			sum, err := decodeSummary(k[len(prefix):], v)
			if err != nil {
				return false, err
			}
			if !f.MatchSummary(sum) || (cursor && !f.AfterCursor(sum, cur)) {
				return true, nil
			}
			if len(sums) == limit+1 {
				if f.CompareSorted(sum, sums[limit]) >= 0 {
					return true, nil
				}
				sums = sums[:limit]
			}
			i, _ := slices.BinarySearchFunc(sums, sum, f.CompareSorted)
			sums = slices.Insert(sums, i, sum)
			return true, nil
		})
		if err != nil {
			return err
		}
		if len(sums) > limit {
			sums = sums[:limit]
			next = central.EncodeSortCursor(f.SortBy, sums[limit-1])
		}
		cb := tx.Bucket(bucketCases)
		for _, sum := range sums {
			var c central.Case
			if ok, err := getJSON(cb, []byte(sum.ID), &c); err != nil || !ok {
				return fmt.Errorf("case %s: indexed but not stored (%v)", sum.ID, err)
			}
			out = append(out, &c)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list cases: %w", err)
	}
	return out, next, nil
}

// CaseCounts implements central.Store.
func (s *Store) CaseCounts(ctx context.Context, f central.CaseFilter) (map[central.CaseStatus]int, error) {
	f.Status, f.Cursor = "", ""
	bucket, prefix := plan(&f)
	counts := map[central.CaseStatus]int{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return scanIndex(tx.Bucket(bucket), prefix, nil, true, func(k, v []byte) (bool, error) {
			sum, err := decodeSummary(k[len(prefix):], v)
			if err != nil {
				return false, err
			}
			if f.MatchSummary(sum) {
				counts[sum.Status]++
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("count cases: %w", err)
	}
	return counts, nil
}

// UpdateCase implements central.Store.
func (s *Store) UpdateCase(ctx context.Context, id plume.CaseID, fn func(c *central.Case) (*central.CaseChange, error)) (*central.Case, error) {
	var out central.Case
	err := s.update(ctx, func(tx *bolt.Tx) error {
		cb := tx.Bucket(bucketCases)
		raw := cb.Get([]byte(id))
		if raw == nil {
			return fmt.Errorf("case %s: %w", id, central.ErrNotFound)
		}
		var before, c central.Case
		if err := json.Unmarshal(raw, &before); err != nil {
			return fmt.Errorf("decode case %s: %w", id, err)
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("decode case %s: %w", id, err)
		}
		ch, err := fn(&c)
		if err != nil {
			return err
		}
		if ch == nil {
			ch = &central.CaseChange{}
		}
		if ch.At.IsZero() {
			ch.At = time.Now()
		}
		c.ID, c.Station = before.ID, before.Station // never moved
		c.UpdatedAt = ch.At.UTC()
		if err := putJSON(cb, []byte(id), &c); err != nil {
			return err
		}
		if err := indexCase(tx, &before, &c); err != nil {
			return err
		}
		if c.Plate != before.Plate {
			if err := moveVehicle(tx, &before, &c); err != nil {
				return err
			}
		}
		days := newDayCache(tx)
		days.get(central.DayOf(ch.At), c.Station).AddTransition(&before, &c)
		if err := days.flush(); err != nil {
			return err
		}
		for _, e := range ch.Custody {
			if _, err := appendCustody(tx, id, e); err != nil {
				return err
			}
		}
		for _, e := range ch.Audit {
			if _, err := appendAudit(tx, e); err != nil {
				return err
			}
		}
		for _, j := range ch.Jobs {
			if j.CaseID == "" {
				j.CaseID = id
			}
			if j.CreatedAt.IsZero() {
				j.CreatedAt = ch.At
			}
			if _, err := enqueue(tx, j); err != nil {
				return err
			}
		}
		out = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update case: %w", err)
	}
	return &out, nil
}

// moveVehicle files the case's pass under its corrected plate.
func moveVehicle(tx *bolt.Tx, before, after *central.Case) error {
	b := tx.Bucket(bucketVehicles)
	c := b.Cursor()
	prefix := []byte(before.Plate + "\x00")
	suffix := []byte("\x00" + string(before.PassID))
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if !bytes.HasSuffix(k, suffix) {
			continue
		}
		var e central.VehicleEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return err
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		e.Plate = after.Plate
		e.CaseID = after.ID
		return putVehicle(tx, &e)
	}
	return nil
}

// VehicleHistory implements central.Store.
func (s *Store) VehicleHistory(ctx context.Context, plate string, limit int) ([]central.VehicleEntry, error) {
	if limit <= 0 {
		limit = central.DefaultPageSize
	}
	var out []central.VehicleEntry
	if plate == "" {
		return nil, nil
	}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return scanIndex(tx.Bucket(bucketVehicles), []byte(plate+"\x00"), nil, true, func(k, v []byte) (bool, error) {
			var e central.VehicleEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return false, fmt.Errorf("decode vehicle entry: %w", err)
			}
			out = append(out, e)
			return len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("vehicle history: %w", err)
	}
	return out, nil
}

// StationAudits implements central.Store.
func (s *Store) StationAudits(ctx context.Context, station plume.StationID, before time.Time, limit int) ([]plume.Audit, error) {
	if limit <= 0 {
		limit = 10
	}
	prefix := []byte(string(station) + "\x00")
	after := append(bytes.Clone(prefix), itob(uint64(before.UnixNano())+1)...)
	var out []plume.Audit
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return scanIndex(tx.Bucket(bucketStationAudit), prefix, after, true, func(k, v []byte) (bool, error) {
			var a plume.Audit
			if err := json.Unmarshal(v, &a); err != nil {
				return false, fmt.Errorf("decode audit: %w", err)
			}
			out = append(out, a)
			return len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("station audits: %w", err)
	}
	return out, nil
}

// DailyStats implements central.Store.
func (s *Store) DailyStats(ctx context.Context, from, to string) ([]central.DayStats, error) {
	var out []central.DayStats
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDaily).Cursor()
		for k, v := c.Seek([]byte(from)); k != nil; k, v = c.Next() {
			day, _, _ := bytes.Cut(k, []byte{0})
			if string(day) > to {
				break
			}
			var d central.DayStats
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("decode day %q: %w", k, err)
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("daily stats: %w", err)
	}
	return out, nil
}

// Jobs implements central.Store.
func (s *Store) Jobs(ctx context.Context) ([]central.Job, error) {
	var out []central.Job
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			var j central.Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("decode job %x: %w", k, err)
			}
			out = append(out, j)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out, nil
}

func appendAudit(tx *bolt.Tx, e central.AuditEvent) (central.AuditEvent, error) {
	b := tx.Bucket(bucketAudit)
	prev := central.CustodyGenesis
	if k, v := b.Cursor().Last(); k != nil {
		prev = central.CustodyHash(v)
	}
	seq, err := b.NextSequence()
	if err != nil {
		return e, err
	}
	e.Seq, e.PrevSHA256, e.Time = seq, prev, e.Time.UTC()
	buf, err := json.Marshal(&e)
	if err != nil {
		return e, err
	}
	return e, b.Put(itob(seq), buf)
}

// AppendAudit implements central.Store.
func (s *Store) AppendAudit(ctx context.Context, e central.AuditEvent) (central.AuditEvent, error) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		var err error
		e, err = appendAudit(tx, e)
		return err
	})
	if err != nil {
		return e, fmt.Errorf("append audit: %w", err)
	}
	return e, nil
}

// Audit implements central.Store. The cursor is the sequence number of the
// last event of the previous page.
func (s *Store) Audit(ctx context.Context, f central.AuditFilter) ([]central.AuditEvent, string, error) {
	var after []byte
	if f.Cursor != "" {
		n, err := strconv.ParseUint(f.Cursor, 10, 64)
		if err != nil || n == 0 {
			return nil, "", plume.Errorf(plume.EINVALID, "bad cursor %q", f.Cursor)
		}
		after = itob(n)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = central.DefaultPageSize
	}
	var (
		out  []central.AuditEvent
		next string
	)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return scanIndex(tx.Bucket(bucketAudit), nil, after, true, func(k, v []byte) (bool, error) {
			var e central.AuditEvent
			if err := json.Unmarshal(v, &e); err != nil {
				return false, fmt.Errorf("decode audit event %x: %w", k, err)
			}
			if !f.Match(&e) {
				return true, nil
			}
			if len(out) == limit {
				next = strconv.FormatUint(out[len(out)-1].Seq, 10)
				return false, nil
			}
			out = append(out, e)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("audit log: %w", err)
	}
	return out, next, nil
}

// PutOfficer implements central.Store.
func (s *Store) PutOfficer(ctx context.Context, o *central.Officer) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOfficers)
		if b.Get([]byte(o.Username)) != nil {
			return fmt.Errorf("officer %s exists: %w", o.Username, central.ErrConflict)
		}
		return putJSON(b, []byte(o.Username), o)
	})
	if err != nil {
		return fmt.Errorf("put officer: %w", err)
	}
	return nil
}

// Officer implements central.Store.
func (s *Store) Officer(ctx context.Context, username string) (*central.Officer, error) {
	var o central.Officer
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketOfficers), []byte(username), &o)
		if err == nil && !ok {
			err = fmt.Errorf("officer %q: %w", username, central.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &o, nil
}

// Officers implements central.Store.
func (s *Store) Officers(ctx context.Context) ([]*central.Officer, error) {
	var out []*central.Officer
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOfficers).ForEach(func(k, v []byte) error {
			var o central.Officer
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("decode officer %s: %w", k, err)
			}
			out = append(out, &o)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list officers: %w", err)
	}
	return out, nil
}

// UpdateOfficer implements central.Store.
func (s *Store) UpdateOfficer(ctx context.Context, username string, fn func(o *central.Officer) (*central.AuditEvent, error)) (*central.Officer, error) {
	var o central.Officer
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOfficers)
		if ok, err := getJSON(b, []byte(username), &o); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("officer %q: %w", username, central.ErrNotFound)
		}
		ev, err := fn(&o)
		if err != nil {
			return err
		}
		o.Username = username
		if ev != nil {
			if _, err := appendAudit(tx, *ev); err != nil {
				return err
			}
		}
		return putJSON(b, []byte(username), &o)
	})
	if err != nil {
		return nil, fmt.Errorf("update officer: %w", err)
	}
	return &o, nil
}

// PutSession implements central.Store.
func (s *Store) PutSession(ctx context.Context, se *central.Session) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketSessions), []byte(se.Hash), se)
	})
	if err != nil {
		return fmt.Errorf("put session: %w", err)
	}
	return nil
}

// Session implements central.Store.
func (s *Store) Session(ctx context.Context, hash string) (*central.Session, error) {
	var se central.Session
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketSessions), []byte(hash), &se)
		if err == nil && !ok {
			err = fmt.Errorf("session: %w", central.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &se, nil
}

// DeleteSession implements central.Store.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	err := s.update(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Delete([]byte(hash)) })
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
