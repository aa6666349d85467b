package vision

// Plates on rendered scenes, drawn like GA 36 plates: the blue 440×140 mm
// single-row plate with its white border, seven characters in 45×90 mm
// boxes (province, letter, a dot, five serial characters). OpenCV's Hershey
// fonts have no Chinese and look nothing like plate lettering, so the
// glyphs come from a small committed atlas (plate_glyphs.png: the 31
// provinces from a CJK font, digits and letters from DejaVu Sans Bold, each
// stretched to fill its cell as plate characters fill their box), made by
// TestPlateGlyphs with -update-plate-glyphs.

import (
	"bytes"
	_ "embed"
	"fmt"
	"image"
	"image/png"
	"strings"
	"sync"

	"gocv.io/x/gocv"
)

// provinceChars are the GA 36 province abbreviations.
const provinceChars = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"

// plateGlyphChars are the atlas's characters, in cell order.
const plateGlyphChars = provinceChars + "0123456789" + "ABCDEFGHJKLMNPQRSTUVWXYZ"

const (
	glyphW, glyphH = 24, 48 // atlas cell, pixels (a plate character's 45×90 mm box)
	plateGlyphFile = "plate_glyphs.png"
)

//go:embed plate_glyphs.png
var plateGlyphPNG []byte

var plateGlyphs = sync.OnceValues(decodePlateGlyphs)

func decodePlateGlyphs() (*image.Gray, error) {
	img, err := png.Decode(bytes.NewReader(plateGlyphPNG))
	if err != nil {
		return nil, fmt.Errorf("plate glyphs: %w", err)
	}
	g, ok := img.(*image.Gray)
	if !ok {
		return nil, fmt.Errorf("plate glyphs: %T, want grey", img)
	}
	return g, nil
}

// provinceOf picks a vehicle's province without touching the scene's
// random stream (so scenes stay as they were apart from the plates).
func provinceOf(seed int64, id int) rune {
	r := []rune(provinceChars)
	return r[int((uint64(seed)*2654435761+uint64(id)*40503)%uint64(len(r)))]
}

// drawPlate draws a blue GA 36 plate reading text (seven characters) into
// r of img (BGR), its white scaled by gain (the scene's light).
func drawPlate(img *gocv.Mat, r image.Rectangle, text string, gain float64) {
	r = r.Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
	if r.Dx() < 14 || r.Dy() < 5 {
		return
	}
	bg := [3]float64{200 * gain, 70 * gain, 20 * gain} // B, G, R
	ink := [3]float64{240 * gain, 240 * gain, 240 * gain}
	fill(img, r, bg)
	// Millimetres to pixels.
	mm := func(x, y, w, h float64) image.Rectangle {
		sx, sy := float64(r.Dx())/440, float64(r.Dy())/140
		return image.Rect(r.Min.X+int(x*sx+0.5), r.Min.Y+int(y*sy+0.5), r.Min.X+int((x+w)*sx+0.5), r.Min.Y+int((y+h)*sy+0.5))
	}
	// The border line, 3 mm in from the edge, where it shows.
	if r.Dx() >= 40 {
		b := mm(4, 4, 432, 132)
		for _, e := range []image.Rectangle{
			image.Rect(b.Min.X, b.Min.Y, b.Max.X, b.Min.Y+1), image.Rect(b.Min.X, b.Max.Y-1, b.Max.X, b.Max.Y),
			image.Rect(b.Min.X, b.Min.Y, b.Min.X+1, b.Max.Y), image.Rect(b.Max.X-1, b.Min.Y, b.Max.X, b.Max.Y),
		} {
			fill(img, e, ink)
		}
	}
	for i, c := range []rune(text) {
		if i >= 7 {
			break
		}
		x := 15.5 + 57*float64(i) // province, letter
		if i >= 2 {
			x = 151.5 + 57*float64(i-2) // the serial, after the dot
		}
		box := mm(x, 25, 45, 90)
		if c == '1' { // the digit 1 is a narrow stroke, centred in its box
			box = mm(x+15, 25, 15, 90)
		}
		drawGlyph(img, box, c, ink)
	}
	fill(img, mm(129, 65, 10, 10), ink) // the dot after the second character
}

// drawGlyph blends character c's glyph, stretched to r, onto img in colour
// col (B, G, R). An unknown character or an empty box draws nothing.
func drawGlyph(img *gocv.Mat, r image.Rectangle, c rune, col [3]float64) {
	atlas, err := plateGlyphs()
	idx := strings.IndexRune(plateGlyphChars, c)
	r = r.Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
	if err != nil || idx < 0 || r.Empty() {
		return
	}
	idx = len([]rune(plateGlyphChars[:idx]))
	for y := r.Min.Y; y < r.Max.Y; y++ {
		gy := (2*(y-r.Min.Y) + 1) * glyphH / (2 * r.Dy())
		for x := r.Min.X; x < r.Max.X; x++ {
			gx := idx*glyphW + (2*(x-r.Min.X)+1)*glyphW/(2*r.Dx())
			a := float64(atlas.GrayAt(gx, gy).Y) / 255
			if a == 0 {
				continue
			}
			v := img.GetVecbAt(y, x)
			for ch := range 3 {
				img.SetUCharAt(y, x*3+ch, uint8(float64(v[ch])*(1-a)+col[ch]*a+0.5))
			}
		}
	}
}

// fill paints r of img (BGR) in colour col (B, G, R), clipped to img.
func fill(img *gocv.Mat, r image.Rectangle, col [3]float64) {
	r = r.Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			for ch := range 3 {
				img.SetUCharAt(y, x*3+ch, uint8(min(255, max(0, col[ch]))))
			}
		}
	}
}
