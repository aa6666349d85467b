package server_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
)

// TestQueueSetsAsideUnlinked: the reviewer's default queue lists the cases
// with a plate and says how many unlinked ones (no plate read) it set
// aside, with a link to them; "kind=all" lists every case.
func TestQueueSetsAsideUnlinked(t *testing.T) {
	r := newRig(t)
	at := time.Now().Add(-2 * time.Hour)
	plated := r.putCase(t, r.a, at, "粤B12345", nil)
	r.putCase(t, r.a, at.Add(time.Minute), "", nil)
	r.putCase(t, r.a, at.Add(2*time.Minute), "", nil)
	b := r.login(t, "li.wei")

	_, q := b.get("/queue")
	if !strings.Contains(q, "/cases/"+string(plated)) {
		t.Error("default queue lacks the case with a plate")
	}
	if n := strings.Count(q, `<tr data-href="/cases/`); n != 1 {
		t.Errorf("default queue lists %d cases, want the 1 with a plate", n)
	}
	if !strings.Contains(q, `id="set-aside"`) || !strings.Contains(q, "<b>2</b> 件无号牌案件") || !strings.Contains(q, "kind=unlinked") {
		t.Errorf("default queue does not say 2 unlinked cases are set aside")
	}
	_, u := b.get("/queue?kind=unlinked")
	if n := strings.Count(u, `<tr data-href="/cases/`); n != 2 || strings.Contains(u, `id="set-aside"`) {
		t.Errorf("unlinked view lists %d cases, want 2", n)
	}
	_, all := b.get("/queue?kind=all")
	if n := strings.Count(all, `<tr data-href="/cases/`); n != 3 {
		t.Errorf("kind=all lists %d cases, want 3", n)
	}
}

// TestQueuePagingRangesAndNext: the queue says which page of how many it
// shows, offers today / 7 days / 30 days, and an approval or rejection
// made from the queue opens the queue's next case.
func TestQueuePagingRangesAndNext(t *testing.T) {
	r := newRig(t)
	at := time.Now().Add(-2 * time.Hour)
	var ids []string
	for i, plate := range []string{"粤B10001", "粤B10002", "粤B10003"} {
		ids = append(ids, string(r.putCase(t, r.a, at.Add(time.Duration(i)*time.Minute), plate, nil)))
	}
	b := r.login(t, "li.wei")
	_, q := b.get("/queue?limit=2")
	if !strings.Contains(q, "第 1 页 / 共 2 页") {
		t.Errorf("first page does not say page 1 of 2")
	}
	m := regexp.MustCompile(`id="next-page" href="([^"]+)"`).FindStringSubmatch(q)
	if m == nil {
		t.Fatal("no next page link")
	}
	_, q2 := b.get(html.UnescapeString(m[1]))
	if !strings.Contains(q2, "第 2 页 / 共 2 页") {
		t.Errorf("second page does not say page 2 of 2")
	}
	today := time.Now().In(time.FixedZone("UTC+8", 8*3600)).Format("2006-01-02")
	for _, want := range []string{"今天 Today", "7 天 7 days", "30 天 30 days", "from=" + today} {
		if !strings.Contains(q, want) {
			t.Errorf("queue lacks the quick range %q", want)
		}
	}
	// Newest first: ids[2], ids[1], ids[0]. Approve the first from the
	// default queue: the next one opens.
	_, q = b.get("/queue")
	link := regexp.MustCompile(`href="/cases/` + ids[2] + `\?q=([^"]*)"`).FindStringSubmatch(q)
	if link == nil {
		t.Fatalf("queue does not link %s with its queue", ids[2])
	}
	from, err := url.QueryUnescape(html.UnescapeString(link[1]))
	if err != nil {
		t.Fatal(err)
	}
	resp := b.action(plume.CaseID(ids[2]), "approve", url.Values{"q": {from}, "comment": {"plate and smoke checked"}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/cases/"+ids[1]+"?q=") {
		t.Fatalf("approve from the queue went to %q (%d), want case %s", loc, resp.StatusCode, ids[1])
	}
	// Without a queue the page stays on the case.
	resp = b.action(plume.CaseID(ids[1]), "reject", url.Values{"reason": {"plate_unreadable"}, "comment": {"x"}})
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/cases/"+ids[1]+"?") {
		t.Errorf("reject without a queue went to %q", loc)
	}
}

// TestVehiclesListsRecent: the vehicles page, before any plate is typed,
// lists the plates of the latest cases with their newest case.
func TestVehiclesListsRecent(t *testing.T) {
	r := newRig(t)
	at := time.Now().Add(-2 * time.Hour)
	first := r.putCase(t, r.a, at, "粤B30001", nil)
	second := r.putCase(t, r.a, at.Add(time.Minute), "粤B30001", nil)
	r.putCase(t, r.a, at.Add(2*time.Minute), "粤B30002", nil)
	r.putCase(t, r.a, at.Add(3*time.Minute), "", nil)
	b := r.login(t, "li.wei")
	_, page := b.get("/vehicles")
	tbl := regexp.MustCompile(`(?s)<table class="grid" id="recent-vehicles">.*?</table>`).FindString(page)
	if tbl == "" {
		t.Fatal("vehicles page lists no recent vehicles")
	}
	if n := strings.Count(tbl, `<a href="/vehicles?plate=`); n != 2 {
		t.Errorf("%d plates listed, want 2", n)
	}
	if !strings.Contains(tbl, "/cases/"+string(second)) || strings.Contains(tbl, "/cases/"+string(first)) {
		t.Error("a plate's row does not link its newest case")
	}
}

// TestDashboardYoungInstall: on a fresh install the dashboard spans its
// first week, not 30 days of nothing, and shows the supervisor's figures:
// exceedance rate, cases opened, approved, exported and closed, per day.
func TestDashboardYoungInstall(t *testing.T) {
	r := newRig(t)
	r.putCase(t, r.a, time.Now().Add(-time.Hour), "粤B40001", nil)
	b := r.login(t, "zhang.min")
	_, page := b.get("/dashboard")
	weekAgo := time.Now().In(time.FixedZone("UTC+8", 8*3600)).AddDate(0, 0, -6).Format("2006-01-02")
	if !strings.Contains(page, `name="from" value="`+weekAgo+`"`) {
		t.Errorf("dashboard does not start a week back (%s)", weekAgo)
	}
	for _, want := range []string{"超标率 Exceedance rate", "立案 · 批准 · 移送 · 结案", `id="per-day"`, "一氧化氮 NO"} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`(?s)<table class="grid" id="per-day">.*?</table>`).FindString(page); strings.Count(m, "<tr><td>20") != 1 {
		t.Errorf("per-day table does not list the one day with activity:\n%s", m)
	}
}
