package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/evidence"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/central/store"
)

// mustOpen starts central on a free loopback port in dir.
func mustOpen(tb testing.TB, dir string, mutate ...func(*server.Config)) *server.Server {
	tb.Helper()
	cfg := server.NewConfig()
	cfg.Addr, cfg.DataDir = "127.0.0.1:0", dir
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := server.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// enrollClient enrolls station with a generated key and returns a client
// built from the enrollment file, as the edge would.
func enrollClient(tb testing.TB, s *server.Server, station plume.StationID) *fixture.Client {
	tb.Helper()
	e, err := s.Enroll(context.Background(), station, "gantry "+string(station), nil)
	if err != nil {
		tb.Fatal(err)
	}
	b, _ := server.EncodeEnrollment(e)
	e, err = plume.DecodeEnrollment(b)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := e.PrivateKey()
	if err != nil {
		tb.Fatal(err)
	}
	if ck, _ := e.CentralPublicKey(); !ck.Equal(s.PublicKey()) || e.CentralURL != s.URL() {
		tb.Fatalf("enrollment: central key or URL wrong: %+v", e)
	}
	return &fixture.Client{BaseURL: e.CentralURL, Station: e.Station, Key: key}
}

// readToken returns an API bearer token of an auditor of s, creating the
// auditor the first time: central serves no anonymous reads.
func readToken(tb testing.TB, s *server.Server) string {
	tb.Helper()
	ctx := context.Background()
	err := s.CreateOfficer(ctx, &central.Officer{Username: "reader", Name: "Test reader", Role: central.RoleAuditor}, "reader-password-1")
	if err != nil && plume.ErrorCode(err) != plume.ECONFLICT {
		tb.Fatal(err)
	}
	tok, err := s.IssueToken(ctx, "reader", "server tests")
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// signedGet GETs path at s with an auditor's bearer token.
func signedGet(tb testing.TB, s *server.Server, path string) *http.Response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL()+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+readToken(tb, s))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

// getJSON GETs path at s signed in and decodes the JSON answer into v.
func getJSON(tb testing.TB, s *server.Server, path string, v any) int {
	tb.Helper()
	resp := signedGet(tb, s, path)
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode
}

func waitIdle(tb testing.TB, s *server.Server) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitIdle(ctx); err != nil {
		tb.Fatal(err)
	}
}

// The vertical slice: a station uploads evidence of an exceedance; central
// opens a case, builds the package, serves it, and it verifies offline
// against central's pinned key.
func TestIngestToVerifiedPackage(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	c := enrollClient(t, s, "GD-SZ-0001")
	ev := fixture.NewEvidence(t, c.Key, c.Station, time.Now().Add(-time.Minute), 1, true, 3)
	resp, err := c.PutEvidence(ev)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusCreated {
		t.Fatalf("manifest: %s", resp)
	}
	var out struct {
		ID   plume.EvidenceID `json:"id"`
		Case plume.CaseID     `json:"case"`
	}
	resp.JSON(&out)
	if out.ID != ev.Manifest.ID || out.Case == "" {
		t.Fatalf("response %s", resp)
	}
	if resp.Header.Get("Date") == "" {
		t.Fatal("response lacks a Date header")
	}
	waitIdle(t, s)

	var view struct {
		central.Case
		Custody    []central.CustodyEntry `json:"custody"`
		PackageURL string                 `json:"package_url"`
	}
	if st := getJSON(t, s, "/api/v1/cases/"+string(out.Case), &view); st != http.StatusOK {
		t.Fatalf("case: %d", st)
	}
	if view.PackageSHA256 == "" || view.PackageURL == "" || !strings.HasPrefix(view.Number, "PLM-") {
		t.Fatalf("case view %+v", view)
	}
	if len(view.Custody) != 4 || view.Custody[3].Action != central.ActionPackageBuilt {
		t.Fatalf("custody %+v", view.Custody)
	}

	pkgResp := signedGet(t, s, view.PackageURL)
	pkg, _ := io.ReadAll(pkgResp.Body)
	pkgResp.Body.Close()
	if pkgResp.StatusCode != http.StatusOK || pkgResp.Header.Get("Content-Type") != "application/zip" ||
		pkgResp.Header.Get("Content-Disposition") != `attachment; filename="`+view.Number+`.zip"` {
		t.Fatalf("package response %d %v", pkgResp.StatusCode, pkgResp.Header)
	}
	if plume.ContentSHA256(pkg) != view.PackageSHA256 || int64(len(pkg)) != view.PackageSize {
		t.Fatal("downloaded package does not match the case's digest")
	}
	rep, err := evidence.Verify(bytes.NewReader(pkg), int64(len(pkg)), evidence.VerifyOptions{CentralKey: s.PublicKey()})
	if err != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	if rep.CaseNumber != view.Number {
		t.Fatalf("report case %q", rep.CaseNumber)
	}
	st, _ := s.Stats(context.Background())
	if st.Cases != 1 || st.PackagesBuilt != 1 || st.PendingJobs != 0 || st.Evidence != 1 {
		t.Fatalf("stats %+v", st)
	}

	// The same manifest again is harmless; the case does not double.
	again, _ := c.PutEvidence(ev)
	if again.Status != http.StatusOK || !strings.Contains(string(again.Body), string(out.Case)) {
		t.Fatalf("replay: %s", again)
	}
}

func TestPassWithinLimitsOpensNoCase(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	c := enrollClient(t, s, "GD-SZ-0001")
	resp, err := c.PutEvidence(fixture.NewEvidence(t, c.Key, c.Station, time.Now(), 1, false, 1))
	if err != nil || resp.Status != http.StatusCreated || !strings.Contains(string(resp.Body), `"case":""`) {
		t.Fatalf("%s %v", resp, err)
	}
	if st, _ := s.Stats(context.Background()); st.Cases != 0 || st.Evidence != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A central stopped before its builds ran builds them on the next start.
func TestRestartResumesPendingBuilds(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, func(c *server.Config) { c.PackageWorkers = -1 })
	c := enrollClient(t, s, "GD-SZ-0001")
	for i := range 3 {
		ev := fixture.NewEvidence(t, c.Key, c.Station, time.Now().Add(time.Duration(i)*time.Second), 1, true, 2)
		if r, err := c.PutEvidence(ev); err != nil || r.Status != http.StatusCreated {
			t.Fatalf("%s %v", r, err)
		}
	}
	if st, _ := s.Stats(context.Background()); st.PendingJobs != 3 || st.PackagesBuilt != 0 {
		t.Fatalf("before restart: %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Leave a half-written package behind, as a crash would.
	os.WriteFile(filepath.Join(dir, "tmp", "package-123.zip"), []byte("PK half"), 0o600)

	s = mustOpen(t, dir)
	waitIdle(t, s)
	st, _ := s.Stats(context.Background())
	if st.PackagesBuilt != 3 || st.PendingJobs != 0 {
		t.Fatalf("after restart: %+v", st)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "tmp", "*")); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
	var list struct {
		Cases []central.Case `json:"cases"`
	}
	getJSON(t, s, "/api/v1/cases", &list)
	for _, c := range list.Cases {
		resp := signedGet(t, s, "/api/v1/cases/"+string(c.ID)+"/package")
		pkg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if _, err := evidence.Verify(bytes.NewReader(pkg), int64(len(pkg)), evidence.VerifyOptions{CentralKey: s.PublicKey()}); err != nil {
			t.Fatalf("case %s: %v", c.Number, err)
		}
	}
}

func TestPackageNotFoundUntilBuilt(t *testing.T) {
	s := mustOpen(t, t.TempDir(), func(c *server.Config) { c.PackageWorkers = -1 })
	c := enrollClient(t, s, "GD-SZ-0001")
	resp, _ := c.PutEvidence(fixture.NewEvidence(t, c.Key, c.Station, time.Now(), 1, true, 1))
	var out struct{ Case string }
	resp.JSON(&out)
	var e struct {
		Error struct{ Code string }
	}
	if st := getJSON(t, s, "/api/v1/cases/"+out.Case+"/package", &e); st != http.StatusNotFound || e.Error.Code != plume.ENOTFOUND {
		t.Fatalf("package before build: %d %+v", st, e)
	}
}

func TestKeyPersists(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	pub := s.PublicKey()
	s.Close()
	fi, err := os.Stat(filepath.Join(dir, server.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v", fi, err)
	}
	s = mustOpen(t, dir)
	if !s.PublicKey().Equal(pub) {
		t.Fatal("central key changed across restarts")
	}
}

func TestEnrollDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	mustOpen(t, dir)
	start := time.Now()
	_, err := server.EnrollDataDir(context.Background(), dir, "http://central.example:8080", "GD-SZ-0009", "", nil, time.Now())
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("got %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v, want under a second", d)
	}
}

func TestEnrollDataDirWithOwnKey(t *testing.T) {
	dir := t.TempDir()
	pub := fixture.Key("edge-made").Public().(ed25519.PublicKey)
	e, err := server.EnrollDataDir(context.Background(), dir, "http://central.example:8080", "GD-SZ-0009", "north gantry", pub, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if e.StationKey != "" || e.CentralURL != "http://central.example:8080" {
		t.Fatalf("enrollment %+v", e)
	}
	if _, err := server.EnrollDataDir(context.Background(), dir, "http://central.example:8080", "GD-SZ-0009", "", pub, time.Now()); plume.ErrorCode(err) != plume.ECONFLICT {
		t.Fatalf("second enrollment: %v", err)
	}
	s := mustOpen(t, dir)
	var st central.Station
	if code := getJSON(t, s, "/api/v1/stations/GD-SZ-0009", &st); code != http.StatusOK || !st.PublicKey.Equal(pub) || st.Name != "north gantry" {
		t.Fatalf("station %d %+v", code, st)
	}
	if ck, _ := e.CentralPublicKey(); !ck.Equal(s.PublicKey()) {
		t.Fatal("enrollment's central key is not the key the server uses")
	}
}

// Every read of the API needs a session or token: on loopback, before any
// officer exists, as well as after.
func TestAnonymousReadsRefused(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	enrollClient(t, s, "GD-SZ-0001")
	paths := []string{"/api/v1/cases", "/api/v1/passes", "/api/v1/stations", "/api/v1/stations/GD-SZ-0001", "/api/v1/cases/C00000000001", "/api/v1/cases/C00000000001/package"}
	check := func(when string) {
		t.Helper()
		for _, p := range paths {
			resp, err := http.Get(s.URL() + p)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), plume.EUNAUTHORIZED) {
				t.Errorf("%s: anonymous GET %s: %d %s, want 401 %s", when, p, resp.StatusCode, b, plume.EUNAUTHORIZED)
			}
		}
	}
	if officers, err := s.Store().Officers(context.Background()); err != nil || len(officers) != 0 {
		t.Fatalf("officers before the check: %v %v", officers, err)
	}
	check("no officers, loopback")
	// A bearer token opens the same reads.
	if resp := signedGet(t, s, "/api/v1/cases"); resp.StatusCode != http.StatusOK {
		t.Fatalf("signed read: %d", resp.StatusCode)
	}
	check("with an officer")
}
