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
