// Package config loads and checks a roadside station's configuration: the
// station file, the limit profiles it names and the analyser device profile.
//
// Files reference each other by paths relative to the referring file, so a
// copy of the firmware-config/ tree works wherever it is put. The same tree
// is embedded in the binaries (package firmwareconfig), which is what the
// demo runs on. YAML is decoded strictly: unknown fields are errors.
package config

import (
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	firmwareconfig "github.com/plume-emissions/plume/firmware-config"
)

// Station is the station file as written in firmware-config/stations.
type Station struct {
	Station   plume.StationID `yaml:"station"`
	Name      string          `yaml:"name"`
	Place     string          `yaml:"place"`
	Latitude  float64         `yaml:"latitude"`
	Longitude float64         `yaml:"longitude"`
	// Zone is the IANA time zone the station's evidence images show their
	// times in (default plume.DefaultZone, Asia/Shanghai).
	Zone       string `yaml:"zone"`
	Enrollment string `yaml:"enrollment"` // relative to DataDir unless absolute
	// StationKey is the key file plume-edge keygen wrote (relative to
	// DataDir unless absolute). Empty when central generated the key and
	// it is in the enrollment file.
	StationKey  string                `yaml:"station_key"`
	DataDir     string                `yaml:"data_dir"`
	Analyser    Analyser              `yaml:"analyser"`
	Profiles    map[plume.Fuel]string `yaml:"profiles"` // fuel → profile file
	Spool       Spool                 `yaml:"spool"`
	Uplink      Uplink                `yaml:"uplink"`
	MetricsAddr string                `yaml:"metrics_addr"`
	Cameras     []Camera              `yaml:"cameras"` // optional; none means analyser-only
	Live        Live                  `yaml:"live"`
}

// Live configures live view: the edge keeps an outbound signalling
// connection to central and streams H.264 (constrained baseline) to
// authorised officers over WebRTC.
type Live struct {
	Enabled     bool     `yaml:"enabled"`
	STUN        []string `yaml:"stun"`         // e.g. stun:stun.example.cn:3478
	UDPPort     int      `yaml:"udp_port"`     // one UDP port for all media (firewalls); 0 = any
	RelayOnly   bool     `yaml:"relay_only"`   // only relay through central's TURN server
	BitrateKbps int      `yaml:"bitrate_kbps"` // default 600, suited to 4G
}

// Camera is one roadside camera. Coordinates are pixels of the camera's
// full frame.
type Camera struct {
	Name   string `yaml:"name"`
	Role   string `yaml:"role"`   // "plate", "smoke" or "both"
	Source string `yaml:"source"` // rtsp://…, http://…, a video file, or a device number
	Width  int    `yaml:"width"`
	Height int    `yaml:"height"`
	FPS    int    `yaml:"fps"`
	// LaneX are the lane boundaries across the frame, left to right:
	// lane n (1-based) lies between LaneX[n-1] and LaneX[n].
	LaneX []int `yaml:"lane_x"`
	// Lanes are the station's lane numbers the camera sees, one per
	// interval of LaneX.
	Lanes []int `yaml:"lanes"`
	// ROI is the region of interest, a polygon of at least 3 points.
	ROI [][2]int `yaml:"roi"`
	// TriggerY is the trigger line's height in the frame.
	TriggerY int `yaml:"trigger_y"`
	// ClipBefore and ClipAfter are the seconds of video kept before and
	// after a pass for the evidence clip.
	ClipBefore time.Duration `yaml:"clip_before"`
	ClipAfter  time.Duration `yaml:"clip_after"`
	Mounting   string        `yaml:"mounting"` // notes: height, angle, direction
}

// Validate checks one camera entry.
func (c *Camera) Validate() error {
	bad := func(format string, args ...any) error {
		return plume.Errorf(plume.EINVALID, "camera %q: %s", c.Name, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Name == "":
		return plume.Errorf(plume.EINVALID, "camera: name is required")
	case c.Role != "plate" && c.Role != "smoke" && c.Role != "both":
		return bad("role must be plate, smoke or both, not %q", c.Role)
	case c.Source == "":
		return bad("source is required")
	case c.Width < 320 || c.Width > 7680 || c.Height < 240 || c.Height > 4320:
		return bad("frame size %dx%d out of range", c.Width, c.Height)
	case c.FPS < 1 || c.FPS > 60:
		return bad("fps %d out of range 1–60", c.FPS)
	case len(c.LaneX) < 2 || len(c.Lanes) != len(c.LaneX)-1:
		return bad("lane_x needs at least 2 boundaries and lanes one number per interval")
	case c.TriggerY <= 0 || c.TriggerY >= c.Height:
		return bad("trigger_y %d outside the frame", c.TriggerY)
	case c.ClipBefore < 0 || c.ClipAfter < 0 || c.ClipBefore+c.ClipAfter > 30*time.Second:
		return bad("clip_before + clip_after must be 0–30 s")
	case len(c.ROI) != 0 && len(c.ROI) < 3:
		return bad("roi needs at least 3 points")
	}
	for i, x := range c.LaneX {
		if x < 0 || x > c.Width || (i > 0 && x <= c.LaneX[i-1]) {
			return bad("lane_x must increase within the frame width")
		}
	}
	for _, l := range c.Lanes {
		if l < 1 || l > 16 {
			return bad("lane %d out of range 1–16", l)
		}
	}
	for _, p := range c.ROI {
		if p[0] < 0 || p[0] > c.Width || p[1] < 0 || p[1] > c.Height {
			return bad("roi point %v outside the frame", p)
		}
	}
	return nil
}

// Analyser says how the edge talks to the remote-sensing analyser.
type Analyser struct {
	Protocol      string `yaml:"protocol"`  // "hj212" or "ndjson"
	Transport     string `yaml:"transport"` // "listen", "dial" or "serial"
	Addr          string `yaml:"addr"`      // listen or dial address
	SerialPort    string `yaml:"serial_port"`
	SerialBaud    int    `yaml:"serial_baud"`
	DeviceProfile string `yaml:"device_profile"` // device profile file
}

// Spool sets the edge's disk budgets: the spool's, its records class's
// (0: shares max_bytes), and the analyser quarantine's (0: 64 MiB).
type Spool struct {
	MaxBytes           int64 `yaml:"max_bytes"`
	MinFreeBytes       int64 `yaml:"min_free_bytes"`
	RecordsMaxBytes    int64 `yaml:"records_max_bytes"`
	QuarantineMaxBytes int64 `yaml:"quarantine_max_bytes"`
}

// Uplink tunes delivery to central.
type Uplink struct {
	BatchSize    int           `yaml:"batch_size"`
	PollInterval time.Duration `yaml:"poll_interval"`
}

// Loaded is a station file with everything it references read and checked.
type Loaded struct {
	Station
	Source        string           // where the station file came from
	Profiles      plume.ProfileSet // parsed limit profiles
	DeviceProfile []byte           // the device profile file, parsed by edge/analyser
	DeviceRef     string           // its resolved path, for messages
	Hash          string           // SHA-256 of the station file and every file it references
}

// Embedded names the station file the demo runs on, inside the embedded tree.
const Embedded = "stations/demo.yaml"

// LoadEmbedded loads a station file from the configuration embedded in the
// binary, for example Embedded.
func LoadEmbedded(name string) (*Loaded, error) {
	return load(firmwareconfig.FS, name, "embedded:"+name)
}

// Load loads a station file from disk.
func Load(file string) (*Loaded, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	root := filepath.VolumeName(abs) + string(filepath.Separator)
	rel, err := filepath.Rel(root, abs)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return load(os.DirFS(root), filepath.ToSlash(rel), file)
}

func load(fsys fs.FS, name, source string) (*Loaded, error) {
	h := newHasher()
	b, err := readFile(fsys, name, h)
	if err != nil {
		return nil, err
	}
	l := &Loaded{Source: source, Profiles: plume.ProfileSet{}}
	if err := firmwareconfig.DecodeStrict(b, &l.Station); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if err := l.Station.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	dir := path.Dir(name)
	for _, fuel := range slices.Sorted(maps.Keys(l.Station.Profiles)) {
		ref := l.Station.Profiles[fuel]
		pb, err := readFile(fsys, join(dir, ref), h)
		if err != nil {
			return nil, fmt.Errorf("%s: profile for %s: %w", source, fuel, err)
		}
		p, err := firmwareconfig.DecodeProfile(pb)
		if err != nil {
			return nil, fmt.Errorf("%s: profile %s: %w", source, ref, err)
		}
		if p.Fuel != fuel {
			return nil, fmt.Errorf("%s: profile %s is for %s vehicles, listed under %s", source, ref, p.Fuel, fuel)
		}
		l.Profiles[fuel] = p
	}
	l.DeviceRef = join(dir, l.Analyser.DeviceProfile)
	if l.DeviceProfile, err = readFile(fsys, l.DeviceRef, h); err != nil {
		return nil, fmt.Errorf("%s: device profile: %w", source, err)
	}
	l.Hash = h.sum()
	return l, nil
}

// Location returns the station's time zone (Zone, or plume.DefaultZone).
// A station that passed Validate always has one; otherwise the default.
func (s *Station) Location() *time.Location {
	if loc, err := plume.LoadZone(s.Zone); err == nil {
		return loc
	}
	loc, _ := plume.LoadZone("")
	return loc
}

// ZoneErr reports a Zone that names no known time zone.
func (s *Station) ZoneErr() error {
	_, err := plume.LoadZone(s.Zone)
	return err
}

// Validate checks the station file on its own.
func (s *Station) Validate() error {
	if err := s.Station.Validate(); err != nil {
		return err
	}
	switch {
	case s.DataDir == "":
		return plume.Errorf(plume.EINVALID, "data_dir is required")
	case s.Enrollment == "":
		return plume.Errorf(plume.EINVALID, "enrollment is required")
	case s.Latitude < -90 || s.Latitude > 90 || s.Longitude < -180 || s.Longitude > 180:
		return plume.Errorf(plume.EINVALID, "latitude/longitude out of range")
	case s.ZoneErr() != nil:
		return s.ZoneErr()
	case s.Analyser.Protocol != "hj212" && s.Analyser.Protocol != "ndjson":
		return plume.Errorf(plume.EINVALID, "analyser.protocol must be hj212 or ndjson, not %q", s.Analyser.Protocol)
	case s.Analyser.DeviceProfile == "":
		return plume.Errorf(plume.EINVALID, "analyser.device_profile is required")
	case len(s.Profiles) == 0:
		return plume.Errorf(plume.EINVALID, "at least one limit profile is required")
	case s.Spool.MaxBytes < 0 || s.Spool.MinFreeBytes < 0 || s.Spool.RecordsMaxBytes < 0 || s.Spool.QuarantineMaxBytes < 0:
		return plume.Errorf(plume.EINVALID, "spool sizes must not be negative")
	case s.Uplink.BatchSize < 0 || s.Uplink.BatchSize > 1000:
		return plume.Errorf(plume.EINVALID, "uplink.batch_size must be 1–1000")
	}
	switch s.Analyser.Transport {
	case "listen", "dial":
		if s.Analyser.Addr == "" {
			return plume.Errorf(plume.EINVALID, "analyser.addr is required for transport %s", s.Analyser.Transport)
		}
	case "serial":
		if s.Analyser.SerialPort == "" || s.Analyser.SerialBaud <= 0 {
			return plume.Errorf(plume.EINVALID, "analyser.serial_port and serial_baud are required for transport serial")
		}
	default:
		return plume.Errorf(plume.EINVALID, "analyser.transport must be listen, dial or serial, not %q", s.Analyser.Transport)
	}
	names := map[string]bool{}
	if s.Live.UDPPort < 0 || s.Live.UDPPort > 65535 || s.Live.BitrateKbps < 0 || s.Live.BitrateKbps > 20000 {
		return plume.Errorf(plume.EINVALID, "live: udp_port must be 0–65535 and bitrate_kbps 0–20000")
	}
	for _, u := range s.Live.STUN {
		if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "stuns:") {
			return plume.Errorf(plume.EINVALID, "live.stun: %q is not a stun: URL", u)
		}
	}
	for i := range s.Cameras {
		if err := s.Cameras[i].Validate(); err != nil {
			return err
		}
		if names[s.Cameras[i].Name] {
			return plume.Errorf(plume.EINVALID, "camera %q listed twice", s.Cameras[i].Name)
		}
		names[s.Cameras[i].Name] = true
	}
	for fuel := range s.Profiles {
		if fuel != plume.FuelPetrol && fuel != plume.FuelDiesel {
			return plume.Errorf(plume.EINVALID, "profiles: unknown fuel %q", fuel)
		}
	}
	return nil
}

// EnrollmentPath returns the enrollment file's path.
func (s *Station) EnrollmentPath() string {
	if filepath.IsAbs(s.Enrollment) {
		return s.Enrollment
	}
	return filepath.Join(s.DataDir, s.Enrollment)
}

const maxConfigFile = 1 << 20

func readFile(fsys fs.FS, name string, h *hasher) ([]byte, error) {
	// An absolute reference resolves from the file system's root, which
	// on disk is "/".
	name = strings.TrimPrefix(path.Clean(name), "/")
	if !fs.ValidPath(name) {
		return nil, plume.Errorf(plume.EINVALID, "bad path %q", name)
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxConfigFile {
		return nil, plume.Errorf(plume.EINVALID, "%s is larger than 1 MiB", name)
	}
	h.add(name, b)
	return b, nil
}

// join resolves ref against the referring file's directory. An absolute ref
// is kept as it is.
func join(dir, ref string) string {
	if path.IsAbs(ref) {
		return ref
	}
	return path.Join(dir, ref)
}
