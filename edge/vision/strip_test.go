package vision

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
)

var (
	stripFontOnce sync.Once
	stripFontVal  *StripFont
	stripFontErr  error
)

// stripFont loads the default strip font once, or skips the test.
func stripFont(tb testing.TB) *StripFont {
	tb.Helper()
	stripFontOnce.Do(func() { stripFontVal, stripFontErr = LoadStripFont() })
	if errors.Is(stripFontErr, ErrNoStripFont) {
		tb.Skipf("SKIP: %v", stripFontErr)
	}
	if stripFontErr != nil {
		tb.Fatal(stripFontErr)
	}
	return stripFontVal
}

// inkColumns returns, per column of img, whether any pixel is bright text.
func inkRows(img *image.RGBA) (first, last int) {
	first, last = -1, -1
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if img.RGBAAt(x, y).R > 128 {
				if first < 0 {
					first = y
				}
				last = y
				break
			}
		}
	}
	return first, last
}

// diff counts pixels that differ between a and b (same size).
func diff(a, b *image.RGBA) int {
	n := 0
	for i := 0; i < len(a.Pix); i += 4 {
		if a.Pix[i] != b.Pix[i] {
			n++
		}
	}
	return n
}

// TestStripProvince: the strip writes the plate's province character
// itself, not "[Yu]": the rendered line differs from the same line with
// another province (and from pinyin), and matches itself rendered again.
func TestStripProvince(t *testing.T) {
	f := stripFont(t)
	draw := func(s string) *image.RGBA {
		img, err := f.Draw(1280, []string{s})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	yu, yu2, yue, pinyin := draw("号牌 plate: 豫A12345"), draw("号牌 plate: 豫A12345"), draw("号牌 plate: 粤A12345"), draw("号牌 plate: [Yu]A12345")
	if d := diff(yu, yu2); d != 0 {
		t.Fatalf("same text rendered twice differs in %d pixels", d)
	}
	if d := diff(yu, yue); d < 50 {
		t.Errorf("豫 and 粤 differ in only %d pixels: the province is not drawn", d)
	}
	if yu.Bounds() == pinyin.Bounds() && diff(yu, pinyin) < 50 {
		t.Errorf("豫 drawn like [Yu]")
	}
	// The province glyph has ink: blank it out and the image changes.
	blank := draw("号牌 plate:  A12345")
	if diff(yu, blank) < 50 {
		t.Errorf("the province character left no ink")
	}
	if dir := os.Getenv("PLUME_KEEP_STRIP"); dir != "" {
		fh, _ := os.Create(filepath.Join(dir, "strip-province.png"))
		png.Encode(fh, yu)
		fh.Close()
	}
}

// TestStripLegible: on a 1280×720 frame the text is at least 3 % of the
// frame's height (the cap of the letters measured from the ink), and the
// strip keeps every line, wrapped, within the width.
func TestStripLegible(t *testing.T) {
	f := stripFont(t)
	zone, _ := plume.LoadZone("")
	info := EvidenceInfo{Station: "DEMO-0001", Place: "演示路 Demo Road km 12.4, 北向 northbound", Lane: 2,
		Time: time.Date(2026, 12, 4, 14, 6, 5, 680e6, time.UTC), Zone: zone, Font: f,
		Plate: "豫A12345 (yellow, conf 0.97)", Grade: "Ringelmann 4, black smoke, conf 0.91 (camera)",
		Measured: []string{"CO 0.12 %", "HC 40 ppm", "NO 900 ppm", "opacity 8 %"}, Reason: "smoke"}
	lines := stripLines(info, info.Time, "全景 scene 1/2")
	if !strings.HasPrefix(lines[0], "2026-12-04 22:06:05 UTC+8") {
		t.Fatalf("strip time %q, want the station's time with its zone", lines[0])
	}
	for _, w := range []int{1280, 1920, 640} {
		img, err := f.Draw(w, lines)
		if err != nil {
			t.Fatal(err)
		}
		// One line alone: its ink height is the text height.
		one, err := f.Draw(w, []string{"2026-12-04 22:06:05 UTC+8 豫A12345"})
		if err != nil {
			t.Fatal(err)
		}
		top, bottom := inkRows(one)
		frameH := w * 9 / 16
		if ink := bottom - top + 1; float64(ink) < 0.03*float64(frameH) {
			t.Errorf("width %d: text %d px high, under 3 %% of a %d px frame", w, ink, frameH)
		}
		if img.Bounds().Dx() != w || img.Bounds().Dy() < len(lines)*int(StripTextPx(w)) {
			t.Errorf("width %d: strip %v for %d lines", w, img.Bounds(), len(lines))
		}
	}
}

// TestStripFontMissing: with no usable font file the strip fails clearly
// instead of writing unreadable text.
func TestStripFontMissing(t *testing.T) {
	_, err := LoadStripFont(filepath.Join(t.TempDir(), "none.ttc"))
	if !errors.Is(err, ErrNoStripFont) || !strings.Contains(err.Error(), "fonts-noto-cjk") {
		t.Fatalf("got %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.ttc")
	os.WriteFile(bad, []byte("not a font"), 0o600)
	if _, err := LoadStripFont(bad); !errors.Is(err, ErrNoStripFont) {
		t.Fatalf("got %v", err)
	}
	if _, err := WriteEvidence(t.Context(), &Sighting{}, t.TempDir(), EvidenceInfo{}); !errors.Is(err, ErrNoStripFont) {
		t.Fatalf("evidence without a font: %v", err)
	}
	m, err := RenderStrip(nil, 1280, []string{"x"})
	m.Close()
	if !errors.Is(err, ErrNoStripFont) {
		t.Fatalf("strip without a font: %v", err)
	}
}

// TestEvidenceStripMatchesPage: a scene written by WriteEvidence carries,
// under the picture, exactly the strip that says the file's capture time
// in the station's zone (the time the pages show beside it, from the
// same CapturedAt, to the second) and the plate's province character:
// the image's strip matches a reference rendering of those lines, and not
// one with another second or another province.
func TestEvidenceStripMatchesPage(t *testing.T) {
	f := stripFont(t)
	zone, _ := plume.LoadZone("")
	at := time.Date(2026, 12, 4, 14, 6, 5, 680e6, time.UTC)
	frame := func(at time.Time) RingFrame {
		img := image.NewRGBA(image.Rect(0, 0, 1280, 720))
		for i := range img.Pix {
			img.Pix[i] = byte(60 + i%7)
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		return RingFrame{At: at, Width: 1280, Height: 720, Scale: 1, JPEG: buf.Bytes()}
	}
	s := &Sighting{Lane: 1, Crossed: at, Scenes: []RingFrame{frame(at), frame(at.Add(400 * time.Millisecond))}}
	info := EvidenceInfo{Station: "DEMO-0001", Place: "演示路 Demo Road", Lane: 1, Time: at, Zone: zone, Font: f,
		Plate: "豫A12345", Grade: "林格曼 4 级 Ringelmann 4", Reason: "smoke"}
	files, err := WriteEvidence(t.Context(), s, t.TempDir(), info)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || !files[0].CapturedAt.Equal(at) {
		t.Fatalf("files %+v", files)
	}
	if dir := os.Getenv("PLUME_KEEP_STRIP"); dir != "" {
		os.WriteFile(filepath.Join(dir, "strip-scene.jpg"), mustRead(t, files[0].Path), 0o644)
	}
	got, err := jpeg.Decode(bytes.NewReader(mustRead(t, files[0].Path)))
	if err != nil {
		t.Fatal(err)
	}
	stripOf := func(lines []string) *image.RGBA {
		img, err := f.Draw(1280, lines)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	want := stripLines(info, files[0].CapturedAt, "scene 1 of 2")
	if !strings.HasPrefix(want[0], "2026-12-04 22:06:05 UTC+8") {
		t.Fatalf("strip line %q", want[0])
	}
	ref := stripOf(want)
	h := ref.Bounds().Dy()
	if got.Bounds().Dy() != 720+h {
		t.Fatalf("image %v, want 720 rows and a %d-row strip", got.Bounds(), h)
	}
	if float64(h) < 0.03*720 {
		t.Errorf("strip %d rows, under 3 %% of the frame", h)
	}
	grey := func(x, y int) int {
		r, _, _, _ := got.At(x, 720+y).RGBA()
		return int(r >> 8)
	}
	abs := func(d int) int { return max(d, -d) }
	// Where the reference and another rendering differ, the image's strip
	// must look like the reference.
	closer := func(other *image.RGBA) (n, of int) {
		for y := range h {
			for x := range 1280 {
				a, b := int(ref.RGBAAt(x, y).R), int(other.RGBAAt(x, y).R)
				if abs(a-b) < 96 {
					continue
				}
				of++
				if g := grey(x, y); abs(g-a) < abs(g-b) {
					n++
				}
			}
		}
		return n, of
	}
	otherProvince := info
	otherProvince.Plate = "粤A12345"
	for what, lines := range map[string][]string{
		"a second later": stripLines(info, files[0].CapturedAt.Add(time.Second), "scene 1 of 2"),
		"province 粤":     stripLines(otherProvince, files[0].CapturedAt, "scene 1 of 2"),
	} {
		n, of := closer(stripOf(lines))
		t.Logf("against the rendering %s: %d of %d differing pixels look like the reference", what, n, of)
		if of < 20 || float64(n) < 0.9*float64(of) {
			t.Errorf("strip does not match its own lines better than the rendering %s: %d of %d pixels", what, n, of)
		}
	}
}

// TestSmokeCloseUpMarksPlume: the smoke close-up shows the plume's box,
// outlined, with the road around it, not only the inside of the box.
func TestSmokeCloseUpMarksPlume(t *testing.T) {
	f := stripFont(t)
	img := image.NewRGBA(image.Rect(0, 0, 1280, 720))
	for i := range img.Pix {
		img.Pix[i] = 90
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 4, 14, 6, 5, 0, time.UTC)
	box := image.Rect(400, 300, 600, 420)
	s := &Sighting{Lane: 1, Crossed: at, SmokeFrame: RingFrame{At: at, Width: 1280, Height: 720, Scale: 1, JPEG: buf.Bytes()}, SmokeBox: box}
	files, err := WriteEvidence(t.Context(), s, t.TempDir(), EvidenceInfo{Station: "S", Lane: 1, Time: at, Font: f})
	if err != nil || len(files) != 1 || files[0].Kind != plume.MediaSmoke {
		t.Fatalf("files %+v, %v", files, err)
	}
	out, err := jpeg.Decode(bytes.NewReader(mustRead(t, files[0].Path)))
	if err != nil {
		t.Fatal(err)
	}
	// Widened by half the box each side: 400×240 scaled to 640 wide, so
	// 384 rows of picture above the strip; the outline is yellow.
	pictureH := 240 * 640 / 400
	yellow, grey := 0, 0
	for y := range pictureH {
		for x := range out.Bounds().Dx() {
			r, g, b, _ := out.At(x, y).RGBA()
			switch {
			case r>>8 > 200 && g>>8 > 150 && b>>8 < 100:
				yellow++
			case r>>8 > 70 && r>>8 < 110 && g>>8 > 70 && g>>8 < 110:
				grey++
			}
		}
	}
	if out.Bounds().Dx() != 640 || yellow < 1000 {
		t.Errorf("close-up %v with %d outline pixels: the plume box is not drawn", out.Bounds(), yellow)
	}
	if grey < pictureH*640/2 {
		t.Errorf("only %d pixels of the surroundings", grey)
	}
}
