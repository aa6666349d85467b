package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// seedCases writes n cases with their indexes straight into the store, in
// large transactions (the ingest path commits one case per transaction,
// which would make seeding slow and measures nothing here).
func seedCases(tb testing.TB, s *Store, n int) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	stations := []plume.StationID{"GD-SZ-0001", "GD-SZ-0002", "GD-SZ-0003", "GD-SZ-0004"}
	statuses := []central.CaseStatus{central.CaseClosed, central.CaseClosed, central.CaseExported, central.CaseRejected, central.CaseOpen}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for done := 0; done < n; {
		err := s.db.Update(func(tx *bolt.Tx) error {
			cb := tx.Bucket(bucketCases)
			for i := 0; i < 10000 && done < n; i++ {
				seq, _ := cb.NextSequence()
				at := t0.Add(time.Duration(seq) * 4 * time.Minute)
				c := &central.Case{
					ID: central.FormatCaseID(seq), Number: central.FormatCaseNumber(at, seq), Station: stations[rng.IntN(4)],
					Plate: fmt.Sprintf("粤B%05d", rng.IntN(20000)), Pollutants: []plume.Pollutant{plume.PollutantNO},
					Status: statuses[rng.IntN(len(statuses))], Kind: central.KindWarning, CapturedAt: at, CreatedAt: at,
					Summary: "exceeds: NO 1834 ppm > 1500 ppm (provisional limit) (HJ 845-2017, profile hj845-2017-diesel@2026.11-1)",
					Profile: "hj845-2017-diesel@2026.11-1", Standard: "HJ 845-2017",
				}
				if rng.IntN(10) == 0 {
					c.Pollutants = append(c.Pollutants, plume.PollutantOpacity)
					c.SmokeGrade = 2 + rng.IntN(3)
				}
				if err := putJSON(cb, []byte(c.ID), c); err != nil {
					return err
				}
				if err := indexCase(tx, nil, c); err != nil {
					return err
				}
				done++
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// TestQueueScale measures the review queue's queries over 100,000 cases
// (skipped with -short). The figures are logged; the test fails if a page
// takes more than 250 ms on this machine class.
func TestQueueScale(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100,000 cases")
	}
	s, err := Open(filepath.Join(t.TempDir(), FileName), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	seedCases(t, s, 100000)
	t.Logf("seeded 100,000 cases in %v", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	scoped := []plume.StationID{"GD-SZ-0002"}
	for _, tc := range []struct {
		name string
		f    central.CaseFilter
	}{
		{"open, newest first (the default queue)", central.CaseFilter{Status: central.CaseOpen}},
		{"open, oldest first", central.CaseFilter{Status: central.CaseOpen, Oldest: true}},
		{"all statuses", central.CaseFilter{}},
		{"one station (scoped officer), open", central.CaseFilter{Stations: scoped, Status: central.CaseOpen}},
		{"one station, all statuses", central.CaseFilter{Stations: scoped}},
		{"plate", central.CaseFilter{Plate: "粤B01234"}},
		{"opacity, grade ≥ 4, open", central.CaseFilter{Pollutant: plume.PollutantOpacity, MinGrade: 4, Status: central.CaseOpen}},
		{"date range in the middle, open", central.CaseFilter{Status: central.CaseOpen, From: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 6, 8, 0, 0, 0, 0, time.UTC)}},
		{"matches nothing (full index scan)", central.CaseFilter{Kind: central.KindEnforcement}},
		{"sorted: all by capture time, newest", central.CaseFilter{SortBy: central.SortCaptured, Descending: true}},
		{"sorted: open by plate", central.CaseFilter{Status: central.CaseOpen, SortBy: central.SortPlate}},
		{"sorted: all by station", central.CaseFilter{SortBy: central.SortStation}},
		{"sorted: all by status, descending", central.CaseFilter{SortBy: central.SortStatus, Descending: true}},
		{"sorted: one station by grade, desc", central.CaseFilter{Stations: scoped, SortBy: central.SortGrade, Descending: true}},
	} {
		f := tc.f
		f.Limit = 50
		// The best of three: the budget is the store's cost, not the
		// neighbours' (go test runs other packages beside this one).
		var cases []*central.Case
		var next string
		page := time.Hour
		for range 3 {
			t0 := time.Now()
			var err error
			cases, next, err = s.Cases(ctx, f)
			page = min(page, time.Since(t0))
			if err != nil {
				t.Fatal(err)
			}
		}
		if next != "" {
			f.Cursor = next
			if _, _, err := s.Cases(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		t1 := time.Now()
		counts, err := s.CaseCounts(ctx, tc.f)
		count := time.Since(t1)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, n := range counts {
			total += n
		}
		t.Logf("%-40s page of %2d in %8v; status counts (%6d cases) in %8v", tc.name, len(cases), page.Round(10*time.Microsecond), total, count.Round(10*time.Microsecond))
		if page > 250*time.Millisecond {
			t.Errorf("%s: a page took %v", tc.name, page)
		}
	}
}
