package vision

import (
	"image"
	"image/color"
	"testing"

	"gocv.io/x/gocv"
)

func TestWidenToAspect(t *testing.T) {
	// 100×40 widened to 3:1 needs 20 more pixels: all left, all right,
	// or 10 each side.
	q := [4]image.Point{{100, 50}, {200, 50}, {200, 90}, {100, 90}}
	got := widenToAspect(q, 3)
	want := [][4]image.Point{
		{{80, 50}, {200, 50}, {200, 90}, {80, 90}},
		{{100, 50}, {220, 50}, {220, 90}, {100, 90}},
		{{90, 50}, {210, 50}, {210, 90}, {90, 90}},
	}
	if len(got) != len(want) {
		t.Fatalf("widenToAspect = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("widenToAspect[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if got := widenToAspect(q, 2); got != nil {
		t.Fatalf("a quad already wider than the aspect was widened: %v", got)
	}
}

func TestRefineHorizontal(t *testing.T) {
	// Seven dark "characters" from x=100 to x=400 on a light plate; the
	// quad covers only x=150..330 of them, with spill-free margins.
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(200, 200, 200, 0), 300, 600, gocv.MatTypeCV8UC3)
	defer img.Close()
	for i := 0; i < 7; i++ {
		x := 100 + i*44
		gocv.Rectangle(&img, image.Rect(x, 110, x+30, 170), color.RGBA{20, 20, 20, 0}, -1)
	}
	q := [4]image.Point{{150, 100}, {330, 100}, {330, 180}, {150, 180}}
	got, ok := refineHorizontal(img, q)
	if !ok {
		t.Fatal("refineHorizontal found no characters")
	}
	// The plate around the characters: 100..394 plus a margin of 15.5/409
	// of their span (about 11 pixels) each side.
	for _, c := range []struct {
		name        string
		got, lo, hi int
	}{
		{"left", got[0].X, 80, 97},
		{"right", got[1].X, 397, 412},
		{"top", got[0].Y, 99, 101},
		{"bottom", got[3].Y, 179, 181},
	} {
		if c.got < c.lo || c.got > c.hi {
			t.Errorf("%s edge at %d, want %d..%d (quad %v)", c.name, c.got, c.lo, c.hi, got)
		}
	}
}
