package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/central/sqlstore"
	"github.com/plume-emissions/plume/central/store"
)

// BenchScaleEnv turns on TestScaleBenchmark (it seeds 1,000,000 passes and
// 100,000 cases, which takes minutes).
const BenchScaleEnv = "PLUME_BENCH_SCALE"

// TestScaleBenchmark compares, in one run, one embedded central (bbolt and
// files) with two replicas on PostgreSQL and MinIO: review-queue query
// times with 1,000,000 passes and 100,000 cases stored, and evidence
// ingest in items per second over loopback HTTP. Set PLUME_BENCH_SCALE=1;
// PLUME_BENCH_PASSES and PLUME_BENCH_CASES change the sizes.
func TestScaleBenchmark(t *testing.T) {
	if os.Getenv(BenchScaleEnv) != "1" {
		t.Skipf("set %s=1 to run (seeds 1,000,000 passes and 100,000 cases)", BenchScaleEnv)
	}
	passes, cases := envInt("PLUME_BENCH_PASSES", 1_000_000), envInt("PLUME_BENCH_CASES", 100_000)
	ctx := context.Background()
	so := startScaleOut(t)
	stations := []plume.StationID{"GD-SZ-0001", "GD-SZ-0002", "GD-SZ-0003", "GD-SZ-0004"}

	// Seed the embedded store through its own API, in large transactions.
	dir := filepath.Join(t.TempDir(), "central")
	seed, err := store.Open(filepath.Join(dir, store.FileName), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, id := range stations {
		if err := seed.PutStation(ctx, &central.Station{ID: id, Name: "gantry", PublicKey: fixture.Key(string(id)).Public().(ed25519.PublicKey), EnrolledAt: fixture.Epoch}); err != nil {
			t.Fatal(err)
		}
	}
	const batch = 10_000
	for done := 0; done < passes; done += batch {
		st := stations[(done/batch)%len(stations)]
		recs := fixture.Records(st, fixture.Epoch.Add(-time.Duration(passes-done)*time.Second), min(batch, passes-done))
		if _, _, err := seed.PutRecords(ctx, st, recs, fixture.Epoch); err != nil {
			t.Fatal(err)
		}
	}
	seededPasses := time.Since(start)
	start = time.Now()
	for i := range cases {
		st := stations[i%len(stations)]
		at := fixture.Epoch.Add(-time.Duration(cases-i) * time.Minute)
		fx := fixture.NewEvidence(t, fixture.Key(string(st)), st, at, 1+i%2, true, 1)
		ev := &central.StoredEvidence{ID: fx.Manifest.ID, Station: st, Manifest: fx.Body, StationSig: fx.Sig, StationKey: fixture.Key(string(st)).Public().(ed25519.PublicKey), ReceivedAt: at.Add(time.Second)}
		c := central.NewCase(fx.Manifest)
		c.Kind = central.KindWarning
		if _, _, err := seed.PutEvidence(ctx, ev, c, []central.CustodyEntry{{Time: at, Actor: "station:" + string(st), Action: central.ActionCaptured}}); err != nil {
			t.Fatal(err)
		}
	}
	// The queue holds what a city's does: most cases decided long ago.
	jobs, _ := seed.Jobs(ctx)
	for _, j := range jobs {
		seed.CompleteJob(ctx, j.ID)
	}
	seededCases := time.Since(start)
	t.Logf("seeded bbolt: %d passes in %v, %d cases in %v", passes, seededPasses.Round(time.Second), cases, seededCases.Round(time.Second))

	// Copy it into PostgreSQL as plume-central migrate does.
	pg, err := sqlstore.Open(ctx, so.env[EnvStoreDSN], sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	start = time.Now()
	imp, err := pg.NewImport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = seed.Dump(ctx, store.Dump{
		Station:  func(st *central.Station) error { return imp.Station(ctx, st) },
		Evidence: func(ev *central.StoredEvidence) error { return imp.Evidence(ctx, ev) },
		Record:   func(s plume.StationID, raw []byte) error { return imp.Record(ctx, s, raw) },
		Pass:     func(p *central.PassRow) error { return imp.Pass(ctx, p) },
		Case:     func(c *central.Case) error { return imp.Case(ctx, c) },
		Custody:  func(id plume.CaseID, seq int64, line []byte) error { return imp.Custody(ctx, id, seq, line) },
		Vehicle:  func(e *central.VehicleEntry) error { return imp.Vehicle(ctx, e) },
		Day:      func(d *central.DayStats) error { return imp.Day(ctx, d) },
		Counters: func(a, b, c uint64, n int) error { imp.Counters(a, b, c, n); return nil },
	})
	if err == nil {
		err = imp.Finish(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Pool().Exec(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	t.Logf("copied into PostgreSQL (COPY) in %v", time.Since(start).Round(time.Second))
	seed.Close()

	// Review-queue queries, on the store each central would use.
	bolt, err := store.Open(filepath.Join(dir, store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	queries := []struct {
		name string
		run  func(s central.Store) error
	}{
		{"queue: open, newest first (page of 50)", func(s central.Store) error {
			_, _, err := s.Cases(ctx, central.CaseFilter{Status: central.CaseOpen, Limit: 50})
			return err
		}},
		{"queue: open, oldest first (page of 50)", func(s central.Store) error {
			_, _, err := s.Cases(ctx, central.CaseFilter{Status: central.CaseOpen, Oldest: true, Limit: 50})
			return err
		}},
		{"queue: one station, open (page of 50)", func(s central.Store) error {
			_, _, err := s.Cases(ctx, central.CaseFilter{Stations: stations[1:2], Status: central.CaseOpen, Limit: 50})
			return err
		}},
		{"queue: page 11 (cursor)", func(s central.Store) error {
			f := central.CaseFilter{Status: central.CaseOpen, Limit: 50}
			for range 11 {
				_, next, err := s.Cases(ctx, f)
				if err != nil {
					return err
				}
				f.Cursor = next
			}
			return nil
		}},
		{"queue tabs: counts by status, all cases", func(s central.Store) error {
			_, err := s.CaseCounts(ctx, central.CaseFilter{})
			return err
		}},
		{"passes: newest page of 50, one station", func(s central.Store) error {
			_, _, err := s.Passes(ctx, central.PassFilter{Station: stations[2], Limit: 50})
			return err
		}},
		{"vehicle file: 50 newest passes of a plate", func(s central.Store) error {
			_, err := s.VehicleHistory(ctx, "粤B12345", 50)
			return err
		}},
		{"dashboard: 30 days of counters", func(s central.Store) error {
			_, err := s.DailyStats(ctx, central.DayOf(fixture.Epoch.Add(-30*24*time.Hour)), central.DayOf(fixture.Epoch))
			return err
		}},
	}
	t.Logf("%-46s %14s %14s", fmt.Sprintf("query (%d passes, %d cases)", passes, cases), "bbolt", "PostgreSQL")
	for _, q := range queries {
		var cols []string
		for _, s := range []central.Store{bolt, pg} {
			d, err := median(9, func() error { return q.run(s) })
			if err != nil {
				t.Fatal(err)
			}
			cols = append(cols, d.Round(10*time.Microsecond).String())
		}
		t.Logf("%-46s %14s %14s", q.name, cols[0], cols[1])
	}
	bolt.Close()

	// Ingest over loopback HTTP: one embedded central; two replicas on
	// PostgreSQL and MinIO. Package builds run as in production.
	const items, workers = 300, 8
	cfg := server.NewConfig()
	cfg.Addr, cfg.DataDir, cfg.SheetFont = "127.0.0.1:0", dir, "none"
	emb, err := server.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	embRate := ingestRate(t, []string{emb.URL()}, stations, items, workers, 0)
	emb.Close()

	var urls []string
	for range 2 {
		st, bs := so.open(t)
		cfg := server.NewConfig()
		cfg.Addr, cfg.DataDir, cfg.SheetFont = "127.0.0.1:0", t.TempDir(), "none"
		cfg.Store, cfg.Blobs = st, bs
		cfg.Key, _ = loadKey(so.env[EnvKeyFile])
		r, err := server.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		urls = append(urls, r.URL())
	}
	pgRate := ingestRate(t, urls, stations, items, workers, 1)
	t.Logf("%-46s %14s %14s", fmt.Sprintf("ingest (%d workers, 1 media item each)", workers), "1 embedded", "2 replicas")
	t.Logf("%-46s %14.1f %14.1f", "evidence items/s", embRate, pgRate)
}

// ingestRate uploads items evidence items (media then manifest) from
// workers concurrent stations' clients, spread over urls, and returns
// items per second.
func ingestRate(t *testing.T, urls []string, stations []plume.StationID, items, workers, round int) float64 {
	t.Helper()
	evs := make([]*fixture.Evidence, items)
	for i := range evs {
		st := stations[i%len(stations)]
		evs[i] = fixture.NewEvidence(t, fixture.Key(string(st)), st, fixture.Epoch.Add(time.Duration(round+1)*24*time.Hour+time.Duration(i)*time.Second), 1, true, 1)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for {
				i := int(next.Add(1)) - 1
				if i >= items {
					return
				}
				ev := evs[i]
				c := &fixture.Client{BaseURL: urls[(i+w)%len(urls)], Station: ev.Manifest.Station, Key: fixture.Key(string(ev.Manifest.Station)), HTTP: hc}
				r, err := c.PutEvidence(ev)
				if err != nil || r.Status != http.StatusCreated {
					t.Errorf("ingest: %v %v", r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(items) / time.Since(start).Seconds()
}

// median runs fn n times and returns the median duration.
func median(n int, fn func() error) (time.Duration, error) {
	ds := make([]time.Duration, n)
	for i := range ds {
		t0 := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		ds[i] = time.Since(t0)
	}
	slices.Sort(ds)
	return ds[n/2], nil
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err == nil && n > 0 {
		return n
	}
	return def
}
