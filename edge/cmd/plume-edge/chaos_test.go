package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/agent/agenttest"
	"github.com/plume-emissions/plume/edge/analyser"
	"github.com/plume-emissions/plume/edge/sim"
	bolt "go.etcd.io/bbolt"
)

// TestCorruptSpoolChaos is issue 18's "the disk lies" table at small
// scale, against the real plume-edge process and a real central: the
// simulator plays passes while central is down, so everything it has
// acknowledged waits in the spool; the edge is killed with -9, spool.db is
// damaged, central comes back and the edge restarts. The oracle is the
// simulator's own list of acknowledged pass IDs: each must reach central
// exactly once, and every violation must be exactly one case.
func TestCorruptSpoolChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test; skipped with -short")
	}
	page := int64(os.Getpagesize())
	overwrite := func(from, to int64) func(*testing.T, string) {
		return func(t *testing.T, db string) {
			data, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			junk := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x13, 0x37, 0x42}, int(page))
			for off := from * page; off < to*page && off < int64(len(data)); off += page {
				copy(data[off:min(off+page, int64(len(data)))], junk)
			}
			if err := os.WriteFile(db, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		spoil func(*testing.T, string)
	}{
		{"RandomPages", overwrite(3, 1<<20)},
		{"MetaPages", overwrite(0, 2)},
		{"BitFlips40", func(t *testing.T, db string) {
			data, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(18, 40))
			for range 40 {
				data[rng.IntN(len(data))] ^= 1 << rng.IntN(8)
			}
			if err := os.WriteFile(db, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"ManifestsChanged", func(t *testing.T, db string) {
			// Valid bbolt, valid JSON: one character changed inside every
			// stored manifest (held as base64 in the entry).
			changeStored(t, db, "evidence", []byte(`"manifest":"`))
		}},
		{"RecordsChanged", func(t *testing.T, db string) { changeStored(t, db, "records", []byte(`"lane"`)) }},
	} {
		t.Run(tc.name, func(t *testing.T) { runCorruptSpool(t, tc.spoil) })
	}
}

// changeStored changes the case of a letter a little after marker in
// every value of bucket.
func changeStored(t *testing.T, db, bucket string, marker []byte) {
	t.Helper()
	d, err := bolt.Open(db, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	n := 0
	err = d.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		var keys, vals [][]byte
		_ = b.ForEach(func(k, v []byte) error {
			i := bytes.Index(v, marker)
			if i < 0 {
				return nil
			}
			v = bytes.Clone(v)
			for j := i + len(marker) + 40; j < len(v); j++ {
				if c := v[j] | 0x20; c >= 'a' && c <= 'z' {
					v[j] ^= 0x20
					keys, vals = append(keys, bytes.Clone(k)), append(vals, v)
					break
				}
			}
			return nil
		})
		for i := range keys {
			if err := b.Put(keys[i], vals[i]); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("changed %d values in %s: %v", n, bucket, err)
	}
}

func runCorruptSpool(t *testing.T, spoil func(*testing.T, string)) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	edgeDir, centralDir := filepath.Join(dir, "edge"), filepath.Join(dir, "central")
	centralAddr := agenttest.FreeAddr(t)
	c := agenttest.StartCentral(t, centralDir, centralAddr)
	agenttest.Enroll(t, c, edgeDir)
	c.Close() // central is down while the analyser plays

	analyserAddr := agenttest.FreeAddr(t)
	cfgPath := writeStation(t, dir, edgeDir, analyserAddr)
	log, err := os.Create(filepath.Join(dir, "edge.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	edge := startEdge(t, cfgPath, log)

	const passes = 120
	player := sim.NewPlayer(sim.Config{
		Addr: analyserAddr, Protocol: analyser.ProtocolHJ212, Station: agenttest.Station, Profile: agenttest.DeviceProfile(t),
		Generator: sim.GeneratorConfig{Seed: 18}, Count: passes, Rate: 200,
		AckTimeout: 2 * time.Second, Backoff: analyser.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		Logger: agenttest.Logger(t).With("side", "sim"),
	})
	if err := player.Run(ctx); err != nil {
		t.Fatalf("simulator: %v", err)
	}
	edge.cmd.Process.Signal(syscall.SIGKILL)
	<-edge.done

	acked := map[plume.PassID]bool{}
	for _, id := range player.Stats().AckedPasses {
		acked[id] = true
	}
	if len(acked) != passes {
		t.Fatalf("simulator got %d distinct acknowledged passes, want %d", len(acked), passes)
	}
	spoil(t, filepath.Join(edgeDir, "spool", "spool.db"))

	c = agenttest.StartCentral(t, centralDir, centralAddr)
	edge = startEdge(t, cfgPath, log)
	ids, cases := drainAndCheck(t, ctx, c, edge, passes, acked)
	t.Logf("%d acknowledged passes, all at central once; %d cases", len(ids), cases)
}

// TestFullDiskChaos is issue 18's "full disk" row: the edge's data lives
// on a 3 MiB tmpfs filled to its last 640 KiB while central is up. Passes
// the spool cannot take are refused (not acknowledged) and resent by the
// simulator; none is folded into a summary, so every acknowledged pass
// reaches central as a pass row, exactly once. It needs root (mount) and
// is skipped without it.
func TestFullDiskChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	edgeDir := filepath.Join(dir, "edge")
	if err := os.MkdirAll(edgeDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", edgeDir).Run(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", edgeDir).Run() })
	t.Cleanup(func() {
		logTail(t, filepath.Join(dir, "edge.log"))
		if t.Failed() {
			out, _ := exec.Command("sh", "-c", "du -ab "+edgeDir+" | sort -n | tail -15; df -B1 "+edgeDir).CombinedOutput()
			t.Logf("edge data:\n%s", out)
		}
	})
	c := agenttest.StartCentral(t, filepath.Join(dir, "central"), "127.0.0.1:0")
	agenttest.Enroll(t, c, edgeDir)
	var fs syscall.Statfs_t
	if err := syscall.Statfs(edgeDir, &fs); err != nil {
		t.Fatal(err)
	}
	free := int64(fs.Bavail) * int64(fs.Bsize)
	if err := os.WriteFile(filepath.Join(edgeDir, "filler"), make([]byte, free-640<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	analyserAddr := agenttest.FreeAddr(t)
	cfgPath := writeStation(t, dir, edgeDir, analyserAddr)
	log, err := os.Create(filepath.Join(dir, "edge.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	edge := startEdge(t, cfgPath, log)
	defer func() {
		edge.cmd.Process.Signal(syscall.SIGKILL)
		<-edge.done
	}()

	const passes = 300
	player := sim.NewPlayer(sim.Config{
		Addr: analyserAddr, Protocol: analyser.ProtocolHJ212, Station: agenttest.Station, Profile: agenttest.DeviceProfile(t),
		Generator: sim.GeneratorConfig{Seed: 3}, Count: passes, Rate: 300,
		AckTimeout: 2 * time.Second, Backoff: analyser.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		Logger: agenttest.Logger(t).With("side", "sim"),
	})
	if err := player.Run(ctx); err != nil {
		t.Fatalf("simulator: %v", err)
	}
	acked := map[plume.PassID]bool{}
	for _, id := range player.Stats().AckedPasses {
		acked[id] = true
	}
	if len(acked) != passes {
		t.Fatalf("simulator got %d distinct acknowledged passes, want %d", len(acked), passes)
	}
	agenttest.WaitFor(t, 90*time.Second, "every acknowledged pass at central", func() (bool, string) {
		rows, err := agenttest.Passes(ctx, c.URL())
		n := 0
		for _, p := range rows {
			if acked[p.ID] {
				n++
			}
		}
		return err == nil && n >= len(acked), fmt.Sprintf("%d of %d acknowledged passes at central %v", n, len(acked), err)
	})
	if err := c.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	ids := make([]plume.PassID, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	cases := checkCentralOnce(t, ctx, c.URL(), ids)
	t.Logf("%d acknowledged passes, all at central once as pass rows; %d cases; %d resends by the simulator",
		len(ids), cases, player.Stats().Resends)
}

// logTail shows the end of the edge's log when a test failed.
func logTail(t *testing.T, path string) {
	if !t.Failed() {
		return
	}
	b, _ := os.ReadFile(path)
	t.Logf("edge log (end):\n%s", b[max(0, len(b)-6000):])
}
