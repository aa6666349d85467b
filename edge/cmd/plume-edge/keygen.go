package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/config"
)

// runKeygen generates the station's Ed25519 key on the station, writes it
// to DIR/station.key (0600, never over an existing key) and prints the
// public key for plume-central enroll -public-key. The private key never
// leaves the station.
func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plume-edge keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write "+config.KeyFileName+" in (the station's data_dir)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return errors.New("keygen: usage: plume-edge keygen -out DIR")
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	path := filepath.Join(*out, config.KeyFileName)
	if err := config.WriteKeyFile(path, key); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(stdout, "station key  %s (mode 0600; it never leaves this station)\n", path)
	fmt.Fprintf(stdout, "public key   %s\nfingerprint  %s\n", plume.EncodeKey(pub), plume.KeyFingerprint(pub))
	fmt.Fprintf(stdout, "enrol it:    plume-central enroll ... -public-key %s\n", plume.EncodeKey(pub))
	fmt.Fprintf(stdout, "then set station_key: %s in the station file\n", config.KeyFileName)
	return nil
}

// useStationKey puts the key of the station file's station_key into the
// enrollment, which then must hold none of its own; without station_key
// the enrollment must hold the key central generated.
func useStationKey(st *config.Loaded, enr *plume.Enrollment) error {
	path := st.StationKeyPath()
	switch {
	case path == "" && enr.StationKey == "":
		return fmt.Errorf("%s holds no station key: set station_key in the station file to the file plume-edge keygen wrote", st.EnrollmentPath())
	case path == "":
		return nil
	case enr.StationKey != "":
		return fmt.Errorf("%s holds a station key and the station file names %s too; use one (re-enrol with -public-key)", st.EnrollmentPath(), path)
	}
	key, err := config.ReadKeyFile(path)
	if err != nil {
		return err
	}
	enr.StationKey = plume.EncodeKey(plume.SeedOf(key))
	return nil
}
