// Package blobtest is the contract every central.BlobStore implementation
// must pass. An implementation's tests call Run with a function that returns
// a fresh, empty store (registering its own cleanup).
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Run runs the contract tests against stores made by newStore.
func Run(t *testing.T, newStore func(tb testing.TB) central.BlobStore) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newStore(t)) })
	t.Run("Idempotent", func(t *testing.T) { testIdempotent(t, newStore(t)) })
	t.Run("ErrDigestMismatch", func(t *testing.T) { testDigestMismatch(t, newStore(t)) })
	t.Run("ErrSizeMismatch", func(t *testing.T) { testSizeMismatch(t, newStore(t)) })
	t.Run("ErrInvalidDigest", func(t *testing.T) { testInvalidDigest(t, newStore(t)) })
	t.Run("ErrNotFound", func(t *testing.T) { testNotFound(t, newStore(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newStore(t)) })
	t.Run("Cancelled", func(t *testing.T) { testCancelled(t, newStore(t)) })
}

var ctx = context.Background()

// Sum returns the lowercase hex SHA-256 of b.
func Sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func testRoundTrip(t *testing.T, s central.BlobStore) {
	data := bytes.Repeat([]byte("plume clip bytes "), 300_000) // ~5 MiB, streamed
	sum := Sum(data)
	created, err := s.Put(ctx, sum, bytes.NewReader(data), int64(len(data)))
	if err != nil || !created {
		t.Fatalf("put: created=%v err=%v", created, err)
	}
	rc, info, err := s.Open(ctx, sum)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if info.Size != int64(len(data)) || info.SHA256 != sum {
		t.Fatalf("info %+v", info)
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, err %v", len(got), err)
	}
	if _, err := rc.Seek(10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(rc, buf); err != nil || string(buf) != string(data[10:15]) {
		t.Fatalf("seek+read %q %v", buf, err)
	}
	if st, err := s.Stat(ctx, sum); err != nil || st.Size != int64(len(data)) {
		t.Fatalf("stat %+v %v", st, err)
	}
	if ok, err := s.Exists(ctx, sum); !ok || err != nil {
		t.Fatalf("exists %v %v", ok, err)
	}
	empty := Sum(nil)
	if created, err := s.Put(ctx, empty, strings.NewReader(""), 0); err != nil || !created {
		t.Fatalf("empty blob: %v %v", created, err)
	}
}

func testIdempotent(t *testing.T, s central.BlobStore) {
	data := []byte("scene-1.jpg")
	sum := Sum(data)
	if _, err := s.Put(ctx, sum, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	created, err := s.Put(ctx, sum, bytes.NewReader(data), int64(len(data)))
	if err != nil || created {
		t.Fatalf("second put: created=%v err=%v", created, err)
	}
}

func testDigestMismatch(t *testing.T, s central.BlobStore) {
	data := []byte("the real bytes")
	sum := Sum([]byte("other bytes"))
	_, err := s.Put(ctx, sum, bytes.NewReader(data), int64(len(data)))
	if !errors.Is(err, central.ErrDigestMismatch) {
		t.Fatalf("got %v, want ErrDigestMismatch", err)
	}
	if ok, _ := s.Exists(ctx, sum); ok {
		t.Fatal("mismatched blob became visible")
	}
}

func testSizeMismatch(t *testing.T, s central.BlobStore) {
	data := []byte("twelve bytes")
	sum := Sum(data)
	for _, size := range []int64{int64(len(data)) - 1, int64(len(data)) + 1} {
		if _, err := s.Put(ctx, sum, bytes.NewReader(data), size); !errors.Is(err, central.ErrSizeMismatch) {
			t.Fatalf("size %d: got %v, want ErrSizeMismatch", size, err)
		}
	}
	if ok, _ := s.Exists(ctx, sum); ok {
		t.Fatal("blob of the wrong size became visible")
	}
}

func testInvalidDigest(t *testing.T, s central.BlobStore) {
	for _, sum := range []string{"", "../../../etc/passwd", strings.Repeat("A", 64), strings.Repeat("a", 63), strings.Repeat("a", 63) + "/", "..%2f" + strings.Repeat("a", 59)} {
		if _, err := s.Put(ctx, sum, strings.NewReader("x"), 1); plume.ErrorCode(err) != plume.EINVALID {
			t.Errorf("put %q: got %v, want invalid", sum, err)
		}
		if _, _, err := s.Open(ctx, sum); plume.ErrorCode(err) != plume.EINVALID {
			t.Errorf("open %q: got %v, want invalid", sum, err)
		}
		if _, err := s.Stat(ctx, sum); plume.ErrorCode(err) != plume.EINVALID {
			t.Errorf("stat %q: got %v, want invalid", sum, err)
		}
	}
}

func testNotFound(t *testing.T, s central.BlobStore) {
	sum := Sum([]byte("never stored"))
	if _, _, err := s.Open(ctx, sum); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("open: %v", err)
	}
	if _, err := s.Stat(ctx, sum); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("stat: %v", err)
	}
	if ok, err := s.Exists(ctx, sum); ok || err != nil {
		t.Fatalf("exists: %v %v", ok, err)
	}
}

func testConcurrent(t *testing.T, s central.BlobStore) {
	data := bytes.Repeat([]byte{7}, 1<<20)
	sum := Sum(data)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := s.Put(ctx, sum, bytes.NewReader(data), int64(len(data)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if st, err := s.Stat(ctx, sum); err != nil || st.Size != int64(len(data)) {
		t.Fatalf("after concurrent puts: %+v %v", st, err)
	}
}

func testCancelled(t *testing.T, s central.BlobStore) {
	data := []byte("cancelled upload")
	sum := Sum(data)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Put(cctx, sum, bytes.NewReader(data), int64(len(data))); err == nil {
		t.Fatal("put with a cancelled context succeeded")
	}
	if ok, _ := s.Exists(ctx, sum); ok {
		t.Fatal("cancelled upload became visible")
	}
}
