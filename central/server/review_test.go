package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/auth"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/server"
)

// TestClosedLoop drives one case through the HTTP pages: plate correction,
// approval, export to the police receiver, the disposition callback, closed.
func TestClosedLoop(t *testing.T) {
	r := newRig(t)
	id := r.putCase(t, r.a, fixture.Epoch, "粤B12845", nil)
	waitIdle(t, r.s)
	b := r.login(t, "li.wei")
	if resp := b.action(id, "plate", url.Values{"plate": {"粤B12345"}, "comment": {"8 read as 3"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("plate: %d", resp.StatusCode)
	}
	if resp := b.action(id, "approve", url.Values{"comment": {"clear"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve: %d", resp.StatusCode)
	}
	c := r.waitCase(t, id, "exported", func(c *central.Case) bool { return c.Status == central.CaseExported })
	got := r.police.Cases()
	if len(got) != 1 || got[0].Record.Vehicle.Plate != "粤B12345" || got[0].Record.Vehicle.PlateAsRead != "粤B12845" || got[0].Record.Package.SHA256 != c.PackageSHA256 {
		t.Fatalf("police received %+v", got)
	}
	if len(got[0].Record.Reviewers) != 2 || got[0].Record.Reviewers[1].Decision != central.DecisionApprove {
		t.Fatalf("reviewers %+v", got[0].Record.Reviewers)
	}
	if c.PackageRevision != c.Revision || c.Export.Receipt != got[0].Receipt.ID {
		t.Fatalf("package rev %d/%d receipt %q", c.PackageRevision, c.Revision, c.Export.Receipt)
	}
	if st, body := r.dispose(t, c, "penalty_issued"); st != http.StatusOK {
		t.Fatalf("disposition: %d %s", st, body)
	}
	if st, _ := r.dispose(t, c, "penalty_issued"); st != http.StatusOK {
		t.Fatalf("resent disposition: %d", st)
	}
	if st, _ := r.dispose(t, c, "vehicle_not_found"); st != http.StatusConflict {
		t.Fatalf("conflicting disposition: %d", st)
	}
	c, _ = r.s.Store().Case(context.Background(), id)
	if c.Status != central.CaseClosed || c.Disposition.Outcome != central.DispositionPenalty {
		t.Fatalf("case %s %+v", c.Status, c.Disposition)
	}
	log, _ := r.s.Store().Custody(context.Background(), id)
	var actions []string
	for _, e := range log {
		actions = append(actions, e.Action)
	}
	want := []string{central.ActionCaptured, central.ActionReceived, central.ActionCaseOpened, central.ActionPackageBuilt,
		central.ActionPlateCorrect, central.ActionApproved, central.ActionPackageBuilt, central.ActionExported, central.ActionDisposition}
	if strings.Join(actions, "|") != strings.Join(want, "|") {
		t.Fatalf("custody %v\nwant %v", actions, want)
	}
	evs, _, _ := r.s.Store().Audit(context.Background(), central.AuditFilter{Target: string(id)})
	var audit []string
	for _, e := range evs {
		audit = append(audit, e.Action)
	}
	if strings.Join(audit, "|") != "case.disposition|case.exported|case.approve|case.plate" {
		t.Fatalf("audit trail %v", audit)
	}
	if evs[3].Actor != "li.wei" || evs[3].IP != "127.0.0.1" || !strings.Contains(evs[3].Before, "粤B12845") || !strings.Contains(evs[3].After, "粤B12345") {
		t.Fatalf("plate audit event %+v", evs[3])
	}
	// The dashboard counted the loop.
	days, _ := r.s.Store().DailyStats(context.Background(), "2000-01-01", "2100-01-01")
	var tot central.DayStats
	for i := range days {
		tot.Merge(&days[i])
	}
	if tot.Cases != 1 || tot.Reviewed != 1 || tot.Approved != 1 || tot.Exported != 1 || tot.Dispositions[central.DispositionPenalty] != 1 {
		t.Fatalf("dashboard counters %+v", tot)
	}
}

func TestSecondReview(t *testing.T) {
	r := newRig(t, func(c *server.Config) { c.SecondReview = true })
	id := r.putCase(t, r.a, fixture.Epoch, "粤B12345", nil)
	rev, sup := r.login(t, "li.wei"), r.login(t, "zhang.min")
	rev.action(id, "approve", nil)
	if c, _ := r.s.Store().Case(context.Background(), id); c.Status != central.CaseSecondReview {
		t.Fatalf("after first approval: %s", c.Status)
	}
	if resp := rev.action(id, "confirm", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("reviewer confirming: %d, want 403", resp.StatusCode)
	}
	sup.action(id, "confirm", url.Values{"comment": {"agree"}})
	r.waitCase(t, id, "exported", func(c *central.Case) bool { return c.Status == central.CaseExported })
}

// TestExportFailureVisibleAndRetried: a permanent refusal leaves the
// export failed and visible; a supervisor retries it by hand.
func TestExportFailureVisibleAndRetried(t *testing.T) {
	r := newRig(t)
	r.police.Refuse = true
	id := r.putCase(t, r.a, fixture.Epoch, "粤B12345", nil)
	b := r.login(t, "li.wei")
	b.action(id, "approve", nil)
	c := r.waitCase(t, id, "failed", func(c *central.Case) bool { return c.Export != nil && c.Export.Status == central.ExportFailed })
	if !strings.Contains(c.Export.LastError, "422") {
		t.Fatalf("last error %q", c.Export.LastError)
	}
	_, page := b.get("/queue")
	if !strings.Contains(page, "失败 failed") {
		t.Fatal("the queue does not show the failed export")
	}
	if resp := b.action(id, "retry-export", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("reviewer retry: %d, want 403", resp.StatusCode)
	}
	r.police.Refuse = false
	r.police.FailNext = 4 // transient failures are retried by the queue
	sup := r.login(t, "zhang.min")
	if resp := sup.action(id, "retry-export", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("supervisor retry: %d", resp.StatusCode)
	}
	r.waitCase(t, id, "exported", func(c *central.Case) bool { return c.Status == central.CaseExported })
	if n := len(r.police.Cases()); n != 1 {
		t.Fatalf("police hold %d cases, want 1", n)
	}
}

func TestRepeatExceedance(t *testing.T) {
	r := newRig(t)
	first := r.putCase(t, r.a, fixture.Epoch, "粤B12345", nil)
	second := r.putCase(t, r.b, fixture.Epoch.Add(30*24*time.Hour), "粤B12345", nil)
	later := r.putCase(t, r.a, fixture.Epoch.Add(400*24*time.Hour), "粤B12345", nil)
	none := r.putCase(t, r.a, fixture.Epoch.Add(time.Hour), "", nil)
	ctx := context.Background()
	for _, tc := range []struct {
		id   plume.CaseID
		kind central.CaseKind
		note string
	}{
		{first, central.KindWarning, "First exceedance"},
		{second, central.KindEnforcement, "NO exceeded 2 times in a row"},
		{later, central.KindWarning, "First exceedance"}, // outside the 6-month window
		{none, central.KindUnlinked, "cannot be linked"},
	} {
		c, _ := r.s.Store().Case(ctx, tc.id)
		if c.Kind != tc.kind || !strings.Contains(c.RepeatNote, tc.note) {
			t.Errorf("case %s: %s %q, want %s %q", tc.id, c.Kind, c.RepeatNote, tc.kind, tc.note)
		}
	}
	// A valid pass within the limit in between breaks the run.
	recs := []plume.Record{}
	p := fixture.Pass("GD-SZ-0001", fixture.Epoch.Add(500*24*time.Hour), 1, false)
	recs = append(recs, plume.Record{Kind: plume.RecordPass, ID: string(p.ID), Station: "GD-SZ-0001", Time: p.Reading.Time, Pass: &p})
	if resp, err := r.a.PutRecords("b1", recs); err != nil || resp.Status != 200 {
		t.Fatal(resp, err)
	}
	after := r.putCase(t, r.a, fixture.Epoch.Add(501*24*time.Hour), "粤B12345", nil)
	if c, _ := r.s.Store().Case(ctx, after); c.Kind != central.KindWarning {
		t.Fatalf("after a clean pass: %s %s", c.Kind, c.RepeatNote)
	}
}

// TestSecurity covers CSRF, session fixation, another station's case
// (pages, API, media), path traversal in media URLs and oversized bodies.
func TestSecurity(t *testing.T) {
	r := newRig(t)
	mine := r.putCase(t, r.b, fixture.Epoch, "粤B11111", nil)
	other := r.putCase(t, r.a, fixture.Epoch.Add(time.Second), "粤B22222", nil)
	waitIdle(t, r.s)
	scoped := r.login(t, "wang.fang") // GD-SZ-0002 only

	t.Run("CSRF", func(t *testing.T) {
		if resp := scoped.post("/cases/"+string(mine)+"/approve", url.Values{}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("approve without token: %d", resp.StatusCode)
		}
		if resp := scoped.post("/cases/"+string(mine)+"/approve", url.Values{"csrf": {"wrong"}}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("approve with a wrong token: %d", resp.StatusCode)
		}
		req, _ := http.NewRequest(http.MethodPost, r.s.URL()+"/cases/"+string(mine)+"/approve", strings.NewReader("csrf="+url.QueryEscape(scoped.csrf)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		resp, _ := scoped.c.Do(req)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-origin post with the right token: %d", resp.StatusCode)
		}
		// The JSON API with a session cookie needs the header token too.
		req, _ = http.NewRequest(http.MethodPost, r.s.URL()+"/api/v1/cases/"+string(mine)+"/approve", strings.NewReader("{}"))
		resp, _ = scoped.c.Do(req)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("API approve without X-CSRF-Token: %d", resp.StatusCode)
		}
		if c, _ := r.s.Store().Case(context.Background(), mine); c.Status != central.CaseOpen {
			t.Fatalf("a refused request changed the case: %s", c.Status)
		}
		// Logout is a state change too.
		if resp := scoped.post("/logout", url.Values{}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("logout without token: %d", resp.StatusCode)
		}
	})

	t.Run("SessionFixation", func(t *testing.T) {
		planted := "attacker-chosen-session-id-0123456789"
		b := r.login(t, "li.wei")
		u, _ := url.Parse(r.s.URL())
		// Plant a cookie, then sign in: the session must be new.
		b.c.Jar.SetCookies(u, []*http.Cookie{{Name: auth.CookieName, Value: planted, Path: "/"}})
		b.post("/login", url.Values{"username": {"li.wei"}, "password": {pw}})
		var now string
		for _, c := range b.c.Jar.Cookies(u) {
			if c.Name == auth.CookieName {
				now = c.Value
			}
		}
		if now == "" || now == planted {
			t.Fatalf("session cookie after login %q (planted %q)", now, planted)
		}
		req, _ := http.NewRequest(http.MethodGet, r.s.URL()+"/queue", nil)
		req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: planted})
		resp, _ := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("the planted ID is a session: %d", resp.StatusCode)
		}
		// After logout the old cookie is dead.
		b.refreshCSRF()
		b.post("/logout", url.Values{"csrf": {b.csrf}})
		req, _ = http.NewRequest(http.MethodGet, r.s.URL()+"/api/v1/cases", nil)
		req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: now})
		resp, _ = http.DefaultClient.Do(req)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("cookie after logout: %d", resp.StatusCode)
		}
	})

	t.Run("OtherStation", func(t *testing.T) {
		for _, p := range []string{"/cases/" + string(other), "/cases/" + string(other) + "/media/scene-1.jpg", "/cases/" + string(other) + "/package.zip", "/api/v1/cases/" + string(other), "/api/v1/cases/" + string(other) + "/package", "/api/v1/stations/GD-SZ-0001"} {
			if resp, _ := scoped.get(p); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: %d, want 404", p, resp.StatusCode)
			}
		}
		if resp, _ := scoped.get("/cases/" + string(mine)); resp.StatusCode != http.StatusOK {
			t.Fatalf("own station's case: %d", resp.StatusCode)
		}
		_, q := scoped.get("/queue")
		if strings.Contains(q, string(other)) || !strings.Contains(q, string(mine)) {
			t.Fatal("the queue shows another station's case or hides the officer's own")
		}
		_, list := scoped.get("/api/v1/cases")
		if strings.Contains(list, string(other)) || !strings.Contains(list, string(mine)) {
			t.Fatalf("API list: %s", list)
		}
		_, list = scoped.get("/api/v1/cases?station=GD-SZ-0001")
		if strings.Contains(list, string(other)) {
			t.Fatal("API list by the other station leaks")
		}
		_, passes := scoped.get("/api/v1/passes")
		if strings.Contains(passes, "GD-SZ-0001") {
			t.Fatal("passes of another station leak")
		}
		req, _ := http.NewRequest(http.MethodPost, r.s.URL()+"/api/v1/cases/"+string(other)+"/approve", strings.NewReader("{}"))
		req.Header.Set(auth.CSRFHeader, scoped.csrf)
		resp, _ := scoped.c.Do(req)
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("approving another station's case: %d", resp.StatusCode)
		}
		// Without any session the API is closed (officers exist).
		resp, _ = http.Get(r.s.URL() + "/api/v1/cases")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("anonymous API read: %d", resp.StatusCode)
		}
	})

	t.Run("PathTraversal", func(t *testing.T) {
		for _, p := range []string{"..%2F..%2Fcentral.key", "..%2fcentral.db", "%2e%2e", "scene-1.jpg%00.txt", "blobs%2F" + strings.Repeat("a", 64), "SCENE-1.JPG"} {
			resp, body := scoped.get("/cases/" + string(mine) + "/media/" + p)
			if resp.StatusCode != http.StatusNotFound || strings.Contains(body, "PRIVATE") {
				t.Errorf("media %q: %d", p, resp.StatusCode)
			}
		}
		resp, _ := scoped.get("/cases/" + string(mine) + "/media/../../central.key")
		if resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("dot-dot path served %s", resp.Header.Get("Content-Type"))
		}
		resp, _ = scoped.get("/cases/" + string(mine) + "/media/scene-1.jpg")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/jpeg" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("real media: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})

	t.Run("Oversized", func(t *testing.T) {
		big := url.Values{"csrf": {scoped.csrf}, "comment": {strings.Repeat("x", 100<<10)}}
		if resp := scoped.post("/cases/"+string(mine)+"/approve", big); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("100 KiB form: %d", resp.StatusCode)
		}
		req, _ := http.NewRequest(http.MethodPost, r.s.URL()+"/api/v1/cases/"+string(mine)+"/approve", bytes.NewReader(bytes.Repeat([]byte(" "), 100<<10)))
		req.Header.Set(auth.CSRFHeader, scoped.csrf)
		resp, _ := scoped.c.Do(req)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("100 KiB API body: %d", resp.StatusCode)
		}
		if resp := (&browser{tb: t, base: r.s.URL(), c: http.DefaultClient}).post("/login", url.Values{"username": {strings.Repeat("a", 100<<10)}}); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("100 KiB login: %d", resp.StatusCode)
		}
		resp2, err := r.a.Do(http.MethodPut, "/api/v1/stations/GD-SZ-0001/records/big", bytes.Repeat([]byte("x"), 5<<20), nil)
		if err != nil || resp2.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("5 MiB records batch: %v %v", resp2, err)
		}
		if c, _ := r.s.Store().Case(context.Background(), mine); c.Status != central.CaseOpen {
			t.Fatalf("an oversized request changed the case: %s", c.Status)
		}
	})

	t.Run("LoginRateLimit", func(t *testing.T) {
		b := &browser{tb: t, base: r.s.URL(), c: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
		for range 5 {
			if resp := b.post("/login", url.Values{"username": {"zhang.min"}, "password": {"wrong password!"}}); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong password: %d", resp.StatusCode)
			}
		}
		if resp := b.post("/login", url.Values{"username": {"zhang.min"}, "password": {pw}}); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("right password after 5 failures: %d, want 503 (throttled)", resp.StatusCode)
		}
		evs, _, _ := r.s.Store().Audit(context.Background(), central.AuditFilter{Action: "login."})
		if len(evs) < 6 {
			t.Fatalf("login attempts not audited: %d", len(evs))
		}
	})

	t.Run("AuditorReadsOnly", func(t *testing.T) {
		a := r.login(t, "audit")
		if resp := a.action(mine, "approve", nil); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("auditor approving: %d", resp.StatusCode)
		}
		resp, body := a.get("/audit.csv")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "seq,time,actor") || !strings.Contains(body, "login.ok") {
			t.Fatalf("audit CSV: %d %.200s", resp.StatusCode, body)
		}
		if resp, _ := scoped.get("/audit"); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("reviewer opening the audit log: %d", resp.StatusCode)
		}
	})
	_ = json.Marshal
}
