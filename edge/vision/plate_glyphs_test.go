package vision

import (
	"bytes"
	"flag"
	"image"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

var updatePlateGlyphs = flag.String("update-plate-glyphs", "", "render "+plateGlyphFile+" from CJKFONT,LATINFONT (see TestPlateGlyphs)")

// TestPlateGlyphs checks the committed atlas (one glyph per character of
// plateGlyphChars, in order) and, with -update-plate-glyphs, renders it
// again (pure Go, golang.org/x/image/font/opentype): the provinces from a
// CJK font, digits and letters from a Latin one, each glyph cut to its ink
// and stretched to fill its cell, as plate lettering fills its box:
//
//	go test ./edge/vision/ -run TestPlateGlyphs -update-plate-glyphs /usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc,/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
//
// (wqy-zenhei's .ttc does not parse with golang.org/x/image's sfnt.)
func TestPlateGlyphs(t *testing.T) {
	if *updatePlateGlyphs != "" {
		fonts := strings.Split(*updatePlateGlyphs, ",")
		if len(fonts) != 2 {
			t.Fatal("-update-plate-glyphs CJKFONT,LATINFONT")
		}
		cjk, latin := loadFace(t, fonts[0]), loadFace(t, fonts[1])
		runes := []rune(plateGlyphChars)
		atlas := image.NewGray(image.Rect(0, 0, glyphW*len(runes), glyphH))
		for i, r := range runes {
			face := latin
			if strings.ContainsRune(provinceChars, r) {
				face = cjk
			}
			big := image.NewGray(image.Rect(0, 0, 200, 200))
			d := &font.Drawer{Dst: big, Src: image.White, Face: face, Dot: fixed.P(20, 160)}
			if _, ok := face.GlyphAdvance(r); !ok {
				t.Fatalf("font has no %q", r)
			}
			d.DrawString(string(r))
			ink := inkBounds(big)
			if ink.Empty() {
				t.Fatalf("%q has no ink", r)
			}
			cell := image.Rect(i*glyphW, 0, (i+1)*glyphW, glyphH)
			xdraw.CatmullRom.Scale(atlas, cell, big, ink, xdraw.Src, nil)
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, atlas); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(".", plateGlyphFile), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	atlas, err := decodePlateGlyphs()
	if err != nil {
		t.Fatal(err)
	}
	n := len([]rune(plateGlyphChars))
	if n != 31+10+24 || atlas.Bounds().Dx() != n*glyphW || atlas.Bounds().Dy() != glyphH {
		t.Fatalf("%d characters, atlas %v", n, atlas.Bounds())
	}
	// Every glyph has ink, and no two glyphs are the same.
	seen := map[string]bool{}
	for i, r := range []rune(plateGlyphChars) {
		g := image.NewGray(image.Rect(0, 0, glyphW, glyphH))
		draw.Draw(g, g.Bounds(), atlas, image.Pt(i*glyphW, 0), draw.Src)
		ink := 0
		for _, v := range g.Pix {
			if v > 128 {
				ink++
			}
		}
		if ink < glyphW*glyphH/12 {
			t.Errorf("glyph %d (%c) has %d inked pixels", i, r, ink)
		}
		if seen[string(g.Pix)] {
			t.Errorf("glyph %d (%c) repeats another", i, r)
		}
		seen[string(g.Pix)] = true
	}
}

func loadFace(t *testing.T, path string) font.Face {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	coll, err := opentype.ParseCollection(data)
	if err != nil {
		t.Fatal(err)
	}
	idx := 0
	if strings.Contains(path, "NotoSansCJK") {
		idx = 2 // the simplified-Chinese member of the collection
	}
	f, err := coll.Font(min(idx, coll.NumFonts()-1))
	if err != nil {
		t.Fatal(err)
	}
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: 120, DPI: 72, Hinting: font.HintingNone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { face.Close() })
	return face
}

// inkBounds is the smallest rectangle holding every pixel above 40.
func inkBounds(g *image.Gray) image.Rectangle {
	var r image.Rectangle
	b := g.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if g.GrayAt(x, y).Y > 40 {
				r = r.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	return r
}
