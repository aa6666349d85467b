package config

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/plume-emissions/plume"
)

// KeyFileName is the station key file plume-edge keygen writes in the
// directory it is given.
const KeyFileName = "station.key"

// WriteKeyFile writes a station's private key to path, only its owner may
// read it (mode 0600). The file holds the key in the enrollment encoding
// (plume.DecodeStationKey) and a newline. An existing file is never
// overwritten: replacing a station's key is a re-enrolment.
func WriteKeyFile(path string, key ed25519.PrivateKey) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("station key %s already exists; not overwriting it", path)
	} else if err != nil {
		return fmt.Errorf("station key: %w", err)
	}
	_, err = io.WriteString(f, plume.EncodeKey(plume.SeedOf(key))+"\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("station key: %w", err)
	}
	return nil
}

// ReadKeyFile reads a station key file written by WriteKeyFile. A file
// that group or others may read is refused.
func ReadKeyFile(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("station key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("station key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, plume.Errorf(plume.EINVALID, "station key %s has mode %04o; only its owner may read it (chmod 600)", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("station key: %w", err)
	}
	k, err := plume.DecodeStationKey(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("station key %s: %w", path, err)
	}
	return k, nil
}

// StationKeyPath returns the station key file's path, or "" when the
// station file names none (the key is then in the enrollment file).
func (s *Station) StationKeyPath() string {
	if s.StationKey == "" || filepath.IsAbs(s.StationKey) {
		return s.StationKey
	}
	return filepath.Join(s.DataDir, s.StationKey)
}
