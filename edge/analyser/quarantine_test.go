package analyser

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func garbage(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return b
}

func fileSize(tb testing.TB, p string) int64 {
	tb.Helper()
	st, err := os.Stat(p)
	if os.IsNotExist(err) {
		return 0
	} else if err != nil {
		tb.Fatal(err)
	}
	return st.Size()
}

// TestQuarantineBounded is the issue-18 case: 25 MB of garbage made a
// 61 MB quarantine. Now the files stay within MaxBytes, whatever arrives,
// and the counters say what was dropped.
func TestQuarantineBounded(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "q.jsonl")
	const max = 256 << 10
	q, err := OpenQuarantineWith(p, QuarantineOptions{MaxBytes: max, MaxItemBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var in int64
	for i := range 3000 {
		raw := garbage(rng, 1+rng.IntN(2000))
		if i%3 == 0 {
			raw = bytes.Repeat([]byte("noise "), 200)
		}
		if i == 100 {
			raw = bytes.Repeat([]byte{0}, 16<<20) // a 16 MiB line of NULs
		}
		in += int64(len(raw))
		if err := q.Quarantine(ctx, Rejected{Time: time.Now(), Reason: ReasonGarbage, Error: "garbage", Raw: raw}); err != nil {
			t.Fatal(err)
		}
		if on := fileSize(t, p) + fileSize(t, p+".1"); on > max {
			t.Fatalf("item %d: quarantine is %d bytes, cap %d", i, on, max)
		}
	}
	st := q.Stats()
	if st.Written != 3000 || st.DroppedItems == 0 || st.Rotations == 0 || st.Truncated != 1 || st.Bytes > max {
		t.Fatalf("stats %+v after %d bytes in", st, in)
	}
	items, err := ReadQuarantine(p)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(items)) != st.Written-st.DroppedItems {
		t.Fatalf("%d items readable, stats %+v", len(items), st)
	}
}

// TestQuarantineStoredOnce: text input is stored as text only, binary as
// base64 only, and both read back as the exact bytes.
func TestQuarantineStoredOnce(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "q.jsonl")
	q, err := OpenQuarantine(p)
	if err != nil {
		t.Fatal(err)
	}
	text := bytes.Repeat([]byte("ABCDEFGH"), 512)
	bin := append(bytes.Repeat([]byte{0xff, 0xfe}, 2048), '\n')
	for _, raw := range [][]byte{text, bin} {
		if err := q.Quarantine(ctx, Rejected{Reason: ReasonGarbage, Raw: raw}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if bytes.Count(data, text) != 1 || bytes.Contains(data, []byte(base64.StdEncoding.EncodeToString(text))) {
		t.Fatal("text input not stored exactly once, as text")
	}
	if len(data) > len(text)+base64.StdEncoding.EncodedLen(len(bin))+400 {
		t.Fatalf("%d bytes on disk for %d bytes of input", len(data), len(text)+len(bin))
	}
	items, err := ReadQuarantine(p)
	if err != nil || len(items) != 2 || !bytes.Equal(items[0].Raw, text) || !bytes.Equal(items[1].Raw, bin) {
		t.Fatalf("read back: %v", err)
	}
}

// TestQuarantineLeavesRoomForPasses: below the free-space floor items are
// counted and dropped, never written, so garbage cannot take the space the
// spool needs.
func TestQuarantineLeavesRoomForPasses(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "q.jsonl")
	free := int64(10 << 20)
	q, err := OpenQuarantineWith(p, QuarantineOptions{MinFreeBytes: 8 << 20, DiskFree: func() (int64, bool) { return free, true }})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := q.Quarantine(ctx, Rejected{Raw: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	free = 4 << 20
	if err := q.Quarantine(ctx, Rejected{Raw: []byte("y")}); err == nil {
		t.Fatal("written below the free-space floor")
	}
	if st := q.Stats(); st.Written != 1 || st.DroppedItems != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestQuarantineReopen keeps counting the files it finds.
func TestQuarantineReopen(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "q.jsonl")
	opts := QuarantineOptions{MaxBytes: 8 << 10}
	for range 3 {
		q, err := OpenQuarantineWith(p, opts)
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			if err := q.Quarantine(ctx, Rejected{Raw: bytes.Repeat([]byte("z"), 300)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		if on := fileSize(t, p) + fileSize(t, p+".1"); on > opts.MaxBytes {
			t.Fatalf("quarantine %d bytes after reopen, cap %d", on, opts.MaxBytes)
		}
	}
}

// TestGarbageFloodBounded is the issue-18 row "garbage on the analyser
// port": 4 MiB of garbage on one connection fills only the quarantine's
// budget, and passes on another connection are acknowledged throughout.
func TestGarbageFloodBounded(t *testing.T) {
	qpath := filepath.Join(t.TempDir(), "q.jsonl")
	const budget = 64 << 10
	q, err := OpenQuarantineWith(qpath, QuarantineOptions{MaxBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	st := &store{}
	cfg := Config{Protocol: ProtocolHJ212, Handler: st.handle, Profile: mustProfile(t, "generic-rsd.yaml"),
		Logger: slog.New(slog.DiscardHandler), Quarantine: q}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Config: cfg}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	defer func() { srv.Close(); <-done }()
	addr := ln.Addr().String()

	flood := dial(t, addr)
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		rng := rand.New(rand.NewPCG(4, 4))
		for range 64 {
			chunk := garbage(rng, 64<<10)
			for i := 0; i < len(chunk); i += 500 + rng.IntN(3000) {
				chunk[i] = '\n'
			}
			if _, err := flood.Write(chunk); err != nil {
				return // the server may cut a garbage-only connection
			}
		}
	}()
	c := dial(t, addr)
	fr := newFrameReader(c, SplitHJ212(0), MaxFrameLen)
	for i := range 20 {
		if _, err := c.Write(passFrame(t, fmt.Sprintf("2026112810%07d", i), 1, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
		rep, err := readReply(t, fr, c, 5*time.Second)
		if err != nil || rep.CN != CNDataReply {
			t.Fatalf("pass %d during the flood: reply %+v, %v", i, rep, err)
		}
	}
	<-floodDone
	if on := fileSize(t, qpath) + fileSize(t, qpath+".1"); on > budget {
		t.Fatalf("quarantine %d bytes, budget %d", on, budget)
	}
	if qs := q.Stats(); qs.DroppedItems == 0 {
		t.Fatalf("nothing dropped beyond the budget: %+v", qs)
	}
}
