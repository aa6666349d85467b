package vision

import (
	"context"
	"image"
	"image/color"
	"path/filepath"
	"slices"
	"testing"

	"gocv.io/x/gocv"

	"github.com/plume-emissions/plume"
)

// TestLocateRowsCamouflaged paints the scene around each single-row plate
// in the plate's own colour (a blue plate on a blue bus), leaving the plate
// itself as it was. The rows of characters still give a candidate on the
// plate, and the reader, whose colour masks then have no plate shape,
// still reads it (from the row candidates, or from the edge candidates
// when those find it too).
func TestLocateRowsCamouflaged(t *testing.T) {
	r := openReader(t, Options{})
	singleRowScenes(t, func(t *testing.T, img gocv.Mat, m sceneMeta, truth image.Rectangle) {
		// The plate's background: the median of each channel inside it
		// (the characters are the minority).
		var ch [3][]int
		in := truth.Inset(truth.Dy() / 5)
		for y := in.Min.Y; y < in.Max.Y; y++ {
			for x := in.Min.X; x < in.Max.X; x++ {
				v := img.GetVecbAt(y, x)
				for i := range ch {
					ch[i] = append(ch[i], int(v[i]))
				}
			}
		}
		var bg [3]float64
		for i := range ch {
			slices.Sort(ch[i])
			bg[i] = float64(ch[i][len(ch[i])/2])
		}
		around := image.Rect(truth.Min.X-truth.Dx(), truth.Min.Y-2*truth.Dy(), truth.Max.X+truth.Dx(), truth.Max.Y+2*truth.Dy())
		mask := gocv.NewMatWithSize(img.Rows(), img.Cols(), gocv.MatTypeCV8U)
		defer mask.Close()
		gocv.Rectangle(&mask, around, color.RGBA{255, 255, 255, 0}, -1)
		var pts []image.Point
		for _, c := range m.Corners {
			pts = append(pts, image.Pt(c[0], c[1]))
		}
		pv := gocv.NewPointsVectorFromPoints([][]image.Point{pts})
		defer pv.Close()
		gocv.FillPoly(&mask, pv, color.RGBA{0, 0, 0, 0})
		fill := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(bg[0], bg[1], bg[2], 0), img.Rows(), img.Cols(), gocv.MatTypeCV8UC3)
		defer fill.Close()
		fill.CopyToWithMask(&img, mask)
		readByRows(t, r, img, m, truth)
	})
}

// TestReadGreyScenes reads each single-row scene turned grey, as a night
// camera under infrared light sees it: no colour mask finds the plate, the
// rows of characters do, and the text is read (its colour cannot be).
func TestReadGreyScenes(t *testing.T) {
	r := openReader(t, Options{})
	singleRowScenes(t, func(t *testing.T, img gocv.Mat, m sceneMeta, truth image.Rectangle) {
		grey := gocv.NewMat()
		defer grey.Close()
		gocv.CvtColor(img, &grey, gocv.ColorBGRToGray)
		gocv.CvtColor(grey, &img, gocv.ColorGrayToBGR)
		p := readByRows(t, r, img, m, truth)
		// Only the new-energy plate's colour is known, from its eight
		// characters.
		want := plume.PlateColour("")
		if m.Colour == "green" {
			want = plume.PlateGreen
		}
		if p.Colour != want {
			t.Errorf("colour %q, want %q", p.Colour, want)
		}
	})
}

// singleRowScenes runs fn on each single-row scene, loaded afresh, with
// the plate's box.
func singleRowScenes(t *testing.T, fn func(t *testing.T, img gocv.Mat, m sceneMeta, truth image.Rectangle)) {
	dir, metas := scenes(t)
	for _, m := range metas {
		if m.DoubleRow {
			continue
		}
		t.Run(m.File, func(t *testing.T) {
			img := gocv.IMRead(filepath.Join(dir, m.File), gocv.IMReadColor)
			defer img.Close()
			if img.Empty() {
				t.Fatal("cannot read the scene")
			}
			fn(t, img, m, image.Rect(m.Corners[0][0], m.Corners[0][1], m.Corners[2][0], m.Corners[2][1]))
		})
	}
}

// readByRows checks that LocateRows has a candidate on the plate and that
// the reader reads it, and returns the read.
func readByRows(t *testing.T, r *Reader, img gocv.Mat, m sceneMeta, truth image.Rectangle) Plate {
	t.Helper()
	cands, err := LocateRows(img, LocateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(cands, func(c Candidate) bool { return iou(c.Box, truth) > 0.3 }) {
		t.Fatalf("no row candidate on the plate %v among %d", truth, len(cands))
	}
	res, err := r.Read(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plates) == 0 || res.Plates[0].Text != m.Text {
		t.Fatalf("read %+v, want %s", res.Plates, m.Text)
	}
	return res.Plates[0]
}

// TestLocateRowsNothing: a blank image and a tiny one give no candidate and
// no error.
func TestLocateRowsNothing(t *testing.T) {
	for _, sz := range [][2]int{{1080, 1920}, {8, 8}} {
		img := gocv.NewMatWithSize(sz[0], sz[1], gocv.MatTypeCV8UC3)
		cands, err := LocateRows(img, LocateOptions{})
		img.Close()
		if err != nil || len(cands) != 0 {
			t.Fatalf("%v: %d candidates, %v", sz, len(cands), err)
		}
	}
}

// FuzzLocateRows decodes arbitrary bytes and runs the row locator on any
// image that decodes: it returns candidates or nothing, never crashes.
func FuzzLocateRows(f *testing.F) {
	f.Add(pngBytes(f, 33, 17))
	f.Add(jpegBytes(f, 64, 32))
	f.Add(pngBytes(f, 2000, 20))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := DecodeImage(data)
		//lint:ignore SA5001 the function returns a Mat to close even with its error (gocv), so the deferred Close comes first
		defer img.Close()
		if err != nil {
			return
		}
		cands, err := LocateRows(img, LocateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cands {
			if c.Box.Empty() {
				t.Fatalf("empty box %v", c.Box)
			}
		}
	})
}
