package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type sceneFixture struct {
	File      string   `json:"file"`
	Text      string   `json:"text"`
	Colour    string   `json:"colour"`
	DoubleRow bool     `json:"double_row"`
	Corners   [][2]int `json:"corners"`
}

func plateRepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found")
		}
		dir = parent
	}
}

func plateScenes(tb testing.TB) (string, []sceneFixture) {
	tb.Helper()
	dir := filepath.Join(plateRepoRoot(tb), "testdata", "plates", "scenes")
	b, err := os.ReadFile(filepath.Join(dir, "scenes.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var s []sceneFixture
	if err := json.Unmarshal(b, &s); err != nil {
		tb.Fatal(err)
	}
	return dir, s
}

func TestRunPlate(t *testing.T) {
	dir, scenes := plateScenes(t)
	bad := filepath.Join(t.TempDir(), "bad.jpg")
	if err := os.WriteFile(bad, []byte("\xff\xd8\xffnot really a jpeg"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{filepath.Join(dir, scenes[0].File), filepath.Join(dir, scenes[1].File), bad}
	var stdout, stderr bytes.Buffer
	err := runPlate(context.Background(), args, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "1 of 3") {
		t.Fatalf("err = %v, want 1 of 3 failed", err)
	}
	dec := json.NewDecoder(&stdout)
	for i := 0; i < 3; i++ {
		var out struct {
			Image  string `json:"image"`
			Plates []struct {
				Text      string    `json:"text"`
				Colour    string    `json:"colour"`
				DoubleRow bool      `json:"double_row"`
				Corners   [4][2]int `json:"corners"`
				Chars     []struct {
					Char       string
					Confidence float64
				} `json:"chars"`
				Confidence float64 `json:"confidence"`
			} `json:"plates"`
			TimingMS map[string]float64 `json:"timing_ms"`
			Error    string             `json:"error"`
		}
		if err := dec.Decode(&out); err != nil {
			t.Fatalf("output %d: %v\n%s", i, err, stdout.String())
		}
		if i == 2 {
			if out.Error == "" || len(out.Plates) != 0 {
				t.Fatalf("bad image: %+v", out)
			}
			continue
		}
		if out.Error != "" || len(out.Plates) == 0 {
			t.Fatalf("%s: %+v", out.Image, out)
		}
		p := out.Plates[0]
		if p.Text != scenes[i].Text || p.Colour != scenes[i].Colour || p.DoubleRow != scenes[i].DoubleRow || len(p.Chars) != len([]rune(p.Text)) {
			t.Fatalf("%s: read %+v, want %q", out.Image, p, scenes[i].Text)
		}
		if out.TimingMS["total"] <= 0 {
			t.Fatalf("no timing: %v", out.TimingMS)
		}
	}
	if err := runPlate(context.Background(), nil, &stdout, &stderr); err == nil {
		t.Fatal("no images accepted")
	}
}

func TestRunPlateEval(t *testing.T) {
	src, scenes := plateScenes(t)
	byName := t.TempDir()
	csvDir := t.TempDir()
	csv := "path,plate,x1,y1,x2,y2\n"
	for _, s := range scenes {
		b, err := os.ReadFile(filepath.Join(src, s.File))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(byName, s.Text+".jpg"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(csvDir, s.File), b, 0o644); err != nil {
			t.Fatal(err)
		}
		csv += fmt.Sprintf("./%s,%s,%d,%d,%d,%d\n", s.File, s.Text, s.Corners[0][0], s.Corners[0][1], s.Corners[2][0], s.Corners[2][1])
	}
	if err := os.WriteFile(filepath.Join(csvDir, "labels.csv"), []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := runPlateEval(context.Background(), []string{"-json", byName, csvDir}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var sets []evalStats
	if err := json.Unmarshal(stdout.Bytes(), &sets); err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 {
		t.Fatalf("%d sets", len(sets))
	}
	for _, s := range sets {
		if s.N != len(scenes) || s.Exact != s.N || s.Located != s.N || s.Chinese != s.N || s.OneOff != s.N {
			t.Fatalf("set %s: %+v", s.Set, s)
		}
	}
	if !strings.Contains(stderr.String(), fmt.Sprintf("%d/%d", len(scenes), len(scenes))) {
		t.Fatalf("no progress on stderr: %q", stderr.String())
	}
	stdout.Reset()
	if err := runPlateEval(context.Background(), []string{byName}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "| 100.0 |") {
		t.Fatalf("table: %s", stdout.String())
	}
}

func TestScorePlate(t *testing.T) {
	st := &evalStats{Confusions: map[string]int{}}
	scorePlate(st, "皖A12345", "皖A12345")
	scorePlate(st, "皖A12345", "皖A12845")
	scorePlate(st, "皖A12345", "鲁A12846")
	scorePlate(st, "皖A12345", "")
	scorePlate(st, "皖AD12345", "皖A12345")
	if st.Exact != 1 || st.OneOff != 3 || st.Chinese != 3 {
		t.Fatalf("%+v", st)
	}
	if st.Confusions["3>8"] != 2 || st.Confusions["皖>鲁"] != 1 || st.Confusions["not read"] != 1 || st.Confusions["length 8>7"] != 1 {
		t.Fatalf("confusions %v", st.Confusions)
	}
}

func TestLabelFromName(t *testing.T) {
	for name, want := range map[string]string{
		"皖A00E66.jpg":    "皖A00E66",
		"浙FA096警.png":    "浙FA096警",
		"皖AD11166_2.jpg": "皖AD11166",
		"photo.jpg":      "",
		"皖A1.jpg":        "",
	} {
		if got := labelFromName(name); got != want {
			t.Errorf("labelFromName(%q) = %q, want %q", name, got, want)
		}
	}
}
