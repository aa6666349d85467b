package vision

import (
	"bytes"
	"flag"
	"image"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/image/font"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

var updateProvinceAtlas = flag.String("update-province-atlas", "", "render "+provinceAtlasFile+" from this CJK font (e.g. /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc)")

// TestProvinceAtlas checks the committed atlas (one glyph per province, in
// provinceChars order) and, with -update-province-atlas FONT, renders it
// again from a CJK font (pure Go, golang.org/x/image/font/opentype):
//
//	go test ./edge/vision/ -run TestProvinceAtlas -update-province-atlas /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc
func TestProvinceAtlas(t *testing.T) {
	if *updateProvinceAtlas != "" {
		data, err := os.ReadFile(*updateProvinceAtlas)
		if err != nil {
			t.Fatal(err)
		}
		coll, err := opentype.ParseCollection(data)
		if err != nil {
			t.Fatal(err)
		}
		f, err := coll.Font(0)
		if err != nil {
			t.Fatal(err)
		}
		face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: provinceGlyph * 0.9, DPI: 72, Hinting: font.HintingFull})
		if err != nil {
			t.Fatal(err)
		}
		defer face.Close()
		runes := []rune(provinceChars)
		img := image.NewGray(image.Rect(0, 0, provinceGlyph*len(runes), provinceGlyph))
		d := &font.Drawer{Dst: img, Src: image.White, Face: face}
		for i, r := range runes {
			adv, ok := face.GlyphAdvance(r)
			if !ok {
				t.Fatalf("font has no %q", r)
			}
			x := provinceGlyph*i + (provinceGlyph-adv.Round())/2
			d.Dot = fixed.P(x, provinceGlyph*85/100)
			d.DrawString(string(r))
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(".", provinceAtlasFile), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	atlas, err := loadProvinceAtlas()
	if err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(provinceChars)); n != 31 || atlas.Bounds().Dx() != n*provinceGlyph {
		t.Fatalf("%d provinces, atlas %v", n, atlas.Bounds())
	}
	// Every glyph has ink, and no two glyphs are the same.
	seen := map[string]bool{}
	for i := range []rune(provinceChars) {
		g := image.NewGray(image.Rect(0, 0, provinceGlyph, provinceGlyph))
		draw.Draw(g, g.Bounds(), atlas, image.Pt(i*provinceGlyph, 0), draw.Src)
		ink := 0
		for _, v := range g.Pix {
			if v > 128 {
				ink++
			}
		}
		if ink < provinceGlyph*provinceGlyph/20 {
			t.Errorf("glyph %d (%c) has %d inked pixels", i, []rune(provinceChars)[i], ink)
		}
		if seen[string(g.Pix)] {
			t.Errorf("glyph %d repeats another", i)
		}
		seen[string(g.Pix)] = true
	}
}
