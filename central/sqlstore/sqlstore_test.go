package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/internal/testservers"
	"github.com/plume-emissions/plume/central/sqlstore"
	"github.com/plume-emissions/plume/central/store/storetest"
)

var dbSeq atomic.Int64

// newDatabase creates a fresh, empty database on pg and returns its DSN.
func newDatabase(tb testing.TB, pg *testservers.Postgres) string {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("plume_%d", dbSeq.Add(1))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatal(err)
	}
	return pg.DSN(name)
}

func mustOpen(tb testing.TB, dsn string) *sqlstore.Store {
	tb.Helper()
	s, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	pg := testservers.StartPostgres(t)
	storetest.Run(t, func(tb testing.TB) central.Store {
		return mustOpen(tb, newDatabase(tb, pg))
	})
}

func TestOpsContract(t *testing.T) {
	pg := testservers.StartPostgres(t)
	storetest.RunOps(t, func(tb testing.TB) storetest.OpsStore {
		return mustOpen(tb, newDatabase(tb, pg))
	})
}

// TestMigrateConcurrently opens one empty database from several
// "replicas" at once: the schema is applied once and all of them work.
func TestMigrateConcurrently(t *testing.T) {
	pg := testservers.StartPostgres(t)
	dsn := newDatabase(t, pg)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{})
			if err == nil {
				_, err = s.Stats(context.Background())
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	out, err := pg.Query(context.Background(), strings.TrimPrefix(dsn[strings.LastIndex(dsn, "/"):strings.Index(dsn, "?")], "/"), "SELECT count(*), max(version) FROM schema_migrations")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d|%d", sqlstore.SchemaVersion(), sqlstore.SchemaVersion()); out != want {
		t.Fatalf("schema_migrations: %q, want %q (each migration once)", out, want)
	}
	// A database from a newer build is refused.
	name := strings.TrimPrefix(dsn[strings.LastIndex(dsn, "/"):strings.Index(dsn, "?")], "/")
	if _, err := pg.Query(context.Background(), name, "INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future.sql')"); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{}); err == nil || !strings.Contains(err.Error(), "schema version 999") {
		t.Fatalf("open a newer database: %v", err)
	}
}

// TestClaimAcrossReplicas has two stores on one database (two replicas)
// claim from one queue with several workers each: every job is claimed
// exactly once.
func TestClaimAcrossReplicas(t *testing.T) {
	pg := testservers.StartPostgres(t)
	dsn := newDatabase(t, pg)
	a, b := mustOpen(t, dsn), mustOpen(t, dsn)
	ctx := context.Background()
	const n = 200
	for i := range n {
		if _, err := a.EnqueueJob(ctx, central.Job{Kind: central.JobBuildPackage, CaseID: central.FormatCaseID(uint64(i + 1))}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu      sync.Mutex
		claimed = map[uint64]int{}
		wg      sync.WaitGroup
	)
	now := time.Now()
	for w := range 8 {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for {
				j, err := s.ClaimJob(ctx, now, time.Hour)
				if errors.Is(err, central.ErrNoJob) {
					return
				} else if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				claimed[j.ID]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != n {
		t.Fatalf("%d jobs claimed, want %d", len(claimed), n)
	}
	for id, k := range claimed {
		if k != 1 {
			t.Fatalf("job %d claimed %d times", id, k)
		}
	}
}
