package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writePNG(t *testing.T, dir, name string, img image.Image) string {
	t.Helper()
	p := filepath.Join(dir, name)
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// plainRoad is a clean grey road with lane marks: no smoke.
func plainRoad() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 640, 360))
	for y := 0; y < 360; y++ {
		for x := 0; x < 640; x++ {
			c := uint8(150 + (x+y)%7)
			if x%160 < 6 && y > 100 {
				c = 235
			}
			img.Set(x, y, color.RGBA{c, c, c, 255})
		}
	}
	return img
}

func TestRunSmoke(t *testing.T) {
	dir := t.TempDir()
	clean := writePNG(t, dir, "clean.png", plainRoad())
	bad := filepath.Join(dir, "bad.jpg")
	os.WriteFile(bad, []byte("not an image"), 0o644)
	var out, errb bytes.Buffer
	err := runSmoke(context.Background(), []string{clean, bad}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "1 of 2") {
		t.Fatalf("want one failure, got %v", err)
	}
	dec := json.NewDecoder(&out)
	var first, second smokeOutput
	if err := dec.Decode(&first); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&second); err != nil {
		t.Fatal(err)
	}
	if first.Error != "" || first.Smoky || first.Confidence < 0.5 {
		t.Fatalf("clean road: %+v", first)
	}
	if second.Error == "" {
		t.Fatalf("garbage accepted: %+v", second)
	}
	if err := runSmoke(context.Background(), nil, &out, &errb); err == nil {
		t.Fatal("no images accepted")
	}
}

// TestRunSmokeExplain: -explain draws each image's verdict into a PNG of
// the same name, and the JSON lists the rejected regions with their cues
// and the (still empty) vehicle boxes.
func TestRunSmokeExplain(t *testing.T) {
	dir := t.TempDir()
	road := writePNG(t, dir, "road.png", overcastRoad())
	explain := filepath.Join(dir, "explain")
	var out, errb bytes.Buffer
	if err := runSmoke(context.Background(), []string{"-explain", explain, road}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Smoky    bool              `json:"smoky"`
		Vehicles []json.RawMessage `json:"vehicles"`
		Rejected []struct {
			Cues struct {
				Reject string  `json:"reject"`
				Local  float64 `json:"local"`
			} `json:"cues"`
		} `json:"rejected"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Smoky || len(res.Rejected) == 0 || res.Rejected[0].Cues.Reject != "frame" || res.Vehicles == nil {
		t.Fatalf("overcast road: %s", out.String())
	}
	f, err := os.Open(filepath.Join(explain, "road.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dx() != 640 {
		t.Fatalf("explain picture: %v, %v", err, img)
	}
}

// overcastRoad is a bright sky over grey asphalt: the road is one dark
// region across the frame, which is never a plume.
func overcastRoad() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 640, 360))
	for y := 0; y < 360; y++ {
		for x := 0; x < 640; x++ {
			c := uint8(235)
			if y >= 160 {
				c = uint8(100 + (x*7+y*13)%9)
			}
			img.Set(x, y, color.RGBA{c, c, c, 255})
		}
	}
	return img
}
