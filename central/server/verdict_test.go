package server_test

import (
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/internal/fixture"
)

// pdfText extracts a PDF's text with poppler's pdftotext, or skips.
func pdfText(tb testing.TB, pdf []byte) string {
	tb.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		tb.Skip("SKIP: pdftotext is not installed (apt-get install poppler-utils); the sheet's text cannot be read")
	}
	in := filepath.Join(tb.TempDir(), "sheet.pdf")
	if err := os.WriteFile(in, pdf, 0o600); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command(bin, "-layout", "-enc", "UTF-8", in, "-").Output()
	if err != nil {
		tb.Fatalf("pdftotext: %v", err)
	}
	return string(out)
}

// TestSmokeCaseAgrees: a black-smoke case whose analyser reading is within
// every limit (the demo's case PLM-…000005) says the same everywhere: the
// readings table shows the camera's Ringelmann grade exceeding, the
// vehicle file does not call the pass 合格 pass, and the PDF violation
// sheet gives result code 0 and the graded value, never "pass".
func TestSmokeCaseAgrees(t *testing.T) {
	r := newRig(t)
	p := fixture.Pass(r.a.Station, time.Now().Add(-time.Hour), 1, false)
	p.SmokeSeen = &plume.Smoke{Smoky: true, Grade: 4, Confidence: 0.93}
	p.Reading.Ringelmann = 0 // the analyser saw no blackness
	p.Verdict = plume.Judge(&p.Reading, p.SmokeSeen, fixture.DieselProfile())
	id := r.putPass(t, r.a, p, nil)
	b := r.login(t, "li.wei")

	_, page := b.get("/cases/" + string(id))
	row := regexp.MustCompile(`(?s)<tr data-pollutant="ringelmann">(.*?)</tr>`).FindStringSubmatch(page)
	if row == nil {
		t.Fatalf("case page has no Ringelmann row:\n%s", page)
	}
	if !strings.Contains(row[1], "4 grade") || !strings.Contains(row[1], "超标") || strings.Contains(row[1], "未超标") {
		t.Errorf("Ringelmann row %q, want grade 4, 超标", row[1])
	}
	if !strings.Contains(page, "result code 0 (不合格 fail)") {
		t.Errorf("case page lacks result code 0 (不合格 fail)")
	}

	_, veh := b.get("/vehicles?plate=" + p.Plate.Text)
	if !strings.Contains(veh, "超标 exceed") || strings.Contains(veh, "合格 pass") {
		t.Errorf("vehicle file does not show the pass as an exceedance:\n%s", veh)
	}

	r.waitCase(t, id, "packaged", func(c *central.Case) bool { return c.PackageSHA256 != "" })
	resp, pdf := b.get("/cases/" + string(id) + "/sheet.pdf")
	if resp.StatusCode != 200 {
		t.Fatalf("sheet: %d %s", resp.StatusCode, pdf)
	}
	// Table cells wrap: compare without white space.
	flat := func(s string) string { return strings.Join(strings.Fields(s), "") }
	text := flat(pdfText(t, []byte(pdf)))
	for _, want := range []string{"6063", "result code 0", "不合格 fail", "林格曼黑度 Ringelmann", "4 grade", "超标 EXCEEDED"} {
		if !strings.Contains(text, flat(want)) {
			t.Errorf("sheet lacks %q:\n%s", want, text)
		}
	}
	for _, bad := range []string{"result code 1", "(pass)", "合格 pass"} {
		if strings.Contains(text, flat(bad)) {
			t.Errorf("sheet of a smoke case says %q", bad)
		}
	}
}

// TestCaseTimesAgree: one clock for a case. The queue, the case header
// and the sheet show the time of the pass, not the moment the station
// signed (here 11 s later); each image's caption shows its capture time
// written the way its burnt-in strip writes it (plume.FormatTime, to the
// second, zone named); the sheet shows the same strings.
func TestCaseTimesAgree(t *testing.T) {
	r := newRig(t)
	passAt := time.Now().Add(-time.Hour).Truncate(time.Second).Add(680 * time.Millisecond)
	p := fixture.Pass(r.a.Station, passAt, 1, true)
	p.ReceivedAt = passAt.Add(11 * time.Second) // the station signed late
	id := r.putPass(t, r.a, p, nil)
	zone, err := plume.LoadZone("")
	if err != nil {
		t.Fatal(err)
	}
	passStamp, signStamp := plume.FormatTime(passAt, zone), plume.FormatTime(p.ReceivedAt, zone)
	b := r.login(t, "li.wei")

	_, page := b.get("/cases/" + string(id))
	page = html.UnescapeString(page)
	if m := regexp.MustCompile(`<span id="case-time"[^>]*>([^<]*)</span>`).FindStringSubmatch(page); m == nil || m[1] != passStamp {
		t.Errorf("case header time %q, want the pass time %q", m, passStamp)
	}
	shots := regexp.MustCompile(`<span class="shot-time" data-name="([^"]+)">([^<]*)</span>`).FindAllStringSubmatch(page, -1)
	if len(shots) != 2 {
		t.Fatalf("%d image captions with times, want 2", len(shots))
	}
	// The rig stamps scene-1 at ReceivedAt and scene-2 0.4 s later.
	want := map[string]string{"scene-1.jpg": signStamp, "scene-2.jpg": plume.FormatTime(p.ReceivedAt.Add(400*time.Millisecond), zone)}
	for _, s := range shots {
		if s[2] != want[s[1]] {
			t.Errorf("caption of %s says %q, want %q", s[1], s[2], want[s[1]])
		}
	}
	if !strings.Contains(page, `id="zone"`) || !strings.Contains(page, "UTC+8") {
		t.Error("the page does not name its zone")
	}
	_, queue := b.get("/queue")
	if !strings.Contains(queue, passAt.In(zone).Format("2006-01-02 15:04:05")) || strings.Contains(queue, p.ReceivedAt.In(zone).Format("15:04:05")) {
		t.Errorf("queue does not show the pass time %s", passStamp)
	}

	r.waitCase(t, id, "packaged", func(c *central.Case) bool { return c.PackageSHA256 != "" })
	_, pdf := b.get("/cases/" + string(id) + "/sheet.pdf")
	text := pdfText(t, []byte(pdf))
	if !strings.Contains(text, passStamp) {
		t.Errorf("sheet lacks the pass time %q:\n%s", passStamp, text)
	}
	if !strings.Contains(text, signStamp) {
		t.Errorf("sheet's image captions lack %q", signStamp)
	}
}
