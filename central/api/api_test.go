package api_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/api"
	"github.com/plume-emissions/plume/central/blob"
	"github.com/plume-emissions/plume/central/ingest"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/metrics"
	"github.com/plume-emissions/plume/central/store"
)

// env is an API over a real bbolt store and blob directory, served on
// loopback.
type env struct {
	srv   *httptest.Server
	store *store.Store
	blobs *blob.Store
	cases []plume.CaseID
}

const (
	stationA = plume.StationID("GD-SZ-0001")
	stationB = plume.StationID("GD-SZ-0002")
)

func newEnv(tb testing.TB, skew time.Duration) *env {
	tb.Helper()
	dir := tb.TempDir()
	st, err := store.Open(filepath.Join(dir, store.FileName), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	bs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{store: st, blobs: bs}
	m := metrics.New()
	svc := ingest.New(ingest.Config{Store: st, Blobs: bs, Metrics: m, OnCase: func(id plume.CaseID) { e.cases = append(e.cases, id) }})
	e.srv = httptest.NewServer(api.New(api.Config{Store: st, Blobs: bs, Ingest: svc, Metrics: m, AllowedSkew: skew}))
	tb.Cleanup(e.srv.Close)
	for _, id := range []plume.StationID{stationA, stationB} {
		if err := st.PutStation(context.Background(), &central.Station{ID: id, PublicKey: fixture.Key(string(id)).Public().(ed25519.PublicKey), EnrolledAt: time.Now()}); err != nil {
			tb.Fatal(err)
		}
	}
	return e
}

func (e *env) client(station plume.StationID) *fixture.Client {
	return &fixture.Client{BaseURL: e.srv.URL, Station: station, Key: fixture.Key(string(station))}
}

func expect(tb testing.TB, r *fixture.Response, err error, status int, code string) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
	if r.Status != status || (code != "" && r.ErrorCode() != code) {
		tb.Fatalf("got %s, want %d %s", r, status, code)
	}
	if code != "" && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		tb.Fatalf("error is not JSON: %v", r.Header)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, 5*time.Minute)
	if err := e.store.PutStation(context.Background(), &central.Station{ID: "GD-SZ-0003", PublicKey: fixture.Key("GD-SZ-0003").Public().(ed25519.PublicKey), Revoked: true}); err != nil {
		t.Fatal(err)
	}
	recs := fixture.Records(stationA, fixture.Epoch, 2)
	for _, tc := range []struct {
		name   string
		client func() *fixture.Client
		path   string
		status int
		code   string
	}{
		{"OK", func() *fixture.Client { return e.client(stationA) }, "", 200, ""},
		{"ErrUnknownStation", func() *fixture.Client {
			c := e.client("GD-SZ-0404")
			return c
		}, "/api/v1/stations/GD-SZ-0404/records/b1", 401, plume.EUNAUTHORIZED},
		{"ErrRevokedStation", func() *fixture.Client { return e.client("GD-SZ-0003") }, "/api/v1/stations/GD-SZ-0003/records/b1", 401, plume.EUNAUTHORIZED},
		{"ErrBadSignature", func() *fixture.Client {
			c := e.client(stationA)
			c.Key = fixture.Key("impostor")
			return c
		}, "", 401, plume.EUNAUTHORIZED},
		{"ErrMissingSignature", func() *fixture.Client {
			c := e.client(stationA)
			c.Mutate = func(r *http.Request) { r.Header.Del(plume.HeaderSignature) }
			return c
		}, "", 401, plume.EUNAUTHORIZED},
		{"ErrSignedOtherPath", func() *fixture.Client {
			c := e.client(stationA)
			c.Mutate = func(r *http.Request) { r.URL.Path = strings.Replace(r.URL.Path, "/b1", "/b2", 1) }
			return c
		}, "", 401, plume.EUNAUTHORIZED},
		{"ErrSkewPast", func() *fixture.Client {
			c := e.client(stationA)
			c.Now = func() time.Time { return time.Now().Add(-6 * time.Minute) }
			return c
		}, "", 401, plume.EUNAUTHORIZED},
		{"ErrSkewFuture", func() *fixture.Client {
			c := e.client(stationA)
			c.Now = func() time.Time { return time.Now().Add(6 * time.Minute) }
			return c
		}, "", 401, plume.EUNAUTHORIZED},
		{"OKWithinSkew", func() *fixture.Client {
			c := e.client(stationA)
			c.Now = func() time.Time { return time.Now().Add(-4 * time.Minute) }
			return c
		}, "", 200, ""},
		{"ErrBodyDigestMismatch", func() *fixture.Client {
			c := e.client(stationA)
			c.Mutate = func(r *http.Request) {
				r.Body = io.NopCloser(strings.NewReader(`{"records":[]}`))
				r.ContentLength = int64(len(`{"records":[]}`))
			}
			return c
		}, "", 401, plume.EUNAUTHORIZED},
		{"ErrWriteAsOtherStation", func() *fixture.Client { return e.client(stationA) }, "/api/v1/stations/GD-SZ-0002/records/b1", 403, plume.EFORBIDDEN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.client()
			path := tc.path
			if path == "" {
				path = "/api/v1/stations/GD-SZ-0001/records/b1"
			}
			body, _ := json.Marshal(map[string]any{"records": recs})
			if strings.Contains(path, "GD-SZ-0002") {
				body, _ = json.Marshal(map[string]any{"records": fixture.Records(stationB, fixture.Epoch, 1)})
			}
			r, err := c.Do(http.MethodPut, path, body, nil)
			expect(t, r, err, tc.status, tc.code)
		})
	}
}

func TestPutBlob(t *testing.T) {
	e := newEnv(t, 0)
	c := e.client(stationA)
	m := fixture.NewMedia("scene-1.jpg", plume.MediaScene, []byte("jpeg bytes"), fixture.Epoch)
	r, err := c.PutBlob(m)
	expect(t, r, err, 201, "")
	if !strings.Contains(string(r.Body), `"size":10`) || !strings.Contains(string(r.Body), m.Ref.SHA256) {
		t.Fatalf("response %s", r)
	}
	r, err = c.PutBlob(m)
	expect(t, r, err, 200, "")

	t.Run("ErrBodyDigestMismatch", func(t *testing.T) {
		bad := fixture.NewMedia("x.jpg", plume.MediaScene, []byte("other bytes"), fixture.Epoch)
		r, err := c.Do(http.MethodPut, "/api/v1/stations/GD-SZ-0001/blobs/"+bad.Ref.SHA256, []byte("tampered!!!"), nil)
		if err != nil {
			t.Fatal(err)
		}
		// The client signs the digest of what it sends, so the path and
		// header digests differ: refused as malformed.
		expect(t, r, err, 400, plume.EINVALID)
		c2 := e.client(stationA)
		c2.Mutate = func(req *http.Request) {
			req.Body = io.NopCloser(strings.NewReader("tampered!!!"))
			req.ContentLength = 11
		}
		r, err = c2.Do(http.MethodPut, "/api/v1/stations/GD-SZ-0001/blobs/"+bad.Ref.SHA256, bad.Data, nil)
		expect(t, r, err, 401, plume.EUNAUTHORIZED)
		if ok, _ := e.blobs.Exists(context.Background(), bad.Ref.SHA256); ok {
			t.Fatal("mismatched blob stored")
		}
	})
	t.Run("ErrBadDigest", func(t *testing.T) {
		r, err := c.Do(http.MethodPut, "/api/v1/stations/GD-SZ-0001/blobs/NOT-A-DIGEST", []byte("x"), nil)
		expect(t, r, err, 400, plume.EINVALID)
	})
	t.Run("ErrTooLarge", func(t *testing.T) {
		// Declare a body over the limit; central must refuse it from the
		// headers without reading 600 MB.
		sum := strings.Repeat("ab", 32)
		path := "/api/v1/stations/GD-SZ-0001/blobs/" + sum
		date := plume.FormatRequestDate(time.Now())
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: 600000000\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n\r\n", path,
			plume.HeaderStation, stationA, plume.HeaderDate, date, plume.HeaderContentSHA256, sum,
			plume.HeaderSignature, plume.SignRequest(fixture.Key(string(stationA)), "PUT", path, date, sum))
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 413 || !strings.Contains(string(b), plume.ETOOLARGE) {
			t.Fatalf("got %d %s", resp.StatusCode, b)
		}
	})
}

func TestPutEvidence(t *testing.T) {
	e := newEnv(t, 0)
	c := e.client(stationA)
	ev := fixture.NewEvidence(t, c.Key, stationA, fixture.Epoch, 1, true, 2)

	// Manifest first: central lists exactly the media it lacks.
	r, err := c.PutManifest(ev)
	expect(t, r, err, 409, plume.EMISSINGMEDIA)
	var mm struct{ Missing []string }
	r.JSON(&mm)
	if len(mm.Missing) != 2 || mm.Missing[0] != ev.Media[0].Ref.SHA256 || mm.Missing[1] != ev.Media[1].Ref.SHA256 {
		t.Fatalf("missing %v", mm.Missing)
	}
	c.PutBlob(ev.Media[0])
	r, err = c.PutManifest(ev)
	expect(t, r, err, 409, plume.EMISSINGMEDIA)
	r.JSON(&mm)
	if len(mm.Missing) != 1 || mm.Missing[0] != ev.Media[1].Ref.SHA256 {
		t.Fatalf("missing %v", mm.Missing)
	}

	r, err = c.PutEvidence(ev)
	expect(t, r, err, 201, "")
	if len(e.cases) != 1 {
		t.Fatalf("cases opened: %v", e.cases)
	}
	r, err = c.PutManifest(ev)
	expect(t, r, err, 200, "")
	if !strings.Contains(string(r.Body), string(e.cases[0])) || len(e.cases) != 1 {
		t.Fatalf("replay %s, cases %v", r, e.cases)
	}

	t.Run("ErrConflict", func(t *testing.T) {
		other := fixture.NewEvidence(t, c.Key, stationA, fixture.Epoch, 1, true, 1) // same pass, different media
		r, err := c.PutEvidence(other)
		expect(t, r, err, 409, plume.ECONFLICT)
	})
	t.Run("ErrForgedCaptureSignature", func(t *testing.T) {
		forged := fixture.NewEvidence(t, fixture.Key("impostor"), stationA, fixture.Epoch.Add(time.Second), 1, true, 1)
		r, err := c.PutEvidence(forged)
		expect(t, r, err, 400, plume.EINVALID)
	})
	t.Run("ErrEvidenceOfOtherStation", func(t *testing.T) {
		// Signed with A's own key, but claims to be B's evidence, uploaded
		// under A's path.
		foreign := fixture.NewEvidence(t, c.Key, stationB, fixture.Epoch, 1, true, 0)
		r, err := c.Do(http.MethodPut, "/api/v1/stations/GD-SZ-0001/evidence/"+string(foreign.Manifest.ID), foreign.Body,
			map[string]string{plume.HeaderManifestSignature: base64.StdEncoding.EncodeToString(foreign.Sig)})
		expect(t, r, err, 403, plume.EFORBIDDEN)
	})
	t.Run("ErrIDMismatch", func(t *testing.T) {
		ev2 := fixture.NewEvidence(t, c.Key, stationA, fixture.Epoch.Add(2*time.Second), 1, true, 0)
		r, err := c.Do(http.MethodPut, "/api/v1/stations/GD-SZ-0001/evidence/"+string(ev.Manifest.ID), ev2.Body,
			map[string]string{plume.HeaderManifestSignature: base64.StdEncoding.EncodeToString(ev2.Sig)})
		expect(t, r, err, 400, plume.EINVALID)
	})
	t.Run("ErrBadManifest", func(t *testing.T) {
		body := []byte(`{"schema":"plume.evidence/v1","surprise":1}`)
		r, err := c.Do(http.MethodPut, "/api/v1/stations/GD-SZ-0001/evidence/"+string(ev.Manifest.ID), body,
			map[string]string{plume.HeaderManifestSignature: base64.StdEncoding.EncodeToString(ed25519.Sign(c.Key, body))})
		expect(t, r, err, 400, plume.EINVALID)
	})
	t.Run("ErrMissingCaptureSignature", func(t *testing.T) {
		r, err := c.Do(http.MethodPut, "/api/v1/stations/GD-SZ-0001/evidence/"+string(ev.Manifest.ID), ev.Body, nil)
		expect(t, r, err, 400, plume.EINVALID)
	})
	t.Run("ErrTooLarge", func(t *testing.T) {
		body := []byte(strings.Repeat(" ", ingest.MaxManifestSize+1))
		r, err := c.Do(http.MethodPut, "/api/v1/stations/GD-SZ-0001/evidence/"+string(ev.Manifest.ID), body,
			map[string]string{plume.HeaderManifestSignature: base64.StdEncoding.EncodeToString(ed25519.Sign(c.Key, body))})
		expect(t, r, err, 413, plume.ETOOLARGE)
	})
}

func TestPutRecords(t *testing.T) {
	e := newEnv(t, 0)
	c := e.client(stationA)
	recs := fixture.Records(stationA, fixture.Epoch, 30)
	r, err := c.PutRecords("batch-1", recs[:20])
	expect(t, r, err, 200, "")
	if string(r.Body) != "{\"accepted\":20,\"duplicates\":0}\n" {
		t.Fatalf("%s", r)
	}
	r, err = c.PutRecords("batch-2", recs[10:])
	expect(t, r, err, 200, "")
	if string(r.Body) != "{\"accepted\":10,\"duplicates\":10}\n" {
		t.Fatalf("%s", r)
	}
	t.Run("ErrRecordOfOtherStation", func(t *testing.T) {
		r, err := c.PutRecords("batch-3", append(fixture.Records(stationA, fixture.Epoch.Add(time.Hour), 1), fixture.Records(stationB, fixture.Epoch, 1)...))
		expect(t, r, err, 403, plume.EFORBIDDEN)
	})
	t.Run("ErrBadBatchName", func(t *testing.T) {
		r, err := c.PutRecords("batch.1", recs[:1])
		expect(t, r, err, 400, plume.EINVALID)
	})
	t.Run("ErrTooManyRecords", func(t *testing.T) {
		r, err := c.PutRecords("big", fixture.Records(stationA, fixture.Epoch, 1001))
		expect(t, r, err, 413, plume.ETOOLARGE)
	})
	t.Run("ErrBodyTooLarge", func(t *testing.T) {
		body := []byte(`{"records":[]}` + strings.Repeat(" ", ingest.MaxBatchSize))
		r, err := c.Do(http.MethodPut, "/api/v1/stations/GD-SZ-0001/records/huge", body, nil)
		expect(t, r, err, 413, plume.ETOOLARGE)
	})
	t.Run("ErrInvalidRecord", func(t *testing.T) {
		bad := fixture.Records(stationA, fixture.Epoch.Add(2*time.Hour), 1)
		bad[0].Pass.Reading.Lane = 99
		r, err := c.PutRecords("bad", bad)
		expect(t, r, err, 400, plume.EINVALID)
	})
}

func get(tb testing.TB, e *env, path string, status int, v any) {
	tb.Helper()
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		tb.Fatalf("GET %s: %d %s, want %d", path, resp.StatusCode, b, status)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			tb.Fatalf("GET %s: %v in %s", path, err, b)
		}
	}
}

func TestReadAPI(t *testing.T) {
	e := newEnv(t, 0)
	a, b := e.client(stationA), e.client(stationB)
	if r, err := a.PutRecords("r1", fixture.Records(stationA, fixture.Epoch, 12)); err != nil || r.Status != 200 {
		t.Fatalf("%s %v", r, err)
	}
	if r, err := b.PutRecords("r1", fixture.Records(stationB, fixture.Epoch, 3)); err != nil || r.Status != 200 {
		t.Fatalf("%s %v", r, err)
	}
	for i := range 3 {
		if r, err := a.PutEvidence(fixture.NewEvidence(t, a.Key, stationA, fixture.Epoch.Add(time.Duration(i)*time.Second), 1, true, 1)); err != nil || r.Status != 201 {
			t.Fatalf("%s %v", r, err)
		}
	}

	var stations struct{ Stations []central.Station }
	get(t, e, "/api/v1/stations", 200, &stations)
	if len(stations.Stations) != 2 || stations.Stations[0].ID != stationA {
		t.Fatalf("stations %+v", stations)
	}
	var st central.Station
	get(t, e, "/api/v1/stations/GD-SZ-0002", 200, &st)
	if st.ID != stationB || len(st.PublicKey) != ed25519.PublicKeySize {
		t.Fatalf("station %+v", st)
	}
	get(t, e, "/api/v1/stations/GD-SZ-0404", 404, nil)

	type passPage struct {
		Passes     []central.PassRow
		NextCursor string `json:"next_cursor"`
	}
	var seen []central.PassRow
	cursor := ""
	for {
		var p passPage
		get(t, e, "/api/v1/passes?station=GD-SZ-0001&limit=5&cursor="+cursor, 200, &p)
		seen = append(seen, p.Passes...)
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if len(seen) != 12 {
		t.Fatalf("paged %d passes, want 12", len(seen))
	}
	var exceed passPage
	get(t, e, "/api/v1/passes?outcome=exceed", 200, &exceed)
	if len(exceed.Passes) != 4+1 {
		t.Fatalf("%d exceeding passes", len(exceed.Passes))
	}
	get(t, e, "/api/v1/passes?outcome=maybe", 400, nil)
	get(t, e, "/api/v1/passes?limit=-1", 400, nil)
	get(t, e, "/api/v1/passes?cursor=zzz", 400, nil)

	var cases struct {
		Cases      []central.Case
		NextCursor string `json:"next_cursor"`
	}
	get(t, e, "/api/v1/cases?station=GD-SZ-0001&status=open&limit=2", 200, &cases)
	if len(cases.Cases) != 2 || cases.NextCursor == "" || cases.Cases[0].ID <= cases.Cases[1].ID {
		t.Fatalf("cases %+v", cases)
	}
	get(t, e, "/api/v1/cases?station=GD-SZ-0002", 200, &cases)
	if len(cases.Cases) != 0 {
		t.Fatalf("station filter: %+v", cases)
	}
	var one api.CaseView
	// Sorted by plate, descending, one per page: every case once, ordered.
	var sorted []central.Case
	for cursor := ""; ; {
		var page struct {
			Cases []central.Case `json:"cases"`
			Next  string         `json:"next_cursor"`
		}
		get(t, e, "/api/v1/cases?sort=-plate&limit=1&cursor="+url.QueryEscape(cursor), 200, &page)
		sorted = append(sorted, page.Cases...)
		if cursor = page.Next; cursor == "" || len(sorted) > len(e.cases) {
			break
		}
	}
	if len(sorted) != len(e.cases) {
		t.Fatalf("sorted pages: %d cases, want %d", len(sorted), len(e.cases))
	}
	for i := 1; i < len(sorted); i++ {
		if a, b := sorted[i-1], sorted[i]; a.Plate < b.Plate || (a.Plate == b.Plate && a.ID < b.ID) {
			t.Fatalf("sort=-plate: %s (%s) before %s (%s)", a.ID, a.Plate, b.ID, b.Plate)
		}
	}
	get(t, e, "/api/v1/cases?sort=doc", 400, nil)
	get(t, e, "/api/v1/cases/"+string(e.cases[0]), 200, &one)
	if one.Number == "" || len(one.Custody) != 3 || one.PackageURL != "" {
		t.Fatalf("case %+v", one)
	}
	get(t, e, "/api/v1/cases/"+string(e.cases[0])+"/package", 404, nil)
	get(t, e, "/api/v1/cases/C99999999999", 404, nil)
	var notFound struct {
		Error struct{ Code, Message string }
	}
	get(t, e, "/api/v1/nothing-here", 404, &notFound)
	if notFound.Error.Code != plume.ENOTFOUND {
		t.Fatalf("unknown route: %+v", notFound)
	}
	var health struct{ Status string }
	get(t, e, "/healthz", 200, &health)
	if health.Status != "ok" {
		t.Fatal(health)
	}

	resp, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`plume_central_ingest_total{kind="evidence",outcome="created"} 3`,
		`plume_central_ingest_total{kind="record",outcome="created"} 15`,
		`plume_central_api_errors_total{code="not_found"}`,
		`plume_central_capture_to_case_seconds_count 3`,
	} {
		if !strings.Contains(string(metricsText), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// Internal errors are logged, never shown: a store that fails shows
// "Internal error." with code internal.
func TestInternalErrorHidden(t *testing.T) {
	e := newEnv(t, 0)
	e.store.Close() // every store call now fails with bbolt's "database not open"
	resp, err := http.Get(e.srv.URL + "/api/v1/stations")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 500 || string(b) != "{\"error\":{\"code\":\"internal\",\"message\":\"Internal error.\"}}\n" {
		t.Fatalf("got %d %s", resp.StatusCode, b)
	}
}
