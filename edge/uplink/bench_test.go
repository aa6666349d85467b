package uplink_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/plume-emissions/plume/edge/spool/spooltest"
)

const benchItem = 4 << 20

// BenchmarkUplinkThroughput measures delivering one evidence item with a
// 4 MiB media file over loopback: signed blob PUT streamed from the spool
// file, signed manifest PUT, spool bookkeeping, and the fake central's
// digest and signature checks. Compare with BenchmarkPlainPUT.
func BenchmarkUplinkThroughput(b *testing.B) {
	e := newEnv(b)
	cfg := e.config(b)
	cfg.Logger = nil
	u := newUplink(b, cfg)
	item := bytes.Repeat([]byte{0x5a}, benchItem)
	ctx := context.Background()
	b.SetBytes(benchItem)
	i := 0
	for b.Loop() {
		b.StopTimer()
		binary.BigEndian.PutUint64(item, uint64(i))
		spooltest.AddEvidence(b, e.spool, e.key, t0.Add(time.Duration(i)*time.Second), item)
		b.StartTimer()
		if err := u.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if st := e.spool.Stats(); st.QueuedEvidence != 0 {
		b.Fatalf("left %d queued", st.QueuedEvidence)
	}
}

// BenchmarkPlainPUT is the baseline: an unsigned PUT of the same bytes from
// memory to a handler that hashes them, as the fake central does.
func BenchmarkPlainPUT(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		_, _ = io.Copy(h, r.Body)
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	item := bytes.Repeat([]byte{0x5a}, benchItem)
	b.SetBytes(benchItem)
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/blob", bytes.NewReader(item))
		resp, err := srv.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
