package vision

// The labelled smoke stills: which image is smoky, from the folders'
// annotations.

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// SmokeStill is one labelled still image.
type SmokeStill struct {
	Path  string
	Set   string // folder name, e.g. "web", "tollbooth"
	Smoky bool
}

// SmokeStills lists the labelled stills under data (../shared/data):
// positives from smoke/web (every image is annotated with a smoke box),
// smoke/overpass-video and smoke/cctv (an image is smoky when its YOLO file
// has a class-1 "smoky vehicle" box; images without one are clean);
// negatives from plates/tollbooth and plates/ccpd (vehicles without
// smoke). It returns an error when none of the folders exists.
func SmokeStills(data string) ([]SmokeStill, error) {
	var out []SmokeStill
	found := false
	add := func(set, dir string, label func(path string) (bool, error)) error {
		if _, err := os.Stat(dir); err != nil {
			return nil
		}
		found = true
		return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			ext := strings.ToLower(filepath.Ext(p))
			if d.IsDir() || (ext != ".jpg" && ext != ".jpeg" && ext != ".png") {
				return nil
			}
			smoky, err := label(p)
			if err != nil {
				return err
			}
			out = append(out, SmokeStill{Path: p, Set: set, Smoky: smoky})
			return nil
		})
	}
	always := func(v bool) func(string) (bool, error) { return func(string) (bool, error) { return v, nil } }
	sets := []struct {
		set, dir string
		label    func(string) (bool, error)
	}{
		{"web", filepath.Join(data, "smoke", "web"), always(true)},
		{"overpass-video", filepath.Join(data, "smoke", "overpass-video"), yoloSmoky},
		{"cctv", filepath.Join(data, "smoke", "cctv"), yoloSmoky},
		{"tollbooth", filepath.Join(data, "plates", "tollbooth"), always(false)},
		{"ccpd", filepath.Join(data, "plates", "ccpd"), always(false)},
	}
	for _, s := range sets {
		if err := add(s.set, s.dir, s.label); err != nil {
			return nil, fmt.Errorf("list smoke stills: %w", err)
		}
	}
	if !found {
		return nil, fmt.Errorf("list smoke stills: no smoke or plate folders under %s", data)
	}
	slices.SortFunc(out, func(a, b SmokeStill) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// yoloSmoky reads the YOLO label file beside an image: class 1 is a smoky
// vehicle.
func yoloSmoky(img string) (bool, error) {
	f, err := os.Open(strings.TrimSuffix(img, filepath.Ext(img)) + ".txt")
	if err != nil {
		return false, fmt.Errorf("labels for %s: %w", filepath.Base(img), err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 0 && fields[0] == "1" {
			return true, nil
		}
	}
	return false, sc.Err()
}
