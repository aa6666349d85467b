package evidence

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-pdf/fpdf"
)

// TestWrapText: wrapped sheet text keeps every character (fpdf's
// SplitText dropped the one at a CJK break), each line fits, and Latin
// words are not cut when a space or CJK character offers a break.
func TestWrapText(t *testing.T) {
	font, err := LoadSheetFont(DefaultSheetFont)
	if errors.Is(err, ErrNoSheetFont) {
		t.Skipf("SKIP: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.AddUTF8FontFromBytes("zh", "", font)
	pdf.SetFont("zh", "", 9)
	text := "HJ 845-2017, limit profile hj845-2017-diesel@2026.11-1; 结果代码 result code 0 (不合格 fail) 驾驶排放不合格的机动车上道路行驶的，予以警告。"
	for _, w := range []float64{20, 35, 60, 127} {
		lines := wrapText(pdf, text, w)
		if got, want := strings.Join(strings.Fields(strings.Join(lines, "")), ""), strings.Join(strings.Fields(text), ""); got != want {
			t.Errorf("width %v: characters lost:\n got %s\nwant %s", w, got, want)
		}
		for _, l := range lines {
			if pdf.GetStringWidth(l) > w-2*pdf.GetCellMargin()+0.01 {
				t.Errorf("width %v: line %q is %.1f wide", w, l, pdf.GetStringWidth(l))
			}
			if strings.HasPrefix(l, "，") || strings.HasPrefix(l, "。") {
				t.Errorf("width %v: line %q starts with closing punctuation", w, l)
			}
		}
		for _, word := range []string{"profile", "hj845-2017-diesel@2026.11-1;"} {
			if w >= 60 && !strings.Contains(strings.Join(lines, "\n"), word) {
				t.Errorf("width %v: word %q cut: %q", w, word, lines)
			}
		}
	}
}
