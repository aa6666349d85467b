package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/store"
	"github.com/plume-emissions/plume/central/store/storetest"
)

// mustOpen opens a store in a fresh temp dir and closes it at cleanup.
func mustOpen(tb testing.TB, path string) *store.Store {
	tb.Helper()
	s, err := store.Open(path, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) central.Store {
		return mustOpen(tb, filepath.Join(tb.TempDir(), store.FileName))
	})
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), store.FileName)
	mustOpen(t, path)
	start := time.Now()
	_, err := store.Open(path, store.Options{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("second open took %v", d)
	}
}

func TestReopenReleasesLeases(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), store.FileName)
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	j, _ := s.EnqueueJob(ctx, central.Job{Kind: central.JobBuildPackage, CaseID: "C00000000001"})
	if _, err := s.ClaimJob(ctx, now, time.Hour); err != nil {
		t.Fatal(err)
	}
	s.Close() // the process "dies" holding the lease

	s = mustOpen(t, path)
	got, err := s.ClaimJob(ctx, now, time.Hour)
	if err != nil {
		t.Fatalf("job leased by a dead process was not released at open: %v", err)
	}
	if got.ID != j.ID || got.Attempts != 2 {
		t.Fatalf("claimed %+v", got)
	}
}
