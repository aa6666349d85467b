package server_test

import (
	"html"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/internal/fixture"
)

// englishOnly are phrases the reviewer's pages once showed in English
// alone. Each may still appear, but only after its Chinese (a Han
// character within the 40 characters before it).
var englishOnly = []string{
	"captured and signed at station", "received and verified at central", "case opened", "package built",
	"Your role cannot decide cases", "No officer actions yet", "Full vehicle file", "item(s) in the signed manifest",
	"provisional limits", "station read", "Stations report every", "No stations enrolled", "not measured",
	"reconnects", "dead letters", "Bulk actions only reject", "No passes of this plate", "Live view",
	"unlinked case(s)", "result code",
}

// pageText is a page's visible text: tags and scripts dropped, entities
// decoded, white space collapsed.
func pageText(page string) string {
	page = regexp.MustCompile(`(?s)<script.*?</script>|<style.*?</style>`).ReplaceAllString(page, " ")
	page = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page, " ")
	return strings.Join(strings.Fields(html.UnescapeString(page)), " ")
}

// TestReviewerPagesChineseFirst: on the reviewer's pages no known phrase
// stands in English alone, Go's duration syntax ("1m0s") never shows, and
// the live view is linked from the case and the station pages and wears
// the app's header, in Chinese.
func TestReviewerPagesChineseFirst(t *testing.T) {
	r := newRig(t)
	seedOps(t, r)
	p := fixture.Pass(r.a.Station, time.Now().Add(-time.Hour), 1, false)
	p.SmokeSeen = &plume.Smoke{Smoky: true, Grade: 4, Confidence: 0.9}
	p.Verdict = plume.Judge(&p.Reading, p.SmokeSeen, fixture.DieselProfile())
	id := r.putPass(t, r.a, p, nil)
	r.putCase(t, r.a, time.Now().Add(-2*time.Hour), "", nil)
	b := r.login(t, "li.wei")
	han := func(s string) bool {
		for _, c := range s {
			if unicode.Is(unicode.Han, c) {
				return true
			}
		}
		return false
	}
	pages := map[string]string{}
	for _, path := range []string{"/queue", "/cases/" + string(id), "/vehicles?plate=" + p.Plate.Text, "/stations", "/stations/" + string(r.a.Station), "/alerts", "/live/" + string(r.a.Station)} {
		resp, page := b.get(path)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		pages[path] = page
		text := pageText(page)
		for _, phrase := range englishOnly {
			for i := 0; ; {
				j := strings.Index(text[i:], phrase)
				if j < 0 {
					break
				}
				at := i + j
				before := []rune(text[:at])
				if !han(string(before[max(0, len(before)-40):])) {
					t.Errorf("%s: %q stands in English alone: …%s…", path, phrase, text[max(0, at-60):min(len(text), at+len(phrase)+20)])
				}
				i = at + len(phrase)
			}
		}
		if m := regexp.MustCompile(`\b\d+m\d+s\b|\b\d+h\d+m\d+s\b`).FindString(text); m != "" {
			t.Errorf("%s shows Go's duration syntax %q", path, m)
		}
	}
	for _, path := range []string{"/cases/" + string(id), "/stations/" + string(r.a.Station)} {
		if !strings.Contains(pages[path], `id="live-link" href="/live/`+string(r.a.Station)+`"`) {
			t.Errorf("%s does not link the station's live view", path)
		}
	}
	live := pages["/live/"+string(r.a.Station)]
	for _, want := range []string{`<header class="top">`, `/static/app.css`, "实时画面", "连接中"} {
		if !strings.Contains(live, want) {
			t.Errorf("live page lacks %q", want)
		}
	}
	if !strings.Contains(pages["/cases/"+string(id)], "站点采集并签名 captured and signed at station") {
		t.Error("custody actions are not in Chinese")
	}
}
