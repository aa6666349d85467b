package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/plume-emissions/plume"
	firmwareconfig "github.com/plume-emissions/plume/firmware-config"
)

// RemoteFile is the name, in the data directory, of the last good remote
// configuration central delivered.
const RemoteFile = "remote-config.yaml"

// Remote is the part of a station's configuration central may set
// remotely (GET /api/v1/stations/{station}/config): limit profiles (with
// their thresholds: smoke grade, validity windows, audit policy) and the
// cameras' zones. It overlays the station file.
type Remote struct {
	// Profiles replaces the station's limit profile for each fuel given.
	Profiles map[plume.Fuel]plume.LimitProfile `yaml:"profiles"`
	// Cameras changes the zones of cameras the station file names.
	Cameras []RemoteCamera `yaml:"cameras"`
}

// RemoteCamera is one camera's zones.
type RemoteCamera struct {
	Name     string   `yaml:"name"`
	ROI      [][2]int `yaml:"roi"`
	TriggerY int      `yaml:"trigger_y"`
	LaneX    []int    `yaml:"lane_x"`
}

// HashRemote is the hash central reports for a configuration body: the
// lowercase hex SHA-256 of its bytes.
func HashRemote(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// ApplyRemote checks a remote configuration body against the loaded
// station and returns the station as it would run with it. Nothing is
// changed when it fails: the error is the reason reported to central.
func ApplyRemote(base *Loaded, body []byte) (*Loaded, error) {
	var r Remote
	if err := firmwareconfig.DecodeStrict(body, &r); err != nil {
		return nil, plume.Errorf(plume.EINVALID, "remote configuration: %s", plume.ErrorMessage(err))
	}
	next := *base
	next.Profiles = plume.ProfileSet{}
	for f, p := range base.Profiles {
		next.Profiles[f] = p
	}
	for fuel, p := range r.Profiles {
		p := p
		if err := p.Validate(); err != nil {
			return nil, plume.Errorf(plume.EINVALID, "remote configuration: %s", plume.ErrorMessage(err))
		}
		if p.Fuel != fuel {
			return nil, plume.Errorf(plume.EINVALID, "remote configuration: profile %s is for %s, listed under %s", p.Ref(), p.Fuel, fuel)
		}
		next.Profiles[fuel] = &p
	}
	next.Cameras = append([]Camera(nil), base.Cameras...)
	for _, rc := range r.Cameras {
		i := -1
		for j := range next.Cameras {
			if next.Cameras[j].Name == rc.Name {
				i = j
			}
		}
		if i < 0 {
			return nil, plume.Errorf(plume.EINVALID, "remote configuration: the station has no camera %q", rc.Name)
		}
		c := next.Cameras[i]
		if rc.ROI != nil {
			c.ROI = rc.ROI
		}
		if rc.TriggerY != 0 {
			c.TriggerY = rc.TriggerY
		}
		if rc.LaneX != nil {
			c.LaneX = rc.LaneX
		}
		if err := c.Validate(); err != nil {
			return nil, plume.Errorf(plume.EINVALID, "remote configuration: camera %s: %s", rc.Name, plume.ErrorMessage(err))
		}
		next.Cameras[i] = c
	}
	next.Hash = HashRemote(append([]byte(base.Hash+"\n"), body...))
	return &next, nil
}

// WriteRemote stores a good remote configuration atomically in dir:
// write a temporary file, fsync it, rename it over RemoteFile, fsync the
// directory.
func WriteRemote(dir string, body []byte) error {
	tmp, err := os.CreateTemp(dir, ".remote-config-*")
	if err != nil {
		return fmt.Errorf("write remote configuration: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return fmt.Errorf("write remote configuration: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write remote configuration: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write remote configuration: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, RemoteFile)); err != nil {
		return fmt.Errorf("write remote configuration: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write remote configuration: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write remote configuration: %w", err)
	}
	return nil
}
