package server_test

import (
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
