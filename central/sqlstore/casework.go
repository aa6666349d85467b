package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// caseQuery turns a case filter (other than paging and order) into a
// WHERE clause. It reports false when the filter cannot match anything.
func caseQuery(f *central.CaseFilter, withStatus bool) (query, bool) {
	var q query
	ok := q.eq("station", string(f.Station)) && q.in("station", stationStrings(f.Stations)) &&
		q.eq("kind", string(f.Kind)) && q.eq("plate", f.Plate)
	if withStatus {
		ok = ok && q.eq("status", string(f.Status))
	}
	if f.ExcludeKind != "" {
		q.where("kind <> ?", string(f.ExcludeKind))
	}
	if f.Pollutant != "" {
		if !usable(string(f.Pollutant)) {
			return q, false
		}
		q.where("? = ANY(pollutants)", string(f.Pollutant))
	}
	if f.MinGrade > 0 {
		q.where("grade >= ?", f.MinGrade)
	}
	if !f.From.IsZero() {
		q.where("captured_ns >= ?", f.From.UnixNano())
	}
	if !f.To.IsZero() {
		q.where("captured_ns < ?", f.To.UnixNano())
	}
	return q, ok
}

// Cases implements central.Store. The cursor is the ID of the last case of
// the previous page; case IDs sort in creation order, and the indexes on
// (status, id), (station, id), (station, status, id) and (plate, id)
// serve the review queue's pages without sorting.
func (s *Store) Cases(ctx context.Context, f central.CaseFilter) ([]*central.Case, string, error) {
	if len(f.Cursor) > 64 || !usable(f.Cursor) {
		return nil, "", plume.Errorf(plume.EINVALID, "bad cursor")
	}
	limit := central.PageLimit(f.Limit)
	q, ok := caseQuery(&f, true)
	if !ok {
		return nil, "", nil
	}
	if f.SortBy != "" {
		return s.sortedCases(ctx, f, q, limit)
	}
	order := " ORDER BY id DESC"
	if f.Cursor != "" {
		if f.Oldest {
			q.where("id > ?", f.Cursor)
		} else {
			q.where("id < ?", f.Cursor)
		}
	}
	if f.Oldest {
		order = " ORDER BY id"
	}
	out, err := queryDocs[central.Case](ctx, s.pool, "SELECT doc FROM cases"+q.sql()+order+" LIMIT "+strconv.Itoa(limit+1), q.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list cases: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = string(out[limit-1].ID)
	}
	return out, next, nil
}

// sortColumns maps the queue's sort columns to SQL; text compares bytewise
// (COLLATE "C"), as central.CaseFilter.CompareSorted does.
var sortColumns = map[central.CaseSortKey]string{
	central.SortCaptured: "captured_ns",
	central.SortGrade:    "grade",
	central.SortStation:  `station COLLATE "C"`,
	central.SortPlate:    `plate COLLATE "C"`,
	central.SortKind:     `kind COLLATE "C"`,
	central.SortStatus:   `status COLLATE "C"`,
}

// sortedCases serves Cases ordered by a column, ties by ID, with a keyset
// cursor (value, ID).
func (s *Store) sortedCases(ctx context.Context, f central.CaseFilter, q query, limit int) ([]*central.Case, string, error) {
	col, ok := sortColumns[f.SortBy]
	if !ok {
		return nil, "", plume.Errorf(plume.EINVALID, "cannot sort by %q", f.SortBy)
	}
	dir, cmpOp := " ASC", ">"
	if f.Descending {
		dir, cmpOp = " DESC", "<"
	}
	if f.Cursor != "" {
		cur, err := central.DecodeSortCursor(f.SortBy, f.Cursor)
		if err != nil || !usable(cur.Text, string(cur.ID)) {
			return nil, "", plume.Errorf(plume.EINVALID, "bad cursor")
		}
		var v any = cur.Text
		if f.SortBy == central.SortCaptured || f.SortBy == central.SortGrade {
			v = cur.Num
		}
		q.where("("+col+", id) "+cmpOp+" (?, ?)", v, string(cur.ID))
	}
	out, err := queryDocs[central.Case](ctx, s.pool, "SELECT doc FROM cases"+q.sql()+" ORDER BY "+col+dir+", id"+dir+" LIMIT "+strconv.Itoa(limit+1), q.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list cases: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = central.EncodeSortCursor(f.SortBy, out[limit-1].Summarize())
	}
	return out, next, nil
}

// CaseCounts implements central.Store.
func (s *Store) CaseCounts(ctx context.Context, f central.CaseFilter) (map[central.CaseStatus]int, error) {
	counts := map[central.CaseStatus]int{}
	q, ok := caseQuery(&f, false)
	if !ok {
		return counts, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT status, count(*) FROM cases"+q.sql()+" GROUP BY status", q.args...)
	if err != nil {
		return nil, fmt.Errorf("count cases: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			st string
			n  int
		)
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count cases: %w", err)
		}
		counts[central.CaseStatus(st)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count cases: %w", err)
	}
	return counts, nil
}

// UpdateCase implements central.Store. The case row is locked for the
// transaction, so concurrent updates of one case (from any replica) apply
// one after the other.
func (s *Store) UpdateCase(ctx context.Context, id plume.CaseID, fn func(c *central.Case) (*central.CaseChange, error)) (*central.Case, error) {
	var out central.Case
	err := s.tx(ctx, func(tx pgx.Tx) error {
		raw, err := lockCase(ctx, tx, id)
		if err != nil {
			return err
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
		at := ch.At
		if at.IsZero() {
			at = s.now()
		}
		c.ID, c.Station = before.ID, before.Station // never moved
		c.UpdatedAt = at.UTC()
		if err := writeCase(ctx, tx, &c, false); err != nil {
			return err
		}
		if c.Plate != before.Plate {
			if err := moveVehicle(ctx, tx, &before, &c); err != nil {
				return err
			}
		}
		var days dayCache
		days.get(central.DayOf(at), c.Station).AddTransition(&before, &c)
		if err := days.flush(ctx, tx); err != nil {
			return err
		}
		for _, e := range ch.Custody {
			if _, err := appendCustody(ctx, tx, id, e); err != nil {
				return err
			}
		}
		for _, e := range ch.Audit {
			if _, err := appendAudit(ctx, tx, e); err != nil {
				return err
			}
		}
		for _, j := range ch.Jobs {
			if j.CaseID == "" {
				j.CaseID = id
			}
			if j.CreatedAt.IsZero() {
				j.CreatedAt = at
			}
			if _, err := enqueue(ctx, tx, j); err != nil {
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

// putVehicles stores vehicle-file entries, keeping the case link an
// earlier write of the same pass made. Entries are written in key order
// (so that concurrent batches lock rows in the same order); of two entries
// with one key the later wins, as with one write after the other.
func putVehicles(ctx context.Context, tx pgx.Tx, es []*central.VehicleEntry) error {
	if len(es) == 0 {
		return nil
	}
	type key struct {
		plate string
		t     int64
		pass  string
	}
	byKey := map[key]*central.VehicleEntry{}
	for _, e := range es {
		k := key{clean(e.Plate), e.Time.UnixNano(), clean(string(e.PassID))}
		if old, ok := byKey[k]; ok && e.CaseID == "" {
			e.CaseID = old.CaseID
		}
		byKey[k] = e
	}
	keys := make([]key, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.plate != b.plate {
			return a.plate < b.plate
		}
		if a.t != b.t {
			return a.t < b.t
		}
		return a.pass < b.pass
	})
	n := len(keys)
	plates, times, passes, caseIDs, docs := make([]string, n), make([]int64, n), make([]string, n), make([]string, n), make([]string, n)
	for i, k := range keys {
		e := byKey[k]
		b, err := marshal(e)
		if err != nil {
			return err
		}
		plates[i], times[i], passes[i], caseIDs[i], docs[i] = k.plate, k.t, k.pass, string(e.CaseID), string(b)
	}
	_, err := tx.Exec(ctx, `INSERT INTO vehicles (plate, time_ns, pass_id, case_id, doc)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::json[])
		ON CONFLICT (plate, time_ns, pass_id) DO UPDATE SET doc = excluded.doc,
			case_id = CASE WHEN excluded.case_id = '' THEN vehicles.case_id ELSE excluded.case_id END`,
		plates, times, passes, caseIDs, docs)
	return err
}

// moveVehicle files the case's pass under its corrected plate.
func moveVehicle(ctx context.Context, tx pgx.Tx, before, after *central.Case) error {
	var (
		raw    []byte
		caseID string
	)
	err := tx.QueryRow(ctx, `DELETE FROM vehicles WHERE (plate, time_ns, pass_id) IN (
			SELECT plate, time_ns, pass_id FROM vehicles WHERE plate = $1 AND pass_id = $2 ORDER BY time_ns LIMIT 1)
		RETURNING doc, case_id`, clean(before.Plate), clean(string(before.PassID))).Scan(&raw, &caseID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	} else if err != nil {
		return err
	}
	var e central.VehicleEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return err
	}
	e.Plate, e.CaseID = after.Plate, after.ID
	return putVehicles(ctx, tx, []*central.VehicleEntry{&e})
}

// VehicleHistory implements central.Store.
func (s *Store) VehicleHistory(ctx context.Context, plate string, limit int) ([]central.VehicleEntry, error) {
	if limit <= 0 {
		limit = central.DefaultPageSize
	}
	if plate == "" || !usable(plate) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT doc, case_id FROM vehicles WHERE plate = $1 ORDER BY time_ns DESC, pass_id DESC LIMIT $2", plate, limit)
	if err != nil {
		return nil, fmt.Errorf("vehicle history: %w", err)
	}
	defer rows.Close()
	var out []central.VehicleEntry
	for rows.Next() {
		var (
			raw    []byte
			caseID string
		)
		if err := rows.Scan(&raw, &caseID); err != nil {
			return nil, fmt.Errorf("vehicle history: %w", err)
		}
		var e central.VehicleEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("vehicle history: decode vehicle entry: %w", err)
		}
		e.CaseID = plume.CaseID(caseID)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("vehicle history: %w", err)
	}
	return out, nil
}

// StationAudits implements central.Store.
func (s *Store) StationAudits(ctx context.Context, station plume.StationID, before time.Time, limit int) ([]plume.Audit, error) {
	if limit <= 0 {
		limit = 10
	}
	if !usable(string(station)) {
		return nil, nil
	}
	as, err := queryDocs[plume.Audit](ctx, s.pool, `SELECT doc FROM station_audits WHERE station = $1 AND time_ns <= $2
		ORDER BY time_ns DESC, record_id DESC LIMIT $3`, string(station), before.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("station audits: %w", err)
	}
	var out []plume.Audit
	for _, a := range as {
		out = append(out, *a)
	}
	return out, nil
}

// dayCache collects day-counter changes within one transaction; flush
// adds them to the stored counters.
type dayCache struct {
	days map[string]*central.DayStats
}

func (c *dayCache) get(day string, station plume.StationID) *central.DayStats {
	if c.days == nil {
		c.days = map[string]*central.DayStats{}
	}
	k := day + "\x00" + string(station)
	if d, ok := c.days[k]; ok {
		return d
	}
	d := &central.DayStats{Day: day, Station: station}
	c.days[k] = d
	return d
}

// flush merges the collected changes into the stored rows, locking them
// in key order.
func (c *dayCache) flush(ctx context.Context, tx pgx.Tx) error {
	keys := make([]string, 0, len(c.days))
	for k := range c.days {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		delta := c.days[k]
		day, station := delta.Day, clean(string(delta.Station))
		zero, err := marshal(&central.DayStats{Day: delta.Day, Station: delta.Station})
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO daily (day, station, doc) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", day, station, zero); err != nil {
			return err
		}
		var raw []byte
		if err := tx.QueryRow(ctx, "SELECT doc FROM daily WHERE day = $1 AND station = $2 FOR UPDATE", day, station).Scan(&raw); err != nil {
			return err
		}
		var d central.DayStats
		json.Unmarshal(raw, &d) // a damaged counter restarts at zero
		d.Day, d.Station = delta.Day, delta.Station
		d.Merge(delta)
		doc, err := marshal(&d)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE daily SET doc = $3 WHERE day = $1 AND station = $2", day, station, doc); err != nil {
			return err
		}
	}
	return nil
}

// DailyStats implements central.Store.
func (s *Store) DailyStats(ctx context.Context, from, to string) ([]central.DayStats, error) {
	if !usable(from, to) {
		return nil, nil
	}
	ds, err := queryDocs[central.DayStats](ctx, s.pool, "SELECT doc FROM daily WHERE day >= $1 AND day <= $2 ORDER BY day, station", from, to)
	if err != nil {
		return nil, fmt.Errorf("daily stats: %w", err)
	}
	var out []central.DayStats
	for _, d := range ds {
		out = append(out, *d)
	}
	return out, nil
}

// appendAudit chains e after the last audit event. The chain is one
// sequence for the whole log, so appends take a transaction-scoped
// advisory lock: replicas append one after the other.
func appendAudit(ctx context.Context, tx pgx.Tx, e central.AuditEvent) (central.AuditEvent, error) {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockAudit); err != nil {
		return e, err
	}
	var (
		seq  int64
		line []byte
	)
	prev := central.CustodyGenesis
	err := tx.QueryRow(ctx, "SELECT seq, line FROM audit_log ORDER BY seq DESC LIMIT 1").Scan(&seq, &line)
	switch {
	case err == nil:
		prev = central.CustodyHash(line)
	case !errors.Is(err, pgx.ErrNoRows):
		return e, err
	}
	e.Seq, e.PrevSHA256, e.Time = uint64(seq+1), prev, e.Time.UTC()
	buf, err := json.Marshal(&e)
	if err != nil {
		return e, err
	}
	_, err = tx.Exec(ctx, "INSERT INTO audit_log (seq, time_ns, actor, action, target, line) VALUES ($1, $2, $3, $4, $5, $6)",
		int64(e.Seq), e.Time.UnixNano(), clean(e.Actor), clean(e.Action), clean(e.Target), buf)
	return e, err
}

// AppendAudit implements central.Store.
func (s *Store) AppendAudit(ctx context.Context, e central.AuditEvent) (central.AuditEvent, error) {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	in := e
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		e, err = appendAudit(ctx, tx, in)
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
	var q query
	if f.Cursor != "" {
		n, err := strconv.ParseUint(f.Cursor, 10, 64)
		if err != nil || n == 0 || n > 1<<63-1 {
			return nil, "", plume.Errorf(plume.EINVALID, "bad cursor %q", f.Cursor)
		}
		q.where("seq < ?", int64(n))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = central.DefaultPageSize
	}
	if !q.eq("actor", f.Actor) || !q.eq("target", f.Target) || !usable(f.Action) {
		return nil, "", nil
	}
	if f.Action != "" {
		q.where("left(action, ?) = ?", len([]rune(f.Action)), f.Action)
	}
	if !f.From.IsZero() {
		q.where("time_ns >= ?", f.From.UnixNano())
	}
	if !f.To.IsZero() {
		q.where("time_ns < ?", f.To.UnixNano())
	}
	es, err := queryDocs[central.AuditEvent](ctx, s.pool, "SELECT line FROM audit_log"+q.sql()+" ORDER BY seq DESC LIMIT "+strconv.Itoa(limit+1), q.args...)
	if err != nil {
		return nil, "", fmt.Errorf("audit log: %w", err)
	}
	out := make([]central.AuditEvent, 0, len(es))
	for _, e := range es {
		out = append(out, *e)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = strconv.FormatUint(out[limit-1].Seq, 10)
	}
	return out, next, nil
}

// PutOfficer implements central.Store.
func (s *Store) PutOfficer(ctx context.Context, o *central.Officer) error {
	doc, err := marshal(o)
	if err != nil {
		return fmt.Errorf("put officer: %w", err)
	}
	tag, err := s.pool.Exec(ctx, "INSERT INTO officers (username, doc) VALUES ($1, $2) ON CONFLICT DO NOTHING", clean(o.Username), doc)
	if err != nil {
		return fmt.Errorf("put officer: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("put officer: officer %s exists: %w", o.Username, central.ErrConflict)
	}
	return nil
}

// Officer implements central.Store.
func (s *Store) Officer(ctx context.Context, username string) (*central.Officer, error) {
	var o central.Officer
	if err := s.getDoc(ctx, &o, "SELECT doc FROM officers WHERE username = $1", username); err != nil {
		return nil, fmt.Errorf("officer %q: %w", username, err)
	}
	return &o, nil
}

// Officers implements central.Store.
func (s *Store) Officers(ctx context.Context) ([]*central.Officer, error) {
	out, err := queryDocs[central.Officer](ctx, s.pool, "SELECT doc FROM officers ORDER BY username")
	if err != nil {
		return nil, fmt.Errorf("list officers: %w", err)
	}
	return out, nil
}

// UpdateOfficer implements central.Store.
func (s *Store) UpdateOfficer(ctx context.Context, username string, fn func(o *central.Officer) (*central.AuditEvent, error)) (*central.Officer, error) {
	var o central.Officer
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if !usable(username) {
			return fmt.Errorf("officer %q: %w", username, central.ErrNotFound)
		}
		var raw []byte
		err := tx.QueryRow(ctx, "SELECT doc FROM officers WHERE username = $1 FOR UPDATE", username).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("officer %q: %w", username, central.ErrNotFound)
		} else if err != nil {
			return err
		}
		o = central.Officer{}
		if err := json.Unmarshal(raw, &o); err != nil {
			return fmt.Errorf("decode officer %s: %w", username, err)
		}
		ev, err := fn(&o)
		if err != nil {
			return err
		}
		o.Username = username
		if ev != nil {
			if _, err := appendAudit(ctx, tx, *ev); err != nil {
				return err
			}
		}
		doc, err := marshal(&o)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE officers SET doc = $2 WHERE username = $1", username, doc)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("update officer: %w", err)
	}
	return &o, nil
}

// PutSession implements central.Store. Every replica reads sessions from
// here, so an officer signed in on one replica is signed in on all.
func (s *Store) PutSession(ctx context.Context, se *central.Session) error {
	doc, err := marshal(se)
	if err != nil {
		return fmt.Errorf("put session: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO sessions (hash, expires_ns, doc) VALUES ($1, $2, $3)
		ON CONFLICT (hash) DO UPDATE SET expires_ns = excluded.expires_ns, doc = excluded.doc`, clean(se.Hash), ns(se.ExpiresAt), doc)
	if err != nil {
		return fmt.Errorf("put session: %w", err)
	}
	return nil
}

// Session implements central.Store.
func (s *Store) Session(ctx context.Context, hash string) (*central.Session, error) {
	var se central.Session
	if err := s.getDoc(ctx, &se, "SELECT doc FROM sessions WHERE hash = $1", hash); err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return &se, nil
}

// DeleteSession implements central.Store.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	if !usable(hash) {
		return nil
	}
	if _, err := s.pool.Exec(ctx, "DELETE FROM sessions WHERE hash = $1", hash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
