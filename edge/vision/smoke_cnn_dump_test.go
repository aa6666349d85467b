package vision

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// normalVehicles reads the YOLO class-0 (normal vehicle) boxes beside an
// overpass-video or cctv still.
func normalVehicles(s SmokeStill) []fracBox {
	if s.Set != "overpass-video" && s.Set != "cctv" {
		return nil
	}
	b, err := os.ReadFile(strings.TrimSuffix(s.Path, filepath.Ext(s.Path)) + ".txt")
	if err != nil {
		return nil
	}
	var out []fracBox
	for _, line := range strings.Split(string(b), "\n") {
		var c int
		var cx, cy, w, h float64
		if n, _ := fmt.Sscan(line, &c, &cx, &cy, &w, &h); n == 5 && c == 0 {
			out = append(out, fracBox{cx - w/2, cy - h/2, cx + w/2, cy + h/2})
		}
	}
	return out
}

// generalSmoke lists smoke/general (black smoke that is mostly not from
// vehicles): training positives for what smoke looks like, never part of
// the image-level evaluation.
func generalSmoke(data string) []SmokeStill {
	paths, _ := filepath.Glob(filepath.Join(data, "smoke", "general", "*.jpg"))
	out := make([]SmokeStill, 0, len(paths))
	for _, p := range paths {
		out = append(out, SmokeStill{Path: p, Set: "general", Smoky: true})
	}
	return out
}

// candidateRecord is one still's candidates, as models/smoke/train.py
// reads them: the patch each candidate gives the classifier (frame
// pixels), its grade and logistic score, and the still's annotations.
type candidateRecord struct {
	Path  string       `json:"path"`
	Set   string       `json:"set"`
	Smoky bool         `json:"smoky"`
	W     int          `json:"w"`
	H     int          `json:"h"`
	Cands []candRecord `json:"cands"`
	Smoke [][4]float64 `json:"smoke"` // annotated boxes, fractions of the image
	Clean [][4]float64 `json:"clean"` // YOLO class-0 (normal vehicle) boxes, fractions of the image
}

type candRecord struct {
	Box      [4]int     `json:"box"`   // component box, frame pixels
	Patch    [4]int     `json:"patch"` // smokePatchRect of it
	Frac     [4]float64 `json:"frac"`  // component box, fractions of the image
	Grade    int        `json:"grade"`
	Logistic float64    `json:"logistic"`
	Area     int        `json:"area"`
	Cues     SmokeCues  `json:"cues"`
}

// TestSmokeCandidateDump writes the detector's candidates on the shared
// stills to $SMOKE_CANDIDATES (JSON lines), the input of
// models/smoke/train.py:
//
//	SMOKE_CANDIDATES=/tmp/smoke-cands.jsonl go test ./edge/vision/ -run TestSmokeCandidateDump -v
func TestSmokeCandidateDump(t *testing.T) {
	out := os.Getenv("SMOKE_CANDIDATES")
	if out == "" {
		t.Skip("set SMOKE_CANDIDATES=FILE to dump the candidates for training")
	}
	stills, err := SmokeStills(sharedData(t))
	if err != nil {
		t.Fatal(err)
	}
	stills = append(stills, generalSmoke(sharedData(t))...)
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for i, s := range stills {
		b, err := os.ReadFile(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := decodeFrame(b)
		if err != nil {
			img.Close()
			t.Fatalf("%s: %v", s.Path, err)
		}
		wf, feats, err := stillFeatures(img, cnnLevels...)
		w, h := img.Cols(), img.Rows()
		img.Close()
		if err != nil {
			t.Fatalf("%s: %v", s.Path, err)
		}
		rec := candidateRecord{Path: s.Path, Set: s.Set, Smoky: s.Smoky, W: w, H: h, Cands: []candRecord{}, Smoke: [][4]float64{}, Clean: [][4]float64{}}
		for _, a := range normalVehicles(s) {
			rec.Clean = append(rec.Clean, [4]float64{a.x0, a.y0, a.x1, a.y1})
		}
		for _, a := range smokeAnnotations(s) {
			rec.Smoke = append(rec.Smoke, [4]float64{a.x0, a.y0, a.x1, a.y1})
		}
		for _, ft := range feats {
			r := wf.frameRect(ft.box, w, h)
			p := smokePatchRect(r, w, h)
			fw, fh := float64(wf.w), float64(wf.h)
			rec.Cands = append(rec.Cands, candRecord{
				Box:      [4]int{r.Min.X, r.Min.Y, r.Max.X, r.Max.Y},
				Patch:    [4]int{p.Min.X, p.Min.Y, p.Max.X, p.Max.Y},
				Frac:     [4]float64{float64(ft.box.Min.X) / fw, float64(ft.box.Min.Y) / fh, float64(ft.box.Max.X) / fw, float64(ft.box.Max.Y) / fh},
				Grade:    Ringelmann(ft.blackness),
				Logistic: smokeScore(ft),
				Area:     ft.area,
				Cues:     ft.cues,
			})
		}
		if err := enc.Encode(rec); err != nil {
			t.Fatal(err)
		}
		if (i+1)%100 == 0 {
			t.Logf("%d/%d stills", i+1, len(stills))
		}
	}
}
