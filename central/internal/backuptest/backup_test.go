package backuptest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/blob"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/central/store"
)

var script, _ = filepath.Abs("../../../deploy/backup-central")

func open(tb testing.TB, dir string) *server.Server {
	tb.Helper()
	cfg := server.NewConfig()
	cfg.Addr, cfg.DataDir = "127.0.0.1:0", dir
	s, err := server.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func run(tb testing.TB, env []string, args ...string) (string, error) {
	tb.Helper()
	cmd := exec.Command(script, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func waitIdle(tb testing.TB, s *server.Server) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.WaitIdle(ctx); err != nil {
		tb.Fatal(err)
	}
}

// snapshot is what a restore must bring back, read from a stopped
// central's data directory.
type snapshot struct {
	stats   central.Stats
	cases   map[plume.CaseID]*central.Case
	custody map[plume.CaseID][]central.CustodyEntry
	blobs   []string // every media and package digest
}

func read(tb testing.TB, dir string, evidence []*fixture.Evidence) snapshot {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(filepath.Join(dir, store.FileName), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	snap := snapshot{cases: map[plume.CaseID]*central.Case{}, custody: map[plume.CaseID][]central.CustodyEntry{}}
	if snap.stats, err = st.Stats(ctx); err != nil {
		tb.Fatal(err)
	}
	cases, _, err := st.Cases(ctx, central.CaseFilter{Limit: central.MaxPageSize})
	if err != nil {
		tb.Fatal(err)
	}
	for _, c := range cases {
		snap.cases[c.ID] = c
		if snap.custody[c.ID], err = st.Custody(ctx, c.ID); err != nil {
			tb.Fatal(err)
		}
		if c.PackageSHA256 == "" {
			tb.Fatalf("case %s has no package", c.ID)
		}
		snap.blobs = append(snap.blobs, c.PackageSHA256)
	}
	for _, ev := range evidence {
		if _, err := st.Evidence(ctx, ev.Manifest.Station, ev.Manifest.ID); err != nil {
			tb.Fatalf("evidence %s: %v", ev.Manifest.ID, err)
		}
		for _, m := range ev.Media {
			snap.blobs = append(snap.blobs, m.Ref.SHA256)
		}
	}
	slices.Sort(snap.blobs)
	return snap
}

// checkBlobs re-hashes every blob the snapshot names.
func checkBlobs(tb testing.TB, dir string, sums []string) {
	tb.Helper()
	bs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, sum := range sums {
		rc, _, err := bs.Open(context.Background(), sum)
		if err != nil {
			tb.Fatalf("blob %s: %v", sum, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil || hex.EncodeToString(h.Sum(nil)) != sum {
			tb.Fatalf("blob %s restored with other content (%v)", sum, err)
		}
	}
}

func TestBackupRestore(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	e, err := s.Enroll(context.Background(), "S001", "gantry S001", nil)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := e.PrivateKey()
	client := &fixture.Client{BaseURL: s.URL(), Station: "S001", Key: key}
	var evidence []*fixture.Evidence
	ingest := func(i int) error {
		ev := fixture.NewEvidence(t, key, "S001", fixture.Epoch.Add(time.Duration(i)*time.Minute), 1, i%2 == 0, 2)
		if resp, err := client.PutEvidence(ev); err != nil || resp.Status >= 300 {
			return fmt.Errorf("ingest %d: %v %v", i, resp, err)
		}
		evidence = append(evidence, ev)
		return nil
	}
	for i := range 6 {
		if err := ingest(i); err != nil {
			t.Fatal(err)
		}
	}
	if resp, err := client.PutRecords("batch-1", fixture.Records("S001", fixture.Epoch, 30)); err != nil || resp.Status >= 300 {
		t.Fatalf("records: %v %v", resp, err)
	}
	waitIdle(t, s)

	backupDir := filepath.Join(t.TempDir(), "backup")
	t.Run("ErrCentralRunning", func(t *testing.T) {
		out, err := run(t, []string{"BACKUP_LOCK_WAIT=1"}, "backup", dir, filepath.Join(t.TempDir(), "b"))
		if err == nil || !strings.Contains(out, "still holds") {
			t.Fatalf("backup of a running central without --stop: err=%v\n%s", err, out)
		}
	})

	// The --stop hook asks the test to stop central, as systemctl would;
	// evidence ingested after phase 1 began must still be in the backup.
	signals := t.TempDir()
	stopped := make(chan error, 1)
	go func() {
		for {
			if _, err := os.Stat(filepath.Join(signals, "stop")); err == nil {
				// Arrives after phase 1 began, before the stop.
				if err := ingest(6); err != nil {
					stopped <- err
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := s.WaitIdle(ctx)
				cancel()
				stopped <- errors.Join(err, s.Close())
				os.WriteFile(filepath.Join(signals, "stopped"), nil, 0o600)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	stop := "touch " + filepath.Join(signals, "stop") + "; while [ ! -e " + filepath.Join(signals, "stopped") + " ]; do sleep 0.05; done"
	start := "touch " + filepath.Join(signals, "started")
	out, err := run(t, nil, "backup", "--stop", stop, "--start", start, dir, backupDir)
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(signals, "started")); err != nil {
		t.Fatal("--start hook not run")
	}
	want := read(t, dir, evidence)
	if want.stats.Evidence != 7 || want.stats.Cases != 4 || want.stats.Records == 0 || want.stats.PackagesBuilt != 4 {
		t.Fatalf("source stats %+v", want.stats)
	}

	restored := filepath.Join(t.TempDir(), "restored")
	if out, err := run(t, nil, "restore", backupDir, restored); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	got := read(t, restored, evidence)
	if got.stats != want.stats {
		t.Fatalf("restored stats %+v, want %+v", got.stats, want.stats)
	}
	for id, c := range want.cases {
		rc := got.cases[id]
		if rc == nil || rc.PackageSHA256 != c.PackageSHA256 || rc.Number != c.Number || rc.EvidenceID != c.EvidenceID {
			t.Fatalf("case %s restored as %+v, want %+v", id, rc, c)
		}
		if !slices.Equal(got.custody[id], want.custody[id]) {
			t.Fatalf("case %s custody differs", id)
		}
	}
	if !slices.Equal(got.blobs, want.blobs) {
		t.Fatal("restored blob list differs")
	}
	checkBlobs(t, restored, got.blobs)

	// The restored central starts with the same key and serves.
	s2 := open(t, restored)
	if !s2.PublicKey().Equal(s.PublicKey()) {
		t.Fatal("restored central has another key: packages would not verify")
	}
	st, err := s2.Stats(context.Background())
	if err != nil || st != want.stats {
		t.Fatalf("restored central stats %+v %v", st, err)
	}

	t.Run("ErrCorruptBlob", func(t *testing.T) {
		victim := filepath.Join(backupDir, "blobs", want.blobs[0][:2], want.blobs[0])
		os.Chmod(victim, 0o640)
		if err := os.WriteFile(victim, []byte("bit rot"), 0o440); err != nil {
			t.Fatal(err)
		}
		out, err := run(t, nil, "verify", backupDir)
		if err == nil || !strings.Contains(out, "corrupt blob") {
			t.Fatalf("verify passed a corrupt blob: %v\n%s", err, out)
		}
		if out, err := run(t, nil, "restore", backupDir, filepath.Join(t.TempDir(), "r")); err == nil {
			t.Fatalf("restore from a corrupt backup succeeded\n%s", out)
		}
	})
	t.Run("ErrRestoreOverData", func(t *testing.T) {
		if out, err := run(t, nil, "restore", backupDir, dir); err == nil || !strings.Contains(out, "not empty") {
			t.Fatalf("restore over a live data dir: %v\n%s", err, out)
		}
	})
}
