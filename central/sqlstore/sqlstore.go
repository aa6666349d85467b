// Package sqlstore is central's scale-out metadata store: a central.Store
// kept in PostgreSQL through pgx, shared by several stateless central
// replicas.
//
// # Schema and migrations
//
// The schema is a list of versioned SQL files embedded in the binary
// (migrations/NNNN_name.sql). Open applies the ones a database lacks, each
// in its own transaction, while holding a PostgreSQL advisory lock, so
// replicas starting together apply each migration once and the others wait
// for it. A database migrated by a newer build is refused.
//
// # Behaviour
//
// The store behaves as the bbolt store (central/store) does; both pass the
// contract suite central/store/storetest. Documents (cases, custody
// lines, audit events, …) are kept as verbatim JSON beside the columns that
// queries filter and sort on, so hash chains read back byte for byte.
//
// # Several replicas
//
// Background work is shared through the jobs table: ClaimJob leases the
// oldest ready job with FOR UPDATE SKIP LOCKED, so replicas never claim the
// same job, and a job whose replica died is claimed again when its lease
// runs out. Unlike the bbolt store, Open does not release leases: other
// replicas may be alive and holding them. Transactions that lose a
// deadlock or serialization race are retried.
//
// Case numbers come from a sequence. A transaction that fails after taking
// a number leaves a gap; numbers stay unique and in creation order.
package sqlstore

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Advisory lock keys (arbitrary constants, "plume" in ASCII plus a tag).
const (
	lockMigrate = int64(0x706c756d65_01)
	lockAudit   = int64(0x706c756d65_02)
)

// counterShards spreads each counter over this many rows.
const counterShards = 16

// Options tune Open.
type Options struct {
	Logger *slog.Logger
	// Now stamps jobs and case changes that come without a time (default
	// time.Now).
	Now func() time.Time
	// MaxConns caps the connection pool (default pgx's: 4 or the CPU
	// count, whichever is more).
	MaxConns int32
}

// Store is the PostgreSQL implementation of central.Store. It is safe for
// concurrent use, and any number of Stores (in any number of processes)
// may share one database.
type Store struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	now    func() time.Time
}

var _ central.Store = (*Store)(nil)

// Open connects to the database at dsn (a libpq URL or key=value string),
// applies pending migrations and returns the store.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open sql store: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open sql store: %w", err)
	}
	s := &Store{pool: pool, logger: opts.Logger.With("component", "sqlstore"), now: opts.Now}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open sql store: %w", err)
	}
	return s, nil
}

// Close closes the connection pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Pool returns the connection pool, for tests and operator tools.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_what.sql", base)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := range out {
		if out[i].version != i+1 {
			return nil, fmt.Errorf("migration %s: versions must run 1, 2, 3, … without gaps", out[i].name)
		}
	}
	return out, nil
}

// SchemaVersion is the newest migration this build knows.
func SchemaVersion() int {
	ms, _ := migrations()
	return len(ms)
}

// migrate applies pending migrations under a session advisory lock.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockMigrate); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockMigrate)
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var have int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&have); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if have > len(ms) {
		return fmt.Errorf("migrate: the database is at schema version %d, this build reads up to %d", have, len(ms))
	}
	for _, m := range ms[have:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
		s.logger.Info("schema migrated", "version", m.version, "migration", m.name)
	}
	return nil
}

// tx runs fn in a transaction, retrying it when it loses a deadlock or a
// serialization race. fn must be safe to run again.
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		err = pgx.BeginFunc(ctx, s.pool, fn)
		if !retryable(err) {
			return err
		}
		s.logger.Debug("transaction retried", "attempt", attempt+1, "err", err)
		time.Sleep(time.Duration(1+rand.IntN(10<<attempt)) * time.Millisecond)
	}
	return err
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// usable reports whether every s can be sent as text: PostgreSQL text
// holds neither NUL nor invalid UTF-8. A filter on such a value matches
// nothing and a lookup finds nothing, as in the bbolt store.
func usable(ss ...string) bool {
	for _, s := range ss {
		if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// clean makes s storable as text.
func clean(s string) string {
	if usable(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return b, nil
}

// addCounters adds to named counters, in name order (so that concurrent
// transactions lock counter rows in the same order).
func addCounters(ctx context.Context, tx pgx.Tx, deltas map[string]int) error {
	names := make([]string, 0, len(deltas))
	for n, d := range deltas {
		if d != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	ns := make([]int64, len(names))
	for i, n := range names {
		ns[i] = int64(deltas[n])
	}
	_, err := tx.Exec(ctx, `INSERT INTO counters (name, shard, n)
		SELECT name, $3, n FROM unnest($1::text[], $2::bigint[]) AS d(name, n)
		ON CONFLICT (name, shard) DO UPDATE SET n = counters.n + excluded.n`, names, ns, rand.IntN(counterShards))
	return err
}

// PutStation implements central.Store.
func (s *Store) PutStation(ctx context.Context, st *central.Station) error {
	doc, err := marshal(st)
	if err != nil {
		return fmt.Errorf("put station: %w", err)
	}
	tag, err := s.pool.Exec(ctx, "INSERT INTO stations (id, doc) VALUES ($1, $2) ON CONFLICT DO NOTHING", clean(string(st.ID)), doc)
	if err != nil {
		return fmt.Errorf("put station: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("put station: station %s already enrolled: %w", st.ID, central.ErrConflict)
	}
	return nil
}

// Station implements central.Store.
func (s *Store) Station(ctx context.Context, id plume.StationID) (*central.Station, error) {
	var st central.Station
	if err := s.getDoc(ctx, &st, "SELECT doc FROM stations WHERE id = $1", string(id)); err != nil {
		return nil, fmt.Errorf("station %s: %w", id, err)
	}
	return &st, nil
}

// getDoc decodes the one document the query returns into v, or returns
// central.ErrNotFound. Text arguments that PostgreSQL cannot hold find
// nothing.
func (s *Store) getDoc(ctx context.Context, v any, query string, args ...string) error {
	if !usable(args...) {
		return central.ErrNotFound
	}
	a := make([]any, len(args))
	for i, x := range args {
		a[i] = x
	}
	var raw []byte
	err := s.pool.QueryRow(ctx, query, a...).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return central.ErrNotFound
	} else if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// Stations implements central.Store.
func (s *Store) Stations(ctx context.Context) ([]*central.Station, error) {
	out, err := queryDocs[central.Station](ctx, s.pool, "SELECT doc FROM stations ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list stations: %w", err)
	}
	return out, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryDocs decodes the first column of every row as a T.
func queryDocs[T any](ctx context.Context, q querier, query string, args ...any) ([]*T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

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
		if m, err := plume.DecodeManifest(ev.Manifest); err == nil {
			if ve := central.NewVehicleEntry(&m.Pass); ve != nil {
				ve.CaseID = ev.CaseID
				if c != nil {
					ve.Plate = c.Plate
				}
				if err := putVehicles(ctx, tx, []*central.VehicleEntry{ve}); err != nil {
					return err
				}
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

// Case implements central.Store.
func (s *Store) Case(ctx context.Context, id plume.CaseID) (*central.Case, error) {
	var c central.Case
	if err := s.getDoc(ctx, &c, "SELECT doc FROM cases WHERE id = $1", string(id)); err != nil {
		return nil, fmt.Errorf("case %s: %w", id, err)
	}
	return &c, nil
}

// writeCase inserts or updates a case row.
func writeCase(ctx context.Context, tx pgx.Tx, c *central.Case, insert bool) error {
	doc, err := marshal(c)
	if err != nil {
		return err
	}
	pol := make([]string, len(c.Pollutants))
	for i, p := range c.Pollutants {
		pol[i] = clean(string(p))
	}
	args := []any{string(c.ID), clean(string(c.Station)), clean(string(c.Status)), clean(string(c.Kind)), clean(c.Plate), c.SmokeGrade, pol, c.CapturedAt.UnixNano(), c.PackageSHA256, doc}
	if insert {
		_, err = tx.Exec(ctx, `INSERT INTO cases (id, station, status, kind, plate, grade, pollutants, captured_ns, package_sha, doc)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, args...)
	} else {
		_, err = tx.Exec(ctx, `UPDATE cases SET station = $2, status = $3, kind = $4, plate = $5, grade = $6, pollutants = $7,
			captured_ns = $8, package_sha = $9, doc = $10 WHERE id = $1`, args...)
	}
	return err
}

// lockCase reads a case for update, or returns central.ErrNotFound.
func lockCase(ctx context.Context, tx pgx.Tx, id plume.CaseID) ([]byte, error) {
	if !usable(string(id)) {
		return nil, fmt.Errorf("case %s: %w", id, central.ErrNotFound)
	}
	var raw []byte
	err := tx.QueryRow(ctx, "SELECT doc FROM cases WHERE id = $1 FOR UPDATE", string(id)).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("case %s: %w", id, central.ErrNotFound)
	}
	return raw, err
}

// SetCasePackage implements central.Store.
func (s *Store) SetCasePackage(ctx context.Context, id plume.CaseID, sha string, size int64, builtAt time.Time, revision int) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		raw, err := lockCase(ctx, tx, id)
		if err != nil {
			return err
		}
		var c central.Case
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("decode case %s: %w", id, err)
		}
		first := c.PackageSHA256 == ""
		c.PackageSHA256, c.PackageSize, c.PackageBuiltAt, c.PackageRevision = sha, size, builtAt.UTC(), revision
		if err := writeCase(ctx, tx, &c, false); err != nil {
			return err
		}
		if first {
			return addCounters(ctx, tx, map[string]int{"packages_built": 1})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set case package: %w", err)
	}
	return nil
}

func insertCustody(ctx context.Context, tx pgx.Tx, id plume.CaseID, e central.CustodyEntry) error {
	_, err := tx.Exec(ctx, "INSERT INTO custody (case_id, seq, line) VALUES ($1, $2, $3)", string(id), e.Seq, central.EncodeCustody(e))
	return err
}

// appendCustody chains e after the case's last entry; the caller holds the
// case's row lock.
func appendCustody(ctx context.Context, tx pgx.Tx, id plume.CaseID, e central.CustodyEntry) (central.CustodyEntry, error) {
	var (
		last *central.CustodyEntry
		raw  []byte
	)
	err := tx.QueryRow(ctx, "SELECT line FROM custody WHERE case_id = $1 ORDER BY seq DESC LIMIT 1", string(id)).Scan(&raw)
	switch {
	case err == nil:
		last = new(central.CustodyEntry)
		if err := json.Unmarshal(raw, last); err != nil {
			return e, fmt.Errorf("decode custody entry: %w", err)
		}
	case !errors.Is(err, pgx.ErrNoRows):
		return e, err
	}
	e = central.ChainCustody(last, e)
	return e, insertCustody(ctx, tx, id, e)
}

// AppendCustody implements central.Store.
func (s *Store) AppendCustody(ctx context.Context, id plume.CaseID, e central.CustodyEntry) (central.CustodyEntry, error) {
	in := e
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := lockCase(ctx, tx, id); err != nil {
			return err
		}
		var err error
		e, err = appendCustody(ctx, tx, id, in)
		return err
	})
	if err != nil {
		return central.CustodyEntry{}, fmt.Errorf("append custody: %w", err)
	}
	return e, nil
}

// Custody implements central.Store.
func (s *Store) Custody(ctx context.Context, id plume.CaseID) ([]central.CustodyEntry, error) {
	if !usable(string(id)) {
		return nil, fmt.Errorf("custody: case %s: %w", id, central.ErrNotFound)
	}
	var out []central.CustodyEntry
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, "SELECT 1 FROM cases WHERE id = $1", string(id)).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("case %s: %w", id, central.ErrNotFound)
		} else if err != nil {
			return err
		}
		es, err := queryDocs[central.CustodyEntry](ctx, tx, "SELECT line FROM custody WHERE case_id = $1 ORDER BY seq", string(id))
		for _, e := range es {
			out = append(out, *e)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("custody: %w", err)
	}
	return out, nil
}

const jobColumns = "id, kind, case_id, attempts, created_ns, not_before_ns, lease_ns, last_error"

func scanJob(row pgx.Row) (*central.Job, error) {
	var (
		j                        central.Job
		id                       int64
		kind, caseID             string
		created, notBefore, leas int64
	)
	if err := row.Scan(&id, &kind, &caseID, &j.Attempts, &created, &notBefore, &leas, &j.LastError); err != nil {
		return nil, err
	}
	j.ID, j.Kind, j.CaseID = uint64(id), central.JobKind(kind), plume.CaseID(caseID)
	j.CreatedAt, j.NotBefore, j.LeaseUntil = fromNS(created), fromNS(notBefore), fromNS(leas)
	return &j, nil
}

func enqueue(ctx context.Context, tx pgx.Tx, j central.Job) (central.Job, error) {
	j.CreatedAt = j.CreatedAt.UTC()
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO jobs (kind, case_id, attempts, created_ns, not_before_ns, lease_ns, last_error)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		clean(string(j.Kind)), clean(string(j.CaseID)), j.Attempts, ns(j.CreatedAt), ns(j.NotBefore), ns(j.LeaseUntil), clean(j.LastError)).Scan(&id)
	j.ID = uint64(id)
	return j, err
}

// EnqueueJob implements central.Store.
func (s *Store) EnqueueJob(ctx context.Context, j central.Job) (central.Job, error) {
	if j.CreatedAt.IsZero() {
		j.CreatedAt = s.now()
	}
	in := j
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		j, err = enqueue(ctx, tx, in)
		return err
	})
	if err != nil {
		return j, fmt.Errorf("enqueue job: %w", err)
	}
	return j, nil
}

// ClaimJob implements central.Store. The oldest ready job is locked with
// SKIP LOCKED, so replicas claiming at the same moment take different
// jobs instead of waiting for each other.
func (s *Store) ClaimJob(ctx context.Context, now time.Time, lease time.Duration, kinds ...central.JobKind) (*central.Job, error) {
	var q query
	q.where("not_before_ns <= ?", now.UnixNano())
	q.where("lease_ns <= ?", now.UnixNano())
	if len(kinds) > 0 {
		ks := make([]string, len(kinds))
		for i, k := range kinds {
			ks[i] = string(k)
		}
		if !q.in("kind", ks) {
			return nil, central.ErrNoJob
		}
	}
	q.args = append(q.args, now.Add(lease).UnixNano())
	leaseArg := "$" + strconv.Itoa(len(q.args))
	row := s.pool.QueryRow(ctx, `UPDATE jobs SET lease_ns = `+leaseArg+`, attempts = attempts + 1
		WHERE id = (SELECT id FROM jobs`+q.sql()+` ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+jobColumns, q.args...)
	j, err := scanJob(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, central.ErrNoJob
	} else if err != nil {
		return nil, fmt.Errorf("claim job: %w", err)
	}
	return j, nil
}

// Jobs implements central.Store.
func (s *Store) Jobs(ctx context.Context) ([]central.Job, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+jobColumns+" FROM jobs ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	var out []central.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		out = append(out, *j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out, nil
}

// CompleteJob implements central.Store.
func (s *Store) CompleteJob(ctx context.Context, id uint64) error {
	tag, err := s.pool.Exec(ctx, "DELETE FROM jobs WHERE id = $1", int64(id))
	if err != nil {
		return fmt.Errorf("complete job: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("complete job: job %d: %w", id, central.ErrNotFound)
	}
	return nil
}

// RetryJob implements central.Store.
func (s *Store) RetryJob(ctx context.Context, id uint64, notBefore time.Time, reason string) error {
	tag, err := s.pool.Exec(ctx, "UPDATE jobs SET lease_ns = 0, not_before_ns = $2, last_error = $3 WHERE id = $1", int64(id), ns(notBefore), clean(reason))
	if err != nil {
		return fmt.Errorf("retry job: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("retry job: job %d: %w", id, central.ErrNotFound)
	}
	return nil
}

// Stats implements central.Store. Stations and queued jobs are counted;
// the large tables keep sharded counters.
func (s *Store) Stats(ctx context.Context) (central.Stats, error) {
	var st central.Stats
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM stations),
		(SELECT count(*) FROM jobs),
		coalesce((SELECT sum(n) FROM counters WHERE name = 'evidence'), 0)::bigint,
		coalesce((SELECT sum(n) FROM counters WHERE name = 'records'), 0)::bigint,
		coalesce((SELECT sum(n) FROM counters WHERE name = 'cases'), 0)::bigint,
		coalesce((SELECT sum(n) FROM counters WHERE name = 'packages_built'), 0)::bigint`).
		Scan(&st.Stations, &st.PendingJobs, &st.Evidence, &st.Records, &st.Cases, &st.PackagesBuilt)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}
