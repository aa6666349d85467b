package vision

import (
	"image"
	"math"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/plume-emissions/plume"
)

// TestFitToCharacters gives the fit a rough quad like a spilt colour mask
// (too wide, too tall, off-centre, tilted) around each scene plate, the
// double-row one included, and checks that the corners come back to the
// plate's.
func TestFitToCharacters(t *testing.T) {
	dir, metas := scenes(t)
	for _, m := range metas {
		t.Run(m.File, func(t *testing.T) {
			img := gocv.IMRead(filepath.Join(dir, m.File), gocv.IMReadColor)
			defer img.Close()
			if img.Empty() {
				t.Fatal("cannot read the scene")
			}
			var truth [4][2]float64
			for i, c := range m.Corners {
				truth[i] = [2]float64{float64(c[0]), float64(c[1])}
			}
			w := math.Hypot(truth[1][0]-truth[0][0], truth[1][1]-truth[0][1])
			rough := growQuad(truth, 0.12, 0.3)
			// Off-centre and tilted: the right side lower by 6 % of the width.
			var q [4]image.Point
			for i, p := range rough {
				dy := 0.0
				if i == 1 || i == 2 {
					dy = 0.06 * w
				}
				q[i] = image.Pt(int(p[0]+0.05*w), int(p[1]+dy))
			}
			got, ok := fitToCharacters(img, q, plume.PlateColour(m.Colour), m.DoubleRow)
			if !ok {
				t.Fatal("no row of characters found")
			}
			for i := range got {
				d := math.Hypot(float64(got[i].X)-truth[i][0], float64(got[i].Y)-truth[i][1])
				if d > 0.04*w {
					t.Errorf("corner %d at %v, plate's at %v: %.1f px off (plate %.0f px wide)", i, got[i], truth[i], d, w)
				}
			}
		})
	}
}

// TestFitToCharactersNothing checks that a quad over a plain surface, or
// one too small to hold characters, is reported as not fitted.
func TestFitToCharactersNothing(t *testing.T) {
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(120, 60, 20, 0), 200, 400, gocv.MatTypeCV8UC3)
	defer img.Close()
	for _, q := range [][4]image.Point{
		{{100, 80}, {300, 80}, {300, 140}, {100, 140}},
		{{10, 10}, {12, 10}, {12, 11}, {10, 11}},
		{{-1 << 20, 0}, {1 << 20, 0}, {1 << 20, 50}, {-1 << 20, 50}},
	} {
		if got, ok := fitToCharacters(img, q, plume.PlateBlue, false); ok {
			t.Errorf("fitted %v to %v on a blank image", got, q)
		}
	}
}

func TestWithTopRow(t *testing.T) {
	// The bottom row region of a double-row plate is 130 of its 220 mm:
	// 65 pixels high here, so the plate's top is 45 pixels above it.
	q := [4]image.Point{{100, 100}, {300, 100}, {300, 165}, {100, 165}}
	got := withTopRow(q)
	want := [4]image.Point{{100, 55}, {300, 55}, {300, 165}, {100, 165}}
	if got != want {
		t.Fatalf("withTopRow(%v) = %v, want %v", q, got, want)
	}
}

// FuzzFitToCharacters feeds arbitrary quads (out of the image, crossed,
// degenerate, huge) to the fit over a real scene: it must return, never
// panic or reach OpenCV with a bad size.
func FuzzFitToCharacters(f *testing.F) {
	dir, metas := scenes(f)
	img := gocv.IMRead(filepath.Join(dir, metas[0].File), gocv.IMReadColor)
	f.Cleanup(func() { img.Close() })
	c := metas[0].Corners
	f.Add(c[0][0], c[0][1], c[1][0], c[1][1], c[2][0], c[2][1], c[3][0], c[3][1], false)
	f.Add(0, 0, 1919, 0, 1919, 1079, 0, 1079, true)
	f.Add(500, 500, 400, 500, 400, 520, 500, 520, false)
	f.Add(-100000, 5, 100000, 5, 100000, 9, -100000, 9, false)
	f.Add(10, 10, 10, 10, 10, 10, 10, 10, true)
	f.Fuzz(func(t *testing.T, x0, y0, x1, y1, x2, y2, x3, y3 int, double bool) {
		q := [4]image.Point{{x0, y0}, {x1, y1}, {x2, y2}, {x3, y3}}
		got, ok := fitToCharacters(img, q, plume.PlateBlue, double)
		if !ok && got != q {
			t.Fatalf("a failed fit changed the quad: %v -> %v", q, got)
		}
	})
}

// TestFindCharRowSkipsGrille puts a radiator grille (a longer row of thin
// bars of character height) above a row of six characters in an ink map:
// the characters are the row found.
func TestFindCharRowSkipsGrille(t *testing.T) {
	const w, h = 300, 88
	ink := make([]byte, w*h)
	fill := func(x0, y0, x1, y1 int) {
		for y := y0; y < y1; y++ {
			for x := x0; x < x1; x++ {
				ink[y*w+x] = 255
			}
		}
	}
	for i := range 10 {
		fill(20+i*26, 4, 24+i*26, 30) // bars 4 wide, 26 high
	}
	for i := range 6 {
		fill(40+i*30, 45, 56+i*30, 71) // characters 16 wide, 26 high
	}
	row, ok := findCharRow(ink, w, h)
	if !ok {
		t.Fatal("no row found")
	}
	if len(row.xs) != 6 || row.top < 40 {
		t.Errorf("found %d blobs with top %.0f, want the 6 characters with top 45", len(row.xs), row.top)
	}
}
