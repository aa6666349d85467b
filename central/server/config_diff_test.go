package server_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestStationConfigDiff: the station page shows an administrator the
// configuration set as a line diff against the version it replaced, and a
// proposed configuration as a diff against the one set (a preview that
// sets nothing), with the edit form kept.
func TestStationConfigDiff(t *testing.T) {
	r := newRig(t)
	admin := r.login(t, "admin")
	const page = "/stations/GD-SZ-0001"
	set := func(body string) {
		t.Helper()
		if resp := admin.post(page+"/config", url.Values{"csrf": {admin.csrf}, "action": {"set"}, "config": {body}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("set configuration: %d", resp.StatusCode)
		}
	}
	get := func() string {
		t.Helper()
		resp, body := admin.get(page)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", page, resp.StatusCode)
		}
		return body
	}
	has := func(what, body string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q", what, w)
			}
		}
	}
	const v1 = "profiles:\n  - gb3847-2018\nzones:\n  rear: [0, 0, 640, 480]\n"
	const v2 = "profiles:\n  - gb3847-2018\n  - hj845-2017\nzones:\n  rear: [0, 0, 1280, 720]\n"

	set(v1)
	has("version 1", get(), `id="config-diff"`, "第 1 版", `<tr class="d-add">`, "+4 行新增 added")
	set(v2)
	body := get()
	has("version 2", body, `id="config-diff"`, "第 2 版对比第 1 版", "+2 行新增 added", "−1 行删除 removed",
		`<tr class="d-del"><td class="ln">4</td><td class="ln"></td><td class="op" title="删除 removed">−</td><td class="txt">  rear: [0, 0, 640, 480]</td></tr>`,
		`<tr class="d-add"><td class="ln"></td><td class="ln">3</td><td class="op" title="新增 added">&#43;</td><td class="txt">  - hj845-2017</td></tr>`,
		`<tr class="d-same"><td class="ln">1</td><td class="ln">1</td>`,
		`<textarea name="config" rows="10" cols="80">profiles:`, `value="preview"`)

	// A preview diffs the proposal against version 2 and sets nothing.
	proposed := strings.Replace(v2, "  - hj845-2017\n", "", 1)
	resp, err := admin.c.PostForm(r.s.URL()+page+"/config", url.Values{"csrf": {admin.csrf}, "action": {"preview"}, "config": {proposed}})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("preview: %d %.300s", resp.StatusCode, raw)
	}
	has("preview", string(raw), "预览", "+0 行新增 added", "−1 行删除 removed",
		`<td class="op" title="删除 removed">−</td><td class="txt">  - hj845-2017</td>`)
	dc, err := r.s.Ops().DesiredConfig(context.Background(), "GD-SZ-0001")
	if err != nil || dc.Version != 2 {
		t.Fatalf("after a preview the desired configuration is %+v, %v; want version 2 unchanged", dc, err)
	}

	// A reviewer sees neither the form nor the diff.
	_, body = r.login(t, "li.wei").get(page)
	if strings.Contains(body, `id="config-diff"`) {
		t.Error("a reviewer is shown the configuration diff")
	}
	if resp := r.login(t, "li.wei").post(page+"/config", url.Values{"action": {"preview"}, "config": {proposed}}); resp.StatusCode == http.StatusOK {
		t.Error("a reviewer may preview a configuration")
	}
}
