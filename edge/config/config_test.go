package config_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/config"
	firmwareconfig "github.com/plume-emissions/plume/firmware-config"
)

// Every shipped file decodes, so the examples can never drift from the code.
func TestShippedStationFiles(t *testing.T) {
	files, _ := filepath.Glob("../../firmware-config/stations/*.yaml")
	if len(files) == 0 {
		t.Fatal("no station files found")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			l, err := config.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Profiles) == 0 || len(l.DeviceProfile) == 0 || len(l.Hash) != 64 {
				t.Fatalf("incomplete load: %+v", l)
			}
		})
	}
}

func TestShippedProfiles(t *testing.T) {
	files, _ := filepath.Glob("../../firmware-config/profiles/*.yaml")
	if len(files) < 2 {
		t.Fatalf("want the diesel and petrol profiles, found %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p, err := firmwareconfig.DecodeProfile(b)
			if err != nil {
				t.Fatal(err)
			}
			// The shipped values come from secondary sources or are
			// unchecked, so they must say so.
			if !p.Provisional {
				t.Errorf("%s is not marked provisional", p.Name)
			}
		})
	}
}

func TestEmbeddedMatchesDisk(t *testing.T) {
	l, err := config.LoadEmbedded(config.Embedded)
	if err != nil {
		t.Fatal(err)
	}
	d, err := config.Load("../../firmware-config/" + config.Embedded)
	if err != nil {
		t.Fatal(err)
	}
	if l.Hash != d.Hash {
		t.Fatalf("embedded config hash %s differs from disk %s", l.Hash, d.Hash)
	}
	if p := l.Profiles.For(plume.FuelDiesel); p == nil || p.Standard != "HJ 845-2017" {
		t.Fatalf("diesel profile: %+v", p)
	}
	n := 0
	fs.WalkDir(firmwareconfig.FS, ".", func(string, fs.DirEntry, error) error { n++; return nil })
	if n < 5 {
		t.Fatalf("embedded tree has only %d entries", n)
	}
}

func writeTree(t *testing.T, station string) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"stations", "profiles", "devices"} {
		os.MkdirAll(filepath.Join(dir, sub), 0o755)
	}
	for _, f := range []string{"profiles/hj845-2017-diesel.yaml", "profiles/gb18285-2018-petrol.yaml", "devices/generic-rsd.yaml"} {
		b, err := os.ReadFile("../../firmware-config/" + f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	p := filepath.Join(dir, "stations", "s.yaml")
	os.WriteFile(p, []byte(station), 0o644)
	return p
}

const goodStation = `station: GD-SZ-0001
enrollment: enrollment.json
data_dir: /var/lib/plume-edge
analyser: {protocol: hj212, transport: listen, addr: ":9212", device_profile: ../devices/generic-rsd.yaml}
profiles: {diesel: ../profiles/hj845-2017-diesel.yaml}
`

func TestLoad(t *testing.T) {
	if _, err := config.Load(writeTree(t, goodStation)); err != nil {
		t.Fatalf("OK: %v", err)
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"ErrUnknownField", "enrollment:", "enrolment_typo: x\nenrollment:", "not found"},
		{"ErrStationID", "GD-SZ-0001", "bad id!", "invalid station ID"},
		{"ErrProtocol", "protocol: hj212", "protocol: modbus", "analyser.protocol"},
		{"ErrTransport", "transport: listen", "transport: carrier-pigeon", "analyser.transport"},
		{"ErrMissingProfile", "hj845-2017-diesel.yaml", "nope.yaml", "profile for diesel"},
		{"ErrFuelMismatch", "diesel: ../profiles/hj845-2017-diesel.yaml", "diesel: ../profiles/gb18285-2018-petrol.yaml", "is for petrol vehicles"},
		{"ErrEscape", "../devices/generic-rsd.yaml", "../../../../../../../../../../../etc/passwd", "device profile"},
		{"ErrTwoDocuments", "data_dir:", "---\ndata_dir:", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load(writeTree(t, strings.Replace(goodStation, tc.old, tc.new, 1)))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

func TestLoadAbsoluteReferences(t *testing.T) {
	abs, _ := filepath.Abs("../../firmware-config/profiles/hj845-2017-diesel.yaml")
	st := strings.Replace(goodStation, "../profiles/hj845-2017-diesel.yaml", abs, 1)
	l, err := config.Load(writeTree(t, st))
	if err != nil {
		t.Fatal(err)
	}
	if l.Profiles.For(plume.FuelDiesel) == nil {
		t.Fatal("diesel profile not loaded from an absolute path")
	}
}

func TestCameraValidate(t *testing.T) {
	ok := config.Camera{Name: "rear", Role: "smoke", Source: "clip.mp4", Width: 1280, Height: 720, FPS: 25,
		LaneX: []int{100, 600, 1100}, Lanes: []int{1, 2}, TriggerY: 400}
	if err := ok.Validate(); err != nil {
		t.Fatalf("OK: %v", err)
	}
	for name, mut := range map[string]func(c *config.Camera){
		"ErrRole":      func(c *config.Camera) { c.Role = "radar" },
		"ErrLanes":     func(c *config.Camera) { c.Lanes = []int{1} },
		"ErrLaneOrder": func(c *config.Camera) { c.LaneX = []int{600, 100, 1100} },
		"ErrTrigger":   func(c *config.Camera) { c.TriggerY = 720 },
		"ErrClip":      func(c *config.Camera) { c.ClipAfter = time.Minute },
		"ErrROI":       func(c *config.Camera) { c.ROI = [][2]int{{0, 0}, {5000, 0}, {0, 5}} },
		"ErrNoSource":  func(c *config.Camera) { c.Source = "" },
		"ErrFrameSize": func(c *config.Camera) { c.Width = 10 },
	} {
		t.Run(name, func(t *testing.T) {
			c := ok
			c.LaneX = append([]int(nil), ok.LaneX...)
			mut(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
