package vision

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"testing"
)

// cueScene is a 400×300 road scene: grey asphalt (level road) with seeded
// grain and a lane mark, and whatever draw paints over it.
func cueScene(t *testing.T, road float64, draw func(x, y int, c color.RGBA) color.RGBA) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	img := image.NewRGBA(image.Rect(0, 0, 400, 300))
	for y := 0; y < 300; y++ {
		for x := 0; x < 400; x++ {
			v := road + rng.NormFloat64()*6
			if x >= 196 && x < 204 && y%40 < 24 {
				v = 225
			}
			g := uint8(max(0, min(255, v)))
			c := color.RGBA{g, g, g, 255}
			if draw != nil {
				c = draw(x, y, c)
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func scaleRGB(c color.RGBA, f float64) color.RGBA {
	return color.RGBA{uint8(float64(c.R) * f), uint8(float64(c.G) * f), uint8(float64(c.B) * f), 255}
}

// judge runs the detector with the logistic model at a threshold low
// enough that every region the rules pass counts.
func judge(t *testing.T, data []byte) SmokeResult {
	t.Helper()
	res, err := DetectSmokeImage(data, SmokeOptions{Threshold: 1e-6})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func rejectedAs(res SmokeResult, kind string) bool {
	for _, b := range res.Rejected {
		if b.Cues.Reject == kind {
			return true
		}
	}
	return false
}

// TestSmokeCuesRejectOvercastRoad: under a bright sky, grey asphalt is one
// dark region across the frame. It was scored as a plume (issue 17); the
// frame rule rejects it, whatever the model says.
func TestSmokeCuesRejectOvercastRoad(t *testing.T) {
	data := cueScene(t, 105, func(x, y int, c color.RGBA) color.RGBA {
		if y < 140 {
			return color.RGBA{235, 236, 238, 255}
		}
		return c
	})
	res := judge(t, data)
	if res.Smoky {
		t.Fatalf("overcast road called smoky: %+v", res.Boxes)
	}
	if !rejectedAs(res, RejectFrame) {
		t.Fatalf("road not rejected by the frame rule: %+v", res.Rejected)
	}
}

// TestSmokeCuesKeepSoftPlume: a soft, semi-transparent dark plume on the
// road, away from the borders, passes every rule.
func TestSmokeCuesKeepSoftPlume(t *testing.T) {
	data := cueScene(t, 160, func(x, y int, c color.RGBA) color.RGBA {
		dx, dy := float64(x-150)/55, float64(y-170)/35
		return scaleRGB(c, 1-0.75*math.Exp(-(dx*dx+dy*dy)))
	})
	res := judge(t, data)
	if !res.Smoky {
		t.Fatalf("soft plume rejected: boxes %+v rejected %+v", res.Boxes, res.Rejected)
	}
	c := res.Boxes[0].Cues
	if c.Local < 0.3 || c.Edge > hardEdge {
		t.Errorf("plume cues: %+v", c)
	}
}

// TestSmokeCuesRejectUnderBodyShadow: the flat, hard-edged, very dark
// shadow under a (red) car body is rejected by the shadow rule.
func TestSmokeCuesRejectUnderBodyShadow(t *testing.T) {
	data := cueScene(t, 160, func(x, y int, c color.RGBA) color.RGBA {
		switch {
		case x >= 120 && x < 260 && y >= 100 && y < 180:
			return color.RGBA{200, 30, 30, 255}
		case x >= 110 && x < 270 && y >= 180 && y < 205:
			return color.RGBA{18, 18, 18, 255}
		}
		return c
	})
	res := judge(t, data)
	if res.Smoky {
		t.Fatalf("under-body shadow called smoky: %+v", res.Boxes)
	}
	if !rejectedAs(res, RejectShadow) {
		t.Fatalf("shadow not rejected as a shadow: %+v", res.Rejected)
	}
}

// TestSmokeCuesRejectDarkPaint: a dark grey car body with a bright
// reflection and crisp edges is rejected by the paint rule.
func TestSmokeCuesRejectDarkPaint(t *testing.T) {
	data := cueScene(t, 170, func(x, y int, c color.RGBA) color.RGBA {
		if x >= 130 && x < 250 && y >= 90 && y < 200 {
			if y >= 110 && y < 118 && x >= 150 && x < 230 {
				return color.RGBA{250, 250, 250, 255}
			}
			return color.RGBA{38, 40, 42, 255}
		}
		return c
	})
	res := judge(t, data)
	if res.Smoky {
		t.Fatalf("dark paint called smoky: %+v", res.Boxes)
	}
	if !rejectedAs(res, RejectPaint) {
		t.Fatalf("dark body not rejected as paint: %+v", res.Rejected)
	}
}

// TestSmokeCuesRules: each rule fires on its own cue, in the stated order.
func TestSmokeCuesRules(t *testing.T) {
	plume := SmokeCues{Span: 0.05, Local: 0.4, Show: 1, Edge: 0.2, Specular: 0.02, Flat: 0.8, Warm: 0, Night: 120}
	for _, c := range []struct {
		name string
		edit func(*SmokeCues)
		want string
	}{
		{"plume", func(*SmokeCues) {}, ""},
		{"night", func(c *SmokeCues) { c.Night = 12; c.Span = 0.9 }, RejectNight},
		{"span", func(c *SmokeCues) { c.Span = 0.5 }, RejectFrame},
		{"opposite borders", func(c *SmokeCues) { c.Opposite = true }, RejectFrame},
		{"no darker than the road around", func(c *SmokeCues) { c.Local = 0.05 }, RejectFlatRoad},
		{"under-body shadow", func(c *SmokeCues) { c.Flat = 0.3; c.Edge = 0.38; c.Local = 0.7 }, RejectShadow},
		{"glossy hard-edged paint", func(c *SmokeCues) { c.Specular = 0.2; c.Edge = 0.38 }, RejectPaint},
		{"hard edge", func(c *SmokeCues) { c.Edge = 0.5 }, RejectPaint},
		{"glossy but soft (sky behind smoke)", func(c *SmokeCues) { c.Specular = 0.3 }, ""},
		{"dust", func(c *SmokeCues) { c.Warm = 0.15 }, RejectDust},
	} {
		cu := plume
		c.edit(&cu)
		if got := cu.reject(); got != c.want {
			t.Errorf("%s: reject() = %q, want %q", c.name, got, c.want)
		}
	}
}
