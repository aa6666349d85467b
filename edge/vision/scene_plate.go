package vision

// Province characters on rendered plates. OpenCV's Hershey fonts have no
// Chinese, so the 31 province glyphs are pre-rendered into a small
// committed atlas (province_atlas.png, made by TestProvinceAtlas with
// -update-province-atlas from a CJK font) and blended onto the plate.

import (
	"bytes"
	_ "embed"
	"fmt"
	"image"
	"image/png"
	"sync"

	"gocv.io/x/gocv"
)

// provinceChars are the GA 36 province abbreviations, in atlas order.
const provinceChars = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"

const (
	provinceGlyph     = 32 // atlas cell, pixels
	provinceAtlasFile = "province_atlas.png"
)

//go:embed province_atlas.png
var provinceAtlasPNG []byte

var provinceAtlas = sync.OnceValues(decodeProvinceAtlas)

func loadProvinceAtlas() (*image.Gray, error) { return decodeProvinceAtlas() }

func decodeProvinceAtlas() (*image.Gray, error) {
	img, err := png.Decode(bytes.NewReader(provinceAtlasPNG))
	if err != nil {
		return nil, fmt.Errorf("province atlas: %w", err)
	}
	g, ok := img.(*image.Gray)
	if !ok {
		return nil, fmt.Errorf("province atlas: %T, want grey", img)
	}
	return g, nil
}

// provinceOf picks a vehicle's province without touching the scene's
// random stream (so scenes stay as they were apart from the plates).
func provinceOf(seed int64, id int) rune {
	r := []rune(provinceChars)
	return r[int((uint64(seed)*2654435761+uint64(id)*40503)%uint64(len(r)))]
}

// drawProvince blends province p's glyph, scaled to fit r, onto img (BGR)
// in colour c (B, G, R). It does nothing for an unknown rune or a box too
// small.
func drawProvince(img *gocv.Mat, r image.Rectangle, p rune, c [3]float64) {
	atlas, err := provinceAtlas()
	if err != nil || r.Dx() < 4 || r.Dy() < 4 {
		return
	}
	idx := -1
	for i, q := range []rune(provinceChars) {
		if q == p {
			idx = i
		}
	}
	r = r.Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
	if idx < 0 || r.Empty() {
		return
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		gy := (y - r.Min.Y) * provinceGlyph / r.Dy()
		for x := r.Min.X; x < r.Max.X; x++ {
			gx := idx*provinceGlyph + (x-r.Min.X)*provinceGlyph/r.Dx()
			a := float64(atlas.GrayAt(gx, gy).Y) / 255
			if a == 0 {
				continue
			}
			v := img.GetVecbAt(y, x)
			for ch := range 3 {
				img.SetUCharAt(y, x*3+ch, uint8(float64(v[ch])*(1-a)+c[ch]*a+0.5))
			}
		}
	}
}
