package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// PutEvidence implements central.Store.
func (s *Store) PutEvidence(ctx context.Context, ev *central.StoredEvidence, c *central.Case, custody []central.CustodyEntry) (*central.StoredEvidence, bool, error) {
	var (
		stored  central.StoredEvidence
		created bool
	)
	evIn := *ev
	var cIn central.Case
	if c != nil {
		cIn = *c
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// Start every attempt from the caller's values.
		*ev, created = evIn, false
		if c != nil {
			*c = cIn
		}
		doc, err := marshal(ev)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "INSERT INTO evidence (station, id, doc) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", clean(string(ev.Station)), clean(string(ev.ID)), doc)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var raw []byte
			err := tx.QueryRow(ctx, "SELECT doc FROM evidence WHERE station = $1 AND id = $2", clean(string(ev.Station)), clean(string(ev.ID))).Scan(&raw)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(raw, &stored); err != nil {
				return fmt.Errorf("decode evidence: %w", err)
			}
			if string(stored.Manifest) != string(ev.Manifest) {
				return fmt.Errorf("evidence %s: a different manifest is stored: %w", ev.ID, central.ErrConflict)
			}
			return nil
		}
		created = true
		counts := map[string]int{"evidence": 1}
		var days dayCache
		if c != nil {
			var seq uint64
			if err := tx.QueryRow(ctx, "SELECT nextval('case_seq')").Scan(&seq); err != nil {
				return err
			}
			c.ID = central.FormatCaseID(seq)
			c.Number = central.FormatCaseNumber(ev.ReceivedAt, seq)
			c.CreatedAt = ev.ReceivedAt
			ev.CaseID = c.ID
			if err := writeCase(ctx, tx, c, true); err != nil {
				return err
			}
			days.get(central.DayOf(c.CapturedAt), c.Station).AddTransition(nil, c)
			var last *central.CustodyEntry
			for _, e := range custody {
				e = central.ChainCustody(last, e)
				if err := insertCustody(ctx, tx, c.ID, e); err != nil {
					return err
				}
				last = &e
			}
			if _, err := enqueue(ctx, tx, central.Job{Kind: central.JobBuildPackage, CaseID: c.ID, CreatedAt: ev.ReceivedAt}); err != nil {
				return err
			}
			counts["cases"] = 1
			doc, err := marshal(ev)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "UPDATE evidence SET doc = $3, case_id = $4 WHERE station = $1 AND id = $2", clean(string(ev.Station)), clean(string(ev.ID)), doc, string(c.ID)); err != nil {
				return err
			}
		}
		stored = *ev
		// Ingest verified this manifest, so one that does not decode here is
		// a fault to report, never a vehicle-file entry skipped in silence.
		m, err := plume.DecodeManifest(ev.Manifest)
		if err != nil {
			return fmt.Errorf("evidence %s: decode manifest: %w", ev.ID, err)
		}
		if ve := central.NewVehicleEntry(&m.Pass); ve != nil {
			ve.CaseID = ev.CaseID
			if c != nil {
				ve.Plate = c.Plate
			}
			if err := putVehicles(ctx, tx, []*central.VehicleEntry{ve}); err != nil {
				return err
			}
		}
		if err := days.flush(ctx, tx); err != nil {
			return err
		}
		return addCounters(ctx, tx, counts)
	})
	if err != nil {
		return nil, false, fmt.Errorf("put evidence: %w", err)
	}
	return &stored, created, nil
}

// Evidence implements central.Store.
func (s *Store) Evidence(ctx context.Context, station plume.StationID, id plume.EvidenceID) (*central.StoredEvidence, error) {
	var ev central.StoredEvidence
	if err := s.getDoc(ctx, &ev, "SELECT doc FROM evidence WHERE station = $1 AND id = $2", string(station), string(id)); err != nil {
		return nil, fmt.Errorf("evidence %s: %w", id, err)
	}
	return &ev, nil
}

// PutRecords implements central.Store. The batch is written with a few
// set-based statements whatever its size.
func (s *Store) PutRecords(ctx context.Context, station plume.StationID, recs []plume.Record, receivedAt time.Time) (accepted, duplicates int, err error) {
	for i := range recs {
		if recs[i].Station != station {
			return 0, 0, fmt.Errorf("put records: record %s belongs to station %s: %w", recs[i].ID, recs[i].Station, central.ErrConflict)
		}
	}
	if len(recs) == 0 {
		return 0, 0, nil
	}
	ids := make([]string, len(recs))
	docs := make([]string, len(recs))
	for i := range recs {
		b, err := marshal(&recs[i])
		if err != nil {
			return 0, 0, fmt.Errorf("put records: %w", err)
		}
		ids[i], docs[i] = clean(recs[i].ID), string(b)
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		accepted, duplicates = 0, 0
		rows, err := tx.Query(ctx, `INSERT INTO records (station, id, doc)
			SELECT $1, id, doc FROM unnest($2::text[], $3::json[]) AS r(id, doc)
			ON CONFLICT DO NOTHING RETURNING id`, clean(string(station)), ids, docs)
		if err != nil {
			return err
		}
		inserted := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			inserted[id] = true
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var (
			passStations, passOutcomes, passDocs []string
			vehicles                             []*central.VehicleEntry
			audits                               []auditRow
			days                                 dayCache
		)
		for i := range recs {
			r := &recs[i]
			if !inserted[ids[i]] {
				duplicates++
				continue
			}
			delete(inserted, ids[i]) // a second copy in the batch is a duplicate
			accepted++
			if r.Kind == plume.RecordPass && r.Pass != nil {
				b, err := marshal(central.NewPassRow(r.Pass, receivedAt))
				if err != nil {
					return err
				}
				passStations = append(passStations, clean(string(station)))
				passOutcomes = append(passOutcomes, clean(string(r.Pass.Verdict.Outcome)))
				passDocs = append(passDocs, string(b))
				if ve := central.NewVehicleEntry(r.Pass); ve != nil {
					vehicles = append(vehicles, ve)
				}
				days.get(central.DayOf(r.Pass.Reading.Time), station).AddPass(r.Pass)
			}
			if r.Kind == plume.RecordAudit && r.Audit != nil {
				b, err := marshal(r.Audit)
				if err != nil {
					return err
				}
				audits = append(audits, auditRow{timeNS: r.Audit.Time.UnixNano(), id: clean(r.ID), doc: string(b)})
			}
		}
		if len(passDocs) > 0 {
			_, err := tx.Exec(ctx, `INSERT INTO passes (station, outcome, doc)
				SELECT station, outcome, doc FROM unnest($1::text[], $2::text[], $3::json[]) WITH ORDINALITY AS p(station, outcome, doc, n) ORDER BY n`,
				passStations, passOutcomes, passDocs)
			if err != nil {
				return err
			}
		}
		if err := putVehicles(ctx, tx, vehicles); err != nil {
			return err
		}
		if len(audits) > 0 {
			times, rids, adocs := make([]int64, len(audits)), make([]string, len(audits)), make([]string, len(audits))
			for i, a := range audits {
				times[i], rids[i], adocs[i] = a.timeNS, a.id, a.doc
			}
			_, err := tx.Exec(ctx, `INSERT INTO station_audits (station, time_ns, record_id, doc)
				SELECT $1, t, id, doc FROM unnest($2::bigint[], $3::text[], $4::json[]) AS a(t, id, doc)
				ON CONFLICT (station, time_ns, record_id) DO UPDATE SET doc = excluded.doc`, clean(string(station)), times, rids, adocs)
			if err != nil {
				return err
			}
		}
		if err := days.flush(ctx, tx); err != nil {
			return err
		}
		return addCounters(ctx, tx, map[string]int{"records": accepted})
	})
	if err != nil {
		return 0, 0, fmt.Errorf("put records: %w", err)
	}
	return accepted, duplicates, nil
}

type auditRow struct {
	timeNS int64
	id     string
	doc    string
}

// Passes implements central.Store. The cursor is the sequence number of the
// last row of the previous page.
func (s *Store) Passes(ctx context.Context, f central.PassFilter) ([]*central.PassRow, string, error) {
	var q query
	if f.Cursor != "" {
		n, err := strconv.ParseUint(f.Cursor, 10, 64)
		if err != nil || n == 0 || n > 1<<63-1 {
			return nil, "", plume.Errorf(plume.EINVALID, "bad cursor %q", f.Cursor)
		}
		q.where("seq < ?", int64(n))
	}
	limit := central.PageLimit(f.Limit)
	if !q.eq("station", string(f.Station)) || !q.in("station", stationStrings(f.Stations)) || !q.eq("outcome", string(f.Outcome)) {
		return nil, "", nil
	}
	rows, err := s.pool.Query(ctx, "SELECT seq, doc FROM passes"+q.sql()+" ORDER BY seq DESC LIMIT "+strconv.Itoa(limit+1), q.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list passes: %w", err)
	}
	defer rows.Close()
	var out []*central.PassRow
	for rows.Next() {
		var (
			seq int64
			raw []byte
		)
		if err := rows.Scan(&seq, &raw); err != nil {
			return nil, "", fmt.Errorf("list passes: %w", err)
		}
		var row central.PassRow
		if err := json.Unmarshal(raw, &row); err != nil {
			return nil, "", fmt.Errorf("list passes: decode pass %d: %w", seq, err)
		}
		row.Seq = uint64(seq)
		out = append(out, &row)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list passes: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = strconv.FormatUint(out[limit-1].Seq, 10)
	}
	return out, next, nil
}

func stationStrings(ids []plume.StationID) []string {
	if ids == nil {
		return nil
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	return out
}

// query builds a WHERE clause with numbered parameters.
type query struct {
	conds []string
	args  []any
}

// where adds a condition; each ? becomes the next parameter.
func (q *query) where(cond string, args ...any) {
	for _, a := range args {
		q.args = append(q.args, a)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(q.args)), 1)
	}
	q.conds = append(q.conds, cond)
}

// eq adds col = v unless v is empty. It reports false when v cannot match
// anything stored.
func (q *query) eq(col, v string) bool {
	if v == "" {
		return true
	}
	if !usable(v) {
		return false
	}
	q.where(col+" = ?", v)
	return true
}

// in adds col = ANY(vs) unless vs is empty. It reports false when no value
// in vs can match anything stored.
func (q *query) in(col string, vs []string) bool {
	if len(vs) == 0 {
		return true
	}
	var ok []string
	for _, v := range vs {
		if usable(v) {
			ok = append(ok, v)
		}
	}
	if len(ok) == 0 {
		return false
	}
	if len(ok) == 1 {
		q.where(col+" = ?", ok[0])
	} else {
		q.where(col+" = ANY(?)", ok)
	}
	return true
}

func (q *query) sql() string {
	if len(q.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.conds, " AND ")
}
