package server_test

// The attacks of the security review (issue 14), each tried against a real
// central over HTTP and now refused. The finding numbers are the issue's.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/csv"
	"encoding/pem"
	"fmt"
	"hash/crc32"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/auth"
	"github.com/plume-emissions/plume/central/evidence"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/server"
)

// emptyTRNSPNG is the review's 79-byte PNG (1×1 grey, empty tRNS chunk)
// that panicked fpdf and took central down.
func emptyTRNSPNG() []byte {
	chunk := func(typ string, data []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		b = append(append(b, typ...), data...)
		return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
	}
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, chunk("IHDR", []byte{0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0})...)
	b = append(b, chunk("tRNS", nil)...)
	b = append(b, chunk("IDAT", []byte{0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01})...)
	return append(b, chunk("IEND", nil)...)
}

// putScenes uploads, as station c, an exceeding pass at t whose scene
// images are images, and returns the case it opened.
func putScenes(tb testing.TB, c *fixture.Client, t time.Time, images ...[]byte) plume.CaseID {
	tb.Helper()
	return putPass(tb, c, fixture.Pass(c.Station, t, 1, true), images...)
}

// putPass uploads, as station c, the pass p (judged however the station
// likes) with scene images, and returns the case it opened.
func putPass(tb testing.TB, c *fixture.Client, p plume.Pass, images ...[]byte) plume.CaseID {
	tb.Helper()
	var media []fixture.Media
	for i, b := range images {
		media = append(media, fixture.NewMedia(fmt.Sprintf("scene-%d.png", i+1), plume.MediaScene, b, p.ReceivedAt))
	}
	return putSigned(tb, c, p, p.ReceivedAt, "attacker", media)
}

// Finding 1: a hostile station's media neither crashes central nor blocks
// a case's package: the review's PNG and a not-really-JPEG are built into
// packages (the sheet notes the images that did not decode), and central
// keeps serving.
func TestSecurityHostileMedia(t *testing.T) {
	if _, err := evidence.LoadSheetFont(evidence.DefaultSheetFont); err != nil {
		t.Skipf("no sheet font, no PDF sheet to attack: %v", err)
	}
	r := newRig(t)
	trns := putScenes(t, r.a, fixture.Epoch, emptyTRNSPNG())
	fake := putScenes(t, r.a, fixture.Epoch.Add(time.Second), []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00 not really a JPEG"))
	good := putScenes(t, r.a, fixture.Epoch.Add(2*time.Second), sceneJPEG(t, 0))
	waitIdle(t, r.s)
	for _, id := range []plume.CaseID{trns, fake, good} {
		c, err := r.s.Store().Case(context.Background(), id)
		if err != nil || c.PackageSHA256 == "" {
			t.Fatalf("case %s: no package (%v)", id, err)
		}
	}
	jobs, _ := r.s.Store().Jobs(context.Background())
	if len(jobs) != 0 {
		t.Fatalf("jobs left: %+v", jobs)
	}
	admin := r.login(t, "admin")
	if resp, body := admin.get("/admin/officers"); resp.StatusCode != http.StatusOK || strings.Contains(body, "Failed package builds") {
		t.Fatalf("admin page: %d, failed builds shown: %v", resp.StatusCode, strings.Contains(body, "Failed package builds"))
	}
	// A build that fails for good is shown to the administrator, who can
	// retry it.
	st := r.s.Store()
	j, err := st.EnqueueJob(context.Background(), central.Job{Kind: central.JobBuildPackage, CaseID: trns, Attempts: 8, NotBefore: central.JobGaveUp, LastError: "gave up after 8 attempts: test"})
	if err != nil {
		t.Fatal(err)
	}
	_, body := admin.get("/admin/officers")
	if !strings.Contains(body, "Failed package builds") || !strings.Contains(body, "gave up after 8 attempts") {
		t.Fatal("the failed build is not shown to the administrator")
	}
	if resp := admin.post(fmt.Sprintf("/admin/jobs/%d/retry", j.ID), url.Values{"csrf": {admin.csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry: %d", resp.StatusCode)
	}
	waitIdle(t, r.s)
	if jobs, _ := st.Jobs(context.Background()); len(jobs) != 0 {
		t.Fatalf("retried job not run: %+v", jobs)
	}
	if !bytes.Contains([]byte(body), []byte(string(trns))) {
		t.Fatal("failed build does not name its case")
	}
}

var tokenPattern = regexp.MustCompile(`plm_[A-Za-z0-9_-]+`)

// Finding 3: an administrator cannot get a token that acts as a reviewer;
// tokens go to oneself or to service accounts that cannot decide cases, and
// every action made with a token names the token in the audit log.
func TestSecurityTokens(t *testing.T) {
	r := newRig(t)
	id := r.putCase(t, r.a, fixture.Epoch, "粤B11111", nil)
	waitIdle(t, r.s)
	admin := r.login(t, "admin")
	issue := func(b *browser, officer string) (int, string) {
		resp, err := b.c.PostForm(b.base+"/admin/tokens", url.Values{"csrf": {b.csrf}, "officer": {officer}, "label": {"attack"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, tokenPattern.FindString(string(body))
	}
	for _, who := range []string{"li.wei", "zhang.min", "wang.fang"} {
		if st, tok := issue(admin, who); st != http.StatusForbidden || tok != "" {
			t.Errorf("admin got a token for reviewer %s: %d %q", who, st, tok)
		}
	}
	if st, tok := issue(admin, "audit"); st != http.StatusOK || tok == "" {
		t.Fatalf("token for the auditor service account: %d %q", st, tok)
	}
	if st, tok := issue(admin, "admin"); st != http.StatusOK || tok == "" {
		t.Fatalf("token for oneself: %d %q", st, tok)
	}

	// A reviewer's own token approves; the audit event names the token.
	tok, err := r.s.IssueToken(context.Background(), "li.wei", "own tool")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, r.s.URL()+"/api/v1/cases/"+string(id)+"/approve", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("approve with own token: %v %v", resp, err)
	}
	resp.Body.Close()
	evs, _, _ := r.s.Store().Audit(context.Background(), central.AuditFilter{Action: "case.approve"})
	want := (&central.Session{Kind: central.SessionToken, Hash: auth.HashToken(tok)}).TokenID()
	if len(evs) != 1 || evs[0].Actor != "li.wei" || evs[0].Token != want || want == "" {
		t.Fatalf("approval audit %+v, want token %s", evs, want)
	}
}

// Finding 4: an administrator limited to station A cannot create an
// officer who sees more than A, nor get a token for one.
func TestSecurityScopedAdmin(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if err := r.s.CreateOfficer(ctx, &central.Officer{Username: "admin.a", Name: "A admin", Role: central.RoleAdmin, Stations: []plume.StationID{"GD-SZ-0001"}}, pw); err != nil {
		t.Fatal(err)
	}
	a := r.login(t, "admin.a")
	for name, stations := range map[string]string{"escape.all": "", "escape.b": "GD-SZ-0002", "escape.ab": "GD-SZ-0001,GD-SZ-0002"} {
		for _, role := range []string{"admin", "reviewer"} {
			a.post("/admin/officers", url.Values{"csrf": {a.csrf}, "username": {name}, "name": {"x"}, "role": {role}, "stations": {stations}, "password": {pw}})
			if _, err := r.s.Store().Officer(ctx, name); err == nil {
				t.Fatalf("scoped admin created %s (%s, stations %q)", name, role, stations)
			}
		}
	}
	a.post("/admin/officers", url.Values{"csrf": {a.csrf}, "username": {"rev.a"}, "name": {"x"}, "role": {"reviewer"}, "stations": {"GD-SZ-0001"}, "password": {pw}})
	if o, err := r.s.Store().Officer(ctx, "rev.a"); err != nil || o.CreatedBy != "admin.a" {
		t.Fatalf("officer within scope: %+v %v", o, err)
	}
	// The all-stations auditor is a service account, but sees more than A.
	resp, _ := a.c.PostForm(a.base+"/admin/tokens", url.Values{"csrf": {a.csrf}, "officer": {"audit"}, "label": {"x"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("scoped admin got a token for an all-stations auditor: %d", resp.StatusCode)
	}
}

// clientFrom is an HTTP client whose connections come from the loopback
// address ip (the whole of 127/8 is loopback on Linux).
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{
		Transport:     &http.Transport{DialContext: d.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Finding 7: wrong passwords sent in parallel are counted atomically, so
// only the free attempts are checked; the guesser is slowed, and the
// officer signs in from another address all the same.
func TestSecurityLoginThrottle(t *testing.T) {
	r := newRig(t)
	attacker := clientFrom("127.0.0.1")
	var wg sync.WaitGroup
	var throttled atomic.Int32
	for range 60 {
		wg.Go(func() {
			resp, err := attacker.PostForm(r.s.URL()+"/login", url.Values{"username": {"zhang.min"}, "password": {"wrong password!"}})
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				throttled.Add(1)
			}
		})
	}
	wg.Wait()
	fails, _, _ := r.s.Store().Audit(context.Background(), central.AuditFilter{Action: "login.fail"})
	if len(fails) > 5 || throttled.Load() < 55 {
		t.Fatalf("%d of 60 parallel guesses were checked (%d throttled), want at most 5", len(fails), throttled.Load())
	}
	if held, _, _ := r.s.Store().Audit(context.Background(), central.AuditFilter{Action: "login.throttled", Limit: 100}); len(held) < 55 {
		t.Fatalf("%d throttled attempts audited, want at least 55", len(held))
	}
	// The growing delays are timed in TestThrottle (a fake clock); here
	// the officer, elsewhere, is not locked out by the guesser.
	resp, err := clientFrom("127.0.0.2").PostForm(r.s.URL()+"/login", url.Values{"username": {"zhang.min"}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the officer from another address: %d, want 303 (signed in)", resp.StatusCode)
	}
}

// Finding 8, the low ones, each against a running central.
func TestSecurityLow(t *testing.T) {
	r := newRig(t, func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}
		c.BodyTimeout = time.Second
	})
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	t.Run("AuditCSVFormula", func(t *testing.T) {
		for _, u := range []string{`=HYPERLINK("http://evil.example","x")`, "+1+1", "-2", "@SUM(A1)", "\tx"} {
			resp, _ := plain.PostForm(r.s.URL()+"/login", url.Values{"username": {u}, "password": {"wrong password!"}})
			resp.Body.Close()
		}
		_, body := r.login(t, "audit").get("/audit.csv")
		rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, row := range rows[1:] {
			for _, cell := range row {
				if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
					t.Errorf("cell %q would run as a formula", cell)
				}
				if strings.HasPrefix(strings.ToLower(cell), "'=hyperlink") {
					seen++
				}
			}
		}
		if seen == 0 {
			t.Fatal("the attempted username is not in the CSV at all")
		}
	})

	t.Run("BlobOwnership", func(t *testing.T) {
		// A uploads a scene; B cites it by digest without uploading it.
		img := sceneJPEG(t, 3)
		m := fixture.NewMedia("scene-1.jpg", plume.MediaScene, img, fixture.Epoch)
		if resp, err := r.a.PutBlob(m); err != nil || resp.Status != http.StatusCreated {
			t.Fatalf("A's upload: %v %v", resp, err)
		}
		ev := fixture.NewEvidenceMedia(t, r.b.Key, r.b.Station, fixture.Epoch.Add(time.Minute), 1, true, []fixture.Media{m})
		resp, err := r.b.PutManifest(ev)
		if err != nil || resp.Status != http.StatusConflict || resp.ErrorCode() != plume.EMISSINGMEDIA {
			t.Fatalf("B cites A's blob: %v %v, want 409 missing_media", resp, err)
		}
		// Claiming it with other bytes fails; sending the bytes works.
		forged := m
		forged.Data = bytes.Repeat([]byte{0}, len(img))
		if resp, _ := r.b.PutBlob(forged); resp.Status != http.StatusBadRequest {
			t.Fatalf("B claims A's blob with other bytes: %v", resp)
		}
		if resp, _ := r.b.PutManifest(ev); resp.Status != http.StatusConflict {
			t.Fatalf("after a forged claim: %v", resp)
		}
		if resp, err := r.b.PutEvidence(ev); err != nil || resp.Status != http.StatusCreated {
			t.Fatalf("B with the bytes: %v %v", resp, err)
		}
	})

	t.Run("SecureCookies", func(t *testing.T) {
		login := func(from, proto string) *http.Cookie {
			req, _ := http.NewRequest(http.MethodPost, r.s.URL()+"/login", strings.NewReader(url.Values{"username": {"li.wei"}, "password": {pw}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if proto != "" {
				req.Header.Set("X-Forwarded-Proto", proto)
			}
			resp, err := clientFrom(from).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			for _, c := range resp.Cookies() {
				if c.Name == auth.CookieName {
					return c
				}
			}
			t.Fatalf("no session cookie: %d", resp.StatusCode)
			return nil
		}
		if c := login("127.0.0.3", "https"); !c.Secure {
			t.Error("behind the trusted TLS proxy the cookie is not Secure")
		}
		if c := login("127.0.0.4", "https"); c.Secure {
			t.Error("an untrusted client's X-Forwarded-Proto was believed")
		}
		if c := login("127.0.0.3", ""); c.Secure {
			t.Error("plain HTTP from the proxy without the header made the cookie Secure")
		}
	})

	t.Run("StaticNoListing", func(t *testing.T) {
		for _, p := range []string{"/static/", "/static/assets/", "/static/."} {
			resp, _ := plain.Get(r.s.URL() + p)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || bytes.Contains(body, []byte("app.css")) {
				t.Errorf("%s: %d lists %q", p, resp.StatusCode, body)
			}
		}
		if resp, _ := plain.Get(r.s.URL() + "/static/app.css"); resp.StatusCode != http.StatusOK {
			t.Fatalf("a real asset: %d", resp.StatusCode)
		}
	})

	t.Run("TrickledBody", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(r.s.URL(), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n")
		start := time.Now()
		for time.Since(start) < 10*time.Second {
			if _, err := conn.Write([]byte("u")); err != nil {
				break
			}
			conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if n, err := conn.Read(make([]byte, 512)); n > 0 || err == io.EOF {
				break // answered or closed
			}
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("a trickled body held the connection %v (body timeout 1 s)", d)
		}
	})

	t.Run("LivePage", func(t *testing.T) {
		tok, err := os.ReadFile(filepath.Join(r.dataDir, "live.token"))
		if err != nil {
			t.Skipf("no live token: %v", err)
		}
		u := r.s.URL() + "/live/GD-SZ-0001"
		if resp, _ := plain.Get(u + "?token=" + strings.TrimSpace(string(tok))); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("all-stations token in the query string: %d, want 401", resp.StatusCode)
		}
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := plain.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("token in the header: %v %v", resp, err)
		}
		resp.Body.Close()
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Fatalf("live page CSP %q", csp)
		}
	})

	t.Run("MetricsSignedIn", func(t *testing.T) {
		if resp, _ := plain.Get(r.s.URL() + "/metrics"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("anonymous /metrics: %d, want 401", resp.StatusCode)
		}
		resp := signedGet(t, r.s, "/metrics") // an auditor's token, as a scraper would hold
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("plume_central_ingest_total")) {
			t.Fatalf("/metrics with a token: %d", resp.StatusCode)
		}
	})

	t.Run("OpenRedirect", func(t *testing.T) {
		for next, want := range map[string]string{
			"/%09/evil.example": "/queue", "//evil.example": "/queue", "/%5Cevil.example": "/queue", "/%0d%0a/evil": "/queue",
			"https://evil.example": "/queue", "/\\evil": "/queue", "/cases/C1?x=1": "/cases/C1?x=1",
		} {
			resp, err := plain.PostForm(r.s.URL()+"/login?next="+next, url.Values{"username": {"li.wei"}, "password": {pw}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); loc != want {
				t.Errorf("next=%s: Location %q, want %q", next, loc, want)
			}
		}
	})
}

// Finding 5: a station cites the diesel profile with its NO limit lowered
// to 500 ppm, so a reading of 900 ppm "exceeds". Central judges again with
// its own copy (1500 ppm): the case is flagged and cannot be approved. A
// true exceedance is not flagged.
func TestSecurityRejudge(t *testing.T) {
	r := newRig(t)
	forged := fixture.Pass(r.a.Station, fixture.Epoch, 1, false) // NO 900 ppm
	prof := fixture.DieselProfile()
	prof.Limits[0].Max = 500
	forged.Verdict = plume.Assess(&forged.Reading, prof)
	if forged.Verdict.Outcome != plume.OutcomeExceed {
		t.Fatalf("forged verdict %s", forged.Verdict.Summary)
	}
	bad := putPass(t, r.a, forged, sceneJPEG(t, 0))
	good := putScenes(t, r.a, fixture.Epoch.Add(time.Second), sceneJPEG(t, 1))
	waitIdle(t, r.s)
	c, _ := r.s.Store().Case(context.Background(), bad)
	if f := c.Blocked(); f == nil || f.Code != central.FlagVerdictMismatch || !strings.Contains(f.Message, "1500") {
		t.Fatalf("forged verdict not flagged: %+v", c.Flags)
	}
	if c, _ := r.s.Store().Case(context.Background(), good); c.Blocked() != nil {
		t.Fatalf("a true exceedance blocked: %+v", c.Flags)
	}
	tok, err := r.s.IssueToken(context.Background(), "li.wei", "review")
	if err != nil {
		t.Fatal(err)
	}
	approve := func(id plume.CaseID) int {
		req, _ := http.NewRequest(http.MethodPost, r.s.URL()+"/api/v1/cases/"+string(id)+"/approve", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := approve(bad); st != http.StatusConflict {
		t.Fatalf("approving the forged verdict: %d, want 409", st)
	}
	if st := approve(good); st != http.StatusOK {
		t.Fatalf("approving a true exceedance: %d", st)
	}
}

// Finding 6: a captured heartbeat replayed after a later one is refused,
// so a station cannot be shown "up" again after it reported "degraded";
// a captured live-view upgrade cannot be used twice.
func TestSecurityReplay(t *testing.T) {
	r := newRig(t)
	t0 := time.Now().UTC()
	up := goodHeartbeat(1)
	up.Time = t0
	if resp := putHeartbeat(t, r.a, up); resp.Status != http.StatusOK {
		t.Fatalf("heartbeat: %v", resp)
	}
	down := goodHeartbeat(2)
	down.Time, down.Analyser.Connected = t0.Add(time.Second), false
	if resp := putHeartbeat(t, r.a, down); resp.Status != http.StatusOK {
		t.Fatalf("degraded heartbeat: %v", resp)
	}
	state := func() central.HealthState {
		vs, err := r.s.Ops().Stations(context.Background(), &central.Officer{Role: central.RoleAdmin})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if v.Station.ID == r.a.Station {
				return v.State
			}
		}
		return ""
	}
	before := state()
	if before == central.HealthUp {
		t.Fatalf("the degraded heartbeat left the station %s", before)
	}
	if resp := putHeartbeat(t, r.a, up); resp.Status != http.StatusConflict {
		t.Fatalf("replayed heartbeat: %v, want 409", resp)
	}
	if s := state(); s != before {
		t.Fatalf("a replayed heartbeat changed the state %s -> %s", before, s)
	}
	// The same latest heartbeat again (a retry) is answered, not refused.
	if resp := putHeartbeat(t, r.a, down); resp.Status != http.StatusOK {
		t.Fatalf("retried heartbeat: %v", resp)
	}
	// A clock that did not move: the sequence breaks the tie.
	tie := down
	tie.Seq = 3
	if resp := putHeartbeat(t, r.a, tie); resp.Status != http.StatusOK {
		t.Fatalf("next heartbeat at the same time: %v", resp)
	}
	tie.Seq = 1
	if resp := putHeartbeat(t, r.a, tie); resp.Status != http.StatusConflict {
		t.Fatalf("an older sequence at the same time: %v, want 409", resp)
	}

	// The edge's signalling upgrade, captured and replayed.
	date := plume.FormatRequestDate(time.Now())
	path := "/api/v1/stations/" + string(r.a.Station) + "/live"
	hdr := http.Header{}
	hdr.Set(plume.HeaderStation, string(r.a.Station))
	hdr.Set(plume.HeaderDate, date)
	hdr.Set(plume.HeaderContentSHA256, plume.EmptySHA256)
	hdr.Set(plume.HeaderSignature, plume.SignRequest(r.a.Key, http.MethodGet, path, date, plume.EmptySHA256))
	ws := "ws" + strings.TrimPrefix(r.s.URL(), "http") + path
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatalf("the edge's upgrade: %v", err)
	}
	defer conn.CloseNow()
	_, resp, err := websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPHeader: hdr})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed upgrade: %v %v, want 401", resp, err)
	}
}

// Finding 9: a central key file that others may read is refused.
func TestSecurityKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	if _, err := server.LoadOrCreateKey(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, server.KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := server.LoadOrCreateKey(dir); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("a world-readable key loaded: %v", err)
	}
}

// Finding 9: an administrator revokes a token, disables an officer and
// resets a password, each ending what it should, audited; a station-scoped
// administrator cannot do it to an officer who sees more.
func TestSecurityRevocation(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	api := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, r.s.URL()+"/api/v1/cases", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tok, err := r.s.IssueToken(ctx, "li.wei", "script")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := r.s.IssueToken(ctx, "li.wei", "other script")
	if api(tok) != http.StatusOK {
		t.Fatal("fresh token refused")
	}
	admin := r.login(t, "admin")
	change := func(b *browser, user string, form url.Values) int {
		form.Set("csrf", b.csrf)
		return b.post("/admin/officers/"+user+"/change", form).StatusCode
	}
	id := (&central.Session{Kind: central.SessionToken, Hash: auth.HashToken(tok)}).TokenID()
	if _, page := admin.get("/admin/officers"); !strings.Contains(page, id) {
		t.Fatalf("the token %s is not listed on the admin page", id)
	}
	if st := change(admin, "li.wei", url.Values{"action": {"revoke-token"}, "token": {id}}); st != http.StatusSeeOther {
		t.Fatalf("revoke token: %d", st)
	}
	if api(tok) != http.StatusUnauthorized || api(other) != http.StatusOK {
		t.Fatalf("after revoking one token: revoked %d, other %d", api(tok), api(other))
	}

	// A station-scoped administrator cannot touch an all-stations officer.
	if err := r.s.CreateOfficer(ctx, &central.Officer{Username: "admin.a", Name: "A", Role: central.RoleAdmin, Stations: []plume.StationID{"GD-SZ-0001"}}, pw); err != nil {
		t.Fatal(err)
	}
	if st := change(r.login(t, "admin.a"), "li.wei", url.Values{"action": {"disable"}}); st != http.StatusForbidden {
		t.Fatalf("scoped admin disabling an all-stations officer: %d", st)
	}

	// Disable: the session, the other token and sign-in all stop.
	li := r.login(t, "li.wei")
	if st := change(admin, "li.wei", url.Values{"action": {"disable"}}); st != http.StatusSeeOther {
		t.Fatalf("disable: %d", st)
	}
	if resp, _ := li.get("/queue"); resp.StatusCode != http.StatusSeeOther || api(other) != http.StatusUnauthorized {
		t.Fatalf("after disable: page %d, token %d", resp.StatusCode, api(other))
	}
	if resp := (&browser{tb: t, base: r.s.URL(), c: clientFrom("127.0.0.5")}).post("/login", url.Values{"username": {"li.wei"}, "password": {pw}}); resp.StatusCode == http.StatusSeeOther {
		t.Fatal("a disabled officer signed in")
	}
	change(admin, "li.wei", url.Values{"action": {"enable"}})

	// A password reset ends the sessions opened before it.
	li = r.login(t, "li.wei")
	const newPW = "a new long password"
	if st := change(admin, "li.wei", url.Values{"action": {"set-password"}, "password": {newPW}}); st != http.StatusSeeOther {
		t.Fatalf("set password: %d", st)
	}
	if resp, _ := li.get("/queue"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a session from before the reset: %d", resp.StatusCode)
	}
	if resp := (&browser{tb: t, base: r.s.URL(), c: clientFrom("127.0.0.6")}).post("/login", url.Values{"username": {"li.wei"}, "password": {newPW}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in with the new password: %d", resp.StatusCode)
	}
	for _, a := range []string{"officer.revoke-token", "officer.disable", "officer.enable", "officer.set-password"} {
		if evs, _, _ := r.s.Store().Audit(ctx, central.AuditFilter{Action: a, Target: "li.wei"}); len(evs) != 1 || evs[0].Actor != "admin" {
			t.Errorf("%s audited %+v", a, evs)
		}
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir, and returns their paths and a pool that trusts it.
func selfSigned(tb testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plume-central test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// Issue 14, "also": central serves HTTPS itself with -tls-cert and
// -tls-key; its cookies are then Secure without any flag.
func TestSecurityTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	s := mustOpen(t, t.TempDir(), func(c *server.Config) { c.TLSCert, c.TLSKey = certFile, keyFile })
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL %s", s.URL())
	}
	if err := s.CreateOfficer(context.Background(), &central.Officer{Username: "li.wei", Name: "李伟", Role: central.RoleReviewer}, pw); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.PostForm(s.URL()+"/login", url.Values{"username": {"li.wei"}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var secure bool
	for _, ck := range resp.Cookies() {
		secure = secure || ck.Name == auth.CookieName && ck.Secure
	}
	if resp.StatusCode != http.StatusSeeOther || !secure {
		t.Fatalf("sign-in over TLS: %d, Secure cookie %v", resp.StatusCode, secure)
	}
	if resp, err := http.Get("http://" + strings.TrimPrefix(s.URL(), "https://") + "/healthz"); err == nil && resp.StatusCode == http.StatusOK {
		t.Fatal("plain HTTP served on the TLS port")
	}
	if _, err := server.Open(context.Background(), server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), TLSCert: certFile}); err == nil {
		t.Fatal("a certificate without its key was accepted")
	}
}
