package server_test

import (
	"strings"
	"testing"
	"time"
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
