package vision

import (
	"image"
	"math"
	"testing"
)

func TestOrderQuad(t *testing.T) {
	want := [4][2]float64{{10, 12}, {110, 5}, {112, 40}, {8, 45}}
	for _, pts := range [][]image.Point{
		{{10, 12}, {110, 5}, {112, 40}, {8, 45}},
		{{112, 40}, {8, 45}, {10, 12}, {110, 5}},
		{{8, 45}, {112, 40}, {110, 5}, {10, 12}},
	} {
		got, ok := orderQuad(pts)
		if !ok || got != want {
			t.Fatalf("orderQuad(%v) = %v %v, want %v", pts, got, ok, want)
		}
	}
	if _, ok := orderQuad([]image.Point{{0, 0}, {10, 0}, {10, 50}, {0, 50}}); ok {
		t.Fatal("a tall quad was accepted as a plate")
	}
}

func TestGrowQuad(t *testing.T) {
	q := growQuad([4][2]float64{{0, 0}, {100, 0}, {100, 30}, {0, 30}}, 0.1, 0.5)
	want := [4][2]float64{{-10, -15}, {110, -15}, {110, 45}, {-10, 45}}
	for i := range q {
		if math.Abs(q[i][0]-want[i][0]) > 1e-9 || math.Abs(q[i][1]-want[i][1]) > 1e-9 {
			t.Fatalf("growQuad = %v, want %v", q, want)
		}
	}
}

func TestDecodeCTC(t *testing.T) {
	classes, steps := len(charset)+1, 6
	logits := make([]float32, classes*steps)
	set := func(step, class int) { logits[class*steps+step] = 10 }
	idx := func(r rune) int {
		for i, c := range charset {
			if c == r {
				return i + 1
			}
		}
		t.Fatalf("%q not in charset", r)
		return 0
	}
	// 皖 皖 blank A A 1 -> "皖A1"; a repeat needs a blank between.
	set(0, idx('皖'))
	set(1, idx('皖'))
	set(2, 0)
	set(3, idx('A'))
	set(4, idx('A'))
	set(5, idx('1'))
	r := DecodeCTC(logits, classes)
	if r.Text != "皖A1" || len(r.Chars) != 3 {
		t.Fatalf("decoded %q (%d chars)", r.Text, len(r.Chars))
	}
	if r.Confidence < 0.99 || r.Confidence > 1 {
		t.Fatalf("confidence %v", r.Confidence)
	}
	if r := DecodeCTC(make([]float32, classes*steps), classes); r.Text != "" || r.Confidence != 0 {
		t.Fatalf("all-blank decoded %q conf %v", r.Text, r.Confidence)
	}
}
