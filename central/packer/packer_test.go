package packer_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/blob"
	"github.com/plume-emissions/plume/central/evidence"
	"github.com/plume-emissions/plume/central/ingest"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/packer"
	"github.com/plume-emissions/plume/central/store"
)

const stationID = plume.StationID("GD-SZ-0001")

var ctx = context.Background()

type env struct {
	dir    string
	store  *store.Store
	blobs  *blob.Store
	packer *packer.Packer
	key    ed25519.PrivateKey
	now    time.Time
}

// newEnv ingests one exceedance with two media items and returns the
// environment and the case.
func newEnv(t *testing.T) (*env, plume.CaseID, *fixture.Evidence) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	bs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{dir: dir, store: st, blobs: bs, key: fixture.Key("central"), now: fixture.Epoch.Add(time.Hour)}
	station := &central.Station{ID: stationID, PublicKey: fixture.Key(string(stationID)).Public().(ed25519.PublicKey)}
	st.PutStation(ctx, station)
	fx := fixture.NewEvidence(t, fixture.Key(string(stationID)), stationID, fixture.Epoch, 1, true, 2)
	svc := ingest.New(ingest.Config{Store: st, Blobs: bs, Now: func() time.Time { return e.now }})
	for _, m := range fx.Media {
		if _, err := svc.PutBlob(ctx, station, m.Ref.SHA256, bytes.NewReader(m.Data), m.Ref.Size); err != nil {
			t.Fatal(err)
		}
	}
	ev, _, err := svc.PutEvidence(ctx, station, fx.Manifest.ID, fx.Body, fx.Sig)
	if err != nil {
		t.Fatal(err)
	}
	e.packer = packer.New(packer.Config{Store: st, Blobs: bs, Key: e.key, TempDir: t.TempDir(), Now: func() time.Time { return e.now }})
	return e, ev.CaseID, fx
}

func (e *env) pkg(t *testing.T, id plume.CaseID) (*central.Case, []byte) {
	t.Helper()
	c, err := e.store.Case(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := e.blobs.Open(ctx, c.PackageSHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return c, b
}

func TestRunOneBuildsAndVerifies(t *testing.T) {
	e, id, _ := newEnv(t)
	ran, err := e.packer.RunOne(ctx)
	if err != nil || !ran {
		t.Fatalf("ran=%v err=%v", ran, err)
	}
	c, b := e.pkg(t, id)
	if c.PackageSize != int64(len(b)) || !c.PackageBuiltAt.Equal(e.now) {
		t.Fatalf("case %+v", c)
	}
	if _, err := evidence.Verify(bytes.NewReader(b), int64(len(b)), evidence.VerifyOptions{CentralKey: e.key.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatal(err)
	}
	if ran, _ := e.packer.RunOne(ctx); ran {
		t.Fatal("a job was left in the queue")
	}
}

func TestBuildIdempotent(t *testing.T) {
	e, id, _ := newEnv(t)
	if err := e.packer.Build(ctx, id); err != nil {
		t.Fatal(err)
	}
	first, _ := e.store.Case(ctx, id)
	e.now = e.now.Add(time.Hour)
	if err := e.packer.Build(ctx, id); err != nil {
		t.Fatal(err)
	}
	again, _ := e.store.Case(ctx, id)
	if again.PackageSHA256 != first.PackageSHA256 {
		t.Fatal("a built package was rebuilt")
	}
	log, _ := e.store.Custody(ctx, id)
	if n := len(log); n != 4 {
		t.Fatalf("custody has %d entries after two builds, want 4", n)
	}
}

// A build that crashed after logging "package built" but before storing
// the package reuses that entry: retries never grow the log.
func TestBuildAfterCrashReusesCustodyEntry(t *testing.T) {
	e, id, _ := newEnv(t)
	if _, err := e.store.AppendCustody(ctx, id, central.CustodyEntry{Time: e.now, Actor: "central", Action: central.ActionPackageBuilt}); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(time.Minute)
	if err := e.packer.Build(ctx, id); err != nil {
		t.Fatal(err)
	}
	log, _ := e.store.Custody(ctx, id)
	c, _ := e.pkg(t, id)
	if len(log) != 4 || !c.PackageBuiltAt.Equal(e.now.Add(-time.Minute)) {
		t.Fatalf("custody %d entries, built at %v", len(log), c.PackageBuiltAt)
	}
}

// A build that cannot succeed (media lost from the blob store) stays in
// the queue with its reason and is retried later; nothing is dropped.
func TestFailedBuildIsRetried(t *testing.T) {
	e, id, fx := newEnv(t)
	lost := filepath.Join(e.dir, "blobs", fx.Media[1].Ref.SHA256[:2], fx.Media[1].Ref.SHA256)
	data, _ := os.ReadFile(lost)
	if err := os.Remove(lost); err != nil {
		t.Fatal(err)
	}
	ran, err := e.packer.RunOne(ctx)
	if err != nil || !ran {
		t.Fatalf("ran=%v err=%v", ran, err)
	}
	if st, _ := e.store.Stats(ctx); st.PendingJobs != 1 || st.PackagesBuilt != 0 {
		t.Fatalf("after failure: %+v", st)
	}
	if ran, _ := e.packer.RunOne(ctx); ran {
		t.Fatal("failed job retried without backoff")
	}
	e.now = e.now.Add(time.Minute)
	j, err := e.store.ClaimJob(ctx, e.now, time.Second)
	if err != nil || !strings.Contains(j.LastError, "not found") {
		t.Fatalf("job %+v %v", j, err)
	}
	e.store.RetryJob(ctx, j.ID, e.now, j.LastError)

	// The media comes back (restored from the edge); the retry succeeds.
	if _, err := e.blobs.Put(ctx, fx.Media[1].Ref.SHA256, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if ran, err := e.packer.RunOne(ctx); !ran || err != nil {
		t.Fatalf("retry: ran=%v err=%v", ran, err)
	}
	if c, _ := e.store.Case(ctx, id); c.PackageSHA256 == "" {
		t.Fatal("package not built on retry")
	}
}

func TestRunDrainsOnCancel(t *testing.T) {
	e, id, _ := newEnv(t)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- e.packer.Run(runCtx) }()
	e.packer.Wake()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, _ := e.store.Case(ctx, id); c.PackageSHA256 != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("package not built")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
