package uplink_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/spool"
	"github.com/plume-emissions/plume/edge/spool/spooltest"
	"github.com/plume-emissions/plume/edge/uplink"
)

var t0 = time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)

type env struct {
	central *fakeCentral
	srv     *httptest.Server
	spool   *spool.Spool
	key     ed25519.PrivateKey
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	key := spooltest.Key()
	c := newFakeCentral(tb, key.Public().(ed25519.PublicKey))
	srv := httptest.NewServer(c)
	tb.Cleanup(srv.Close)
	return &env{central: c, srv: srv, spool: spooltest.Open(tb, spool.Options{}), key: key}
}

func (e *env) config(tb testing.TB) uplink.Config {
	return uplink.Config{CentralURL: e.srv.URL, Station: spooltest.Station, Key: e.key, Spool: e.spool,
		Logger: spooltest.Logger(tb), BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		PollInterval: 20 * time.Millisecond, RecordBatch: 200}
}

func newUplink(tb testing.TB, cfg uplink.Config) *uplink.Uplink {
	tb.Helper()
	u, err := uplink.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// flush drains the spool within a deadline.
func flush(tb testing.TB, u *uplink.Uplink, d time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := u.Flush(ctx); err != nil {
		tb.Fatalf("flush: %v (stats %+v)", err, u.Stats())
	}
}

func fill(tb testing.TB, e *env, evidence, records int) []*plume.Manifest {
	tb.Helper()
	var ms []*plume.Manifest
	for i := range evidence {
		at := t0.Add(time.Duration(i) * time.Second)
		ms = append(ms, spooltest.AddEvidence(tb, e.spool, e.key, at, []byte(fmt.Sprintf("scene %d", i)), []byte("shared plate crop")))
	}
	for i := range records {
		if err := e.spool.AddRecord(context.Background(), spooltest.Record(t0.Add(time.Duration(i)*time.Minute+time.Millisecond), plume.OutcomePass)); err != nil {
			tb.Fatal(err)
		}
	}
	return ms
}

func TestDeliver(t *testing.T) {
	e := newEnv(t)
	ms := fill(t, e, 3, 450)
	cfg := e.config(t)
	cfg.Now = func() time.Time { return time.Now().Add(5 * time.Second) } // the edge clock runs 5 s fast
	u := newUplink(t, cfg)
	flush(t, u, 10*time.Second)

	man, recs, blobs := e.central.counts()
	if man != 3 || recs != 450 || blobs != 4 {
		t.Fatalf("central holds %d manifests, %d records, %d blobs", man, recs, blobs)
	}
	for _, m := range ms {
		if e.central.created[m.ID] != 1 {
			t.Fatalf("%s created %d times", m.ID, e.central.created[m.ID])
		}
	}
	if e.central.batches != 3 {
		t.Fatalf("%d record batches, want 3 of at most 200", e.central.batches)
	}
	st, sst := u.Stats(), e.spool.Stats()
	if st.EvidenceDelivered != 3 || st.RecordsDelivered != 450 || sst.QueuedEvidence != 0 || sst.QueuedRecords != 0 || sst.EvidenceDelivered != 3 {
		t.Fatalf("uplink %+v, spool %+v", st, sst)
	}
	off, ok := u.ClockOffset()
	if !ok || off < 3500*time.Millisecond || off > 6500*time.Millisecond {
		t.Fatalf("clock offset %v (%v), want about 5 s", off, ok)
	}
	if e.central.authFails != 0 {
		t.Fatalf("%d requests failed authentication", e.central.authFails)
	}
}

func TestRetryAfter503(t *testing.T) {
	e := newEnv(t)
	fill(t, e, 1, 0)
	var refused atomic.Int32
	e.central.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/evidence/") && refused.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			writeErr(w, 503, plume.EUNAVAILABLE, "busy", nil)
			return true
		}
		return false
	})
	u := newUplink(t, e.config(t))
	start := time.Now()
	flush(t, u, 10*time.Second)
	if el := time.Since(start); el < time.Second {
		t.Fatalf("retried after %v, before Retry-After: 1", el)
	}
	if man, _, _ := e.central.counts(); man != 1 || u.Stats().Retries < 1 {
		t.Fatalf("manifests %d, stats %+v", man, u.Stats())
	}
}

func TestServerDownThenUp(t *testing.T) {
	e := newEnv(t)
	e.srv.Close()
	// Reserve an address, then leave it closed: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	fill(t, e, 5, 300)
	cfg := e.config(t)
	cfg.CentralURL = "http://" + addr
	cfg.RetryMax = 1
	u := newUplink(t, cfg)
	done := make(chan error, 1)
	go func() { done <- u.Run(context.Background()) }()
	defer u.Close()

	waitFor(t, 10*time.Second, func() bool { return u.Stats().Failures >= 3 })
	if st := u.Stats(); st.Failures == 0 || st.EvidenceDelivered != 0 {
		t.Fatalf("while down: %+v", st)
	}
	// Only now may the spool fold pass records under pressure.
	if !e.spool.Stats().CentralUnreachable {
		t.Fatal("spool not told central is unreachable")
	}
	if e.spool.Stats().DeadLetters != 0 {
		t.Fatal("transport errors dead-lettered items")
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("address taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: e.central}
	go srv.Serve(ln)
	defer srv.Close()
	waitFor(t, 10*time.Second, func() bool {
		st := e.spool.Stats()
		return st.QueuedEvidence == 0 && st.QueuedRecords == 0
	})
	if man, recs, _ := e.central.counts(); man != 5 || recs != 300 {
		t.Fatalf("central holds %d manifests, %d records", man, recs)
	}
	if e.spool.Stats().CentralUnreachable {
		t.Fatal("spool still thinks central is unreachable")
	}
	u.Close()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestPermanent400DeadLetter(t *testing.T) {
	e := newEnv(t)
	ms := fill(t, e, 3, 0)
	bad := ms[1].ID
	e.central.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/evidence/"+string(bad)) {
			writeErr(w, 400, plume.EINVALID, "plate unreadable", nil)
			return true
		}
		return false
	})
	u := newUplink(t, e.config(t))
	flush(t, u, 10*time.Second)
	dl, err := e.spool.DeadLetters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 1 || dl[0].ID != string(bad) || !strings.Contains(dl[0].Reason, "invalid") || !strings.Contains(dl[0].Reason, "plate unreadable") {
		t.Fatalf("dead letters %+v", dl)
	}
	if man, _, _ := e.central.counts(); man != 2 {
		t.Fatalf("central holds %d manifests, want the 2 good ones", man)
	}
	// After the operator fixes central, a requeue delivers it.
	e.central.setHook(nil)
	if err := e.spool.Requeue(context.Background(), spool.KindEvidence, string(bad)); err != nil {
		t.Fatal(err)
	}
	flush(t, u, 10*time.Second)
	if man, _, _ := e.central.counts(); man != 3 {
		t.Fatalf("requeued item not delivered: %d", man)
	}
}

func TestBadRecordIsolated(t *testing.T) {
	e := newEnv(t)
	fill(t, e, 0, 10)
	var badID string
	items, _ := e.spool.PendingRecords(context.Background(), 10)
	badID = items[6].Record.ID
	e.central.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/records/") {
			return false
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if bytes.Contains(body, []byte(badID)) {
			writeErr(w, 400, plume.EINVALID, "record "+badID+" rejected", nil)
			return true
		}
		return false
	})
	u := newUplink(t, e.config(t))
	flush(t, u, 10*time.Second)
	_, recs, _ := e.central.counts()
	dl, _ := e.spool.DeadLetters(context.Background())
	if recs != 9 || len(dl) != 1 || dl[0].ID != badID {
		t.Fatalf("records %d, dead letters %+v", recs, dl)
	}
}

func TestMissingMedia409(t *testing.T) {
	e := newEnv(t)
	ms := fill(t, e, 1, 0)
	lost := ms[0].Media[0].SHA256
	var dropped atomic.Bool
	e.central.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		// Central loses the first blob once, right before the manifest.
		if strings.Contains(r.URL.Path, "/evidence/") && !dropped.Swap(true) {
			e.central.mu.Lock()
			delete(e.central.blobs, lost)
			e.central.mu.Unlock()
		}
		return false
	})
	u := newUplink(t, e.config(t))
	flush(t, u, 10*time.Second)
	if man, _, _ := e.central.counts(); man != 1 {
		t.Fatalf("manifest not stored after re-upload")
	}
	if n := e.central.blobPuts[lost]; n != 2 {
		t.Fatalf("lost blob uploaded %d times, want 2", n)
	}
	if e.spool.Stats().DeadLetters != 0 {
		t.Fatal("dead-lettered")
	}
}

func TestMissingMedia409_Twice(t *testing.T) {
	e := newEnv(t)
	fill(t, e, 1, 0)
	e.central.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/evidence/") {
			writeErr(w, 409, plume.EMISSINGMEDIA, "still missing", []string{strings.Repeat("0", 64)})
			return true
		}
		return false
	})
	u := newUplink(t, e.config(t))
	flush(t, u, 10*time.Second)
	if dl, _ := e.spool.DeadLetters(context.Background()); len(dl) != 1 || !strings.Contains(dl[0].Reason, "missing_media") {
		t.Fatalf("dead letters %+v", dl)
	}
}

func TestUnauthorizedRetries(t *testing.T) {
	e := newEnv(t)
	fill(t, e, 1, 5)
	cfg := e.config(t)
	_, cfg.Key, _ = ed25519.GenerateKey(nil) // not the enrolled key
	cfg.RetryMax = 1
	u := newUplink(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_ = u.Run(ctx)
	st := e.spool.Stats()
	if st.DeadLetters != 0 || st.QueuedEvidence != 1 || st.QueuedRecords != 5 || e.central.authFails < 2 {
		t.Fatalf("spool %+v, auth failures %d", st, e.central.authFails)
	}
	if !strings.Contains(u.Stats().LastError, "unauthorized") {
		t.Fatalf("last error %q", u.Stats().LastError)
	}
}

func TestRestartResumes(t *testing.T) {
	key := spooltest.Key()
	c := newFakeCentral(t, key.Public().(ed25519.PublicKey))
	var slow atomic.Bool
	slow.Store(true)
	c.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if slow.Load() {
			time.Sleep(20 * time.Millisecond)
		}
		return false
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	dir := t.TempDir()
	s, err := spool.Open(context.Background(), dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{central: c, srv: srv, spool: s, key: key}
	ms := fill(t, e, 20, 1000)
	u := newUplink(t, e.config(t))
	done := make(chan error, 1)
	go func() { done <- u.Run(context.Background()) }()
	waitFor(t, 10*time.Second, func() bool { m, _, _ := c.counts(); return m >= 5 })
	u.Close() // mid-run: an upload may be cut off
	<-done
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if m, _, _ := c.counts(); m == 20 {
		t.Fatal("everything was delivered before the restart; the test proves nothing")
	}

	slow.Store(false)
	e.spool = spooltest.OpenDir(t, dir, spool.Options{})
	u = newUplink(t, e.config(t))
	flush(t, u, 20*time.Second)
	man, recs, _ := c.counts()
	if man != 20 || recs != 1000 {
		t.Fatalf("after restart central holds %d manifests, %d records", man, recs)
	}
	for _, m := range ms {
		if c.created[m.ID] != 1 {
			t.Fatalf("%s stored %d times", m.ID, c.created[m.ID])
		}
	}
}

func TestLargeMediaStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 64 MiB")
	}
	e := newEnv(t)
	const size = 64 << 20
	// A sparse file stands in for a long clip.
	src, err := os.CreateTemp(t.TempDir(), "clip")
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Truncate(size); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sha, n, err := e.spool.PutMedia(ctx, src)
	src.Close()
	if err != nil || n != size {
		t.Fatalf("put media: %v %d", err, n)
	}
	p := spooltest.Pass(t0, plume.OutcomeExceed)
	m := &plume.Manifest{Schema: plume.ManifestSchema, ID: plume.EvidenceID(p.ID), Station: spooltest.Station, CapturedAt: t0,
		Pass: *p, Media: []plume.MediaRef{{Name: "clip.mp4", Kind: plume.MediaClip, SHA256: sha, Size: n, ContentType: "video/mp4", CapturedAt: t0}}}
	body, sig, _ := plume.SignManifest(e.key, m)
	if err := e.spool.AddEvidence(ctx, m, body, sig); err != nil {
		t.Fatal(err)
	}
	u := newUplink(t, e.config(t))

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	flush(t, u, 60*time.Second)
	runtime.ReadMemStats(&after)
	if e.central.blobs[sha] != size {
		t.Fatalf("central holds %d bytes", e.central.blobs[sha])
	}
	// Everything allocated during the upload, client and fake central
	// together, must stay far below the clip's size.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/8 {
		t.Fatalf("allocated %d MiB uploading a %d MiB clip", alloc>>20, size>>20)
	} else {
		t.Logf("allocated %d KiB uploading a %d MiB clip", alloc>>10, size>>20)
	}
}

func TestNewConfig(t *testing.T) {
	s := spooltest.Open(t, spool.Options{})
	for name, cfg := range map[string]uplink.Config{
		"NoSpool":    {CentralURL: "http://x", Station: spooltest.Station, Key: spooltest.Key()},
		"BadURL":     {CentralURL: "ftp://x", Station: spooltest.Station, Key: spooltest.Key(), Spool: s},
		"NoKey":      {CentralURL: "http://x", Station: spooltest.Station, Spool: s},
		"BadStation": {CentralURL: "http://x", Station: "", Key: spooltest.Key(), Spool: s},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := uplink.New(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestCheckRetry(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		status int
		retry  bool
	}{{200, false}, {201, false}, {400, false}, {401, true}, {403, false}, {404, false}, {409, false},
		{413, false}, {429, true}, {500, true}, {502, true}, {503, true}} {
		got, _ := uplink.CheckRetry(ctx, &http.Response{StatusCode: tc.status}, nil)
		if got != tc.retry {
			t.Errorf("status %d: retry %v, want %v", tc.status, got, tc.retry)
		}
	}
	if got, _ := uplink.CheckRetry(ctx, nil, errors.New("connection refused")); !got {
		t.Error("transport error not retried")
	}
}

func waitFor(tb testing.TB, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("timed out waiting")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
