package vision

// The information strip under every evidence image (GA/T 832-2014): time
// to the second with its zone, station, place, lane, plate, smoke grade
// and the measured values, in Chinese with English beside it. OpenCV's
// Hershey fonts are ASCII only, so the strip is drawn in Go with a CJK
// font (golang.org/x/image/font/opentype) into an image.RGBA and then
// stacked under the picture as a BGR Mat.

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"os"
	"strings"

	"gocv.io/x/gocv"
	"golang.org/x/image/font"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"
)

// DefaultStripFonts are the font files tried, in order, for the strip:
// Debian's fonts-noto-cjk (installed by deploy/bootstrap). The face used is
// the collection's Simplified Chinese one. (wqy-zenhei's .ttc does not
// parse with golang.org/x/image's sfnt.)
var DefaultStripFonts = []string{
	"/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
	"/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
}

// ErrNoStripFont is returned by LoadStripFont when no font file given
// holds a usable CJK font.
var ErrNoStripFont = errors.New("evidence strip font not usable")

// StripFont is the parsed CJK font the strip is set in. It is safe for
// concurrent use: each strip makes its own face.
type StripFont struct {
	font *opentype.Font
	path string
}

// LoadStripFont parses the first of paths (DefaultStripFonts when none)
// that holds a font with the Chinese characters of plates. From a
// collection it takes the face whose family names Simplified Chinese
// ("… SC"), or else the first.
func LoadStripFont(paths ...string) (*StripFont, error) {
	if len(paths) == 0 {
		paths = DefaultStripFonts
	}
	var errs []error
	for _, p := range paths {
		f, err := parseStripFont(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		return &StripFont{font: f, path: p}, nil
	}
	return nil, fmt.Errorf("%w (install fonts-noto-cjk, see deploy/bootstrap): %w", ErrNoStripFont, errors.Join(errs...))
}

func parseStripFont(path string) (*opentype.Font, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	coll, err := opentype.ParseCollection(data)
	if err != nil {
		return nil, err
	}
	var pick *opentype.Font
	for i := range coll.NumFonts() {
		f, err := coll.Font(i)
		if err != nil {
			continue
		}
		if pick == nil {
			pick = f
		}
		if name, err := f.Name(nil, sfnt.NameIDFamily); err == nil && strings.HasSuffix(name, " SC") {
			pick = f
			break
		}
	}
	if pick == nil {
		return nil, errors.New("no font in the file")
	}
	// The strip must be able to write every province character.
	var buf sfnt.Buffer
	for _, r := range "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼警学挂使领港澳" {
		if gi, err := pick.GlyphIndex(&buf, r); err != nil || gi == 0 {
			return nil, fmt.Errorf("no glyph for %q", r)
		}
	}
	return pick, nil
}

// StripTextPx is the strip's text size in pixels for an image width pixels
// wide: 1/48 of the width (27 px at 1280, 40 px at 1920), at least 20 px,
// so the strip reads at the image's own scale.
func StripTextPx(width int) float64 { return max(20, float64(width)/48) }

// maxStripLines is the most lines a strip holds after wrapping.
const maxStripLines = 16

// RenderStrip draws lines of text, white on near-black, into a BGR strip
// width pixels wide; the caller closes it, even on error.
func RenderStrip(f *StripFont, width int, lines []string) (gocv.Mat, error) {
	if f == nil {
		return gocv.NewMat(), fmt.Errorf("strip: %w: no font loaded", ErrNoStripFont)
	}
	img, err := f.Draw(width, lines)
	if err != nil {
		return gocv.NewMat(), err
	}
	b := img.Bounds()
	bgr := make([]byte, 0, b.Dx()*b.Dy()*3)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := img.Pix[(y-b.Min.Y)*img.Stride:]
		for x := range b.Dx() {
			bgr = append(bgr, row[4*x+2], row[4*x+1], row[4*x])
		}
	}
	m, err := gocv.NewMatFromBytes(b.Dy(), b.Dx(), gocv.MatTypeCV8UC3, bgr)
	if err != nil {
		return m, fmt.Errorf("strip: %w", err)
	}
	return m, nil
}

// Draw renders the strip as an image: the lines wrapped at spaces (or
// between CJK characters) to the width, at StripTextPx(width).
func (f *StripFont) Draw(width int, lines []string) (*image.RGBA, error) {
	if width < 64 || width > 8192 || len(lines) == 0 || len(lines) > 12 {
		return nil, fmt.Errorf("strip: %w: width %d, %d lines", ErrBadFrame, width, len(lines))
	}
	px := StripTextPx(width)
	face, err := opentype.NewFace(f.font, &opentype.FaceOptions{Size: px, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		return nil, fmt.Errorf("strip face: %w", err)
	}
	defer face.Close()
	pad := int(px / 2)
	lines = wrapStrip(face, lines, width-2*pad)
	lineH := int(px * 1.4)
	h := (lineH*len(lines) + pad*3/2) &^ 1
	img := image.NewRGBA(image.Rect(0, 0, width, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.RGBA{R: 16, G: 20, B: 24, A: 255}), image.Point{}, draw.Src)
	d := font.Drawer{Dst: img, Src: image.NewUniform(color.RGBA{R: 245, G: 245, B: 235, A: 255}), Face: face}
	ascent := face.Metrics().Ascent.Ceil()
	for i, l := range lines {
		d.Dot = fixed.P(pad, pad/2+i*lineH+ascent+(lineH-int(px))/2)
		d.DrawString(l)
	}
	return img, nil
}

// wrapStrip breaks lines so each fits width pixels: at a space, or beside
// a CJK character, or inside a word only when it alone is too wide.
// Continuation lines are indented. At most maxStripLines come back.
func wrapStrip(face font.Face, lines []string, width int) []string {
	limit := fixed.I(width)
	var out []string
	for _, l := range lines {
		rs := []rune(l)
		first := true
		for len(rs) > 0 {
			prefix := ""
			if !first {
				prefix = "  "
			}
			adv := font.MeasureString(face, prefix)
			n := 0
			for n < len(rs) {
				a, _ := face.GlyphAdvance(rs[n])
				if adv+a > limit {
					break
				}
				adv += a
				n++
			}
			if n == len(rs) {
				out = append(out, prefix+string(rs))
				break
			}
			cut, skip := max(n, 1), 0
			for k := n; k > 0; k-- {
				if rs[k] == ' ' {
					cut, skip = k, 1
					break
				}
				if rs[k] >= 0x2e80 || rs[k-1] >= 0x2e80 {
					cut = k
					break
				}
			}
			out = append(out, prefix+strings.TrimRight(string(rs[:cut]), " "))
			rs = []rune(strings.TrimLeft(string(rs[cut+skip:]), " "))
			first = false
		}
	}
	return out[:min(len(out), maxStripLines)]
}
