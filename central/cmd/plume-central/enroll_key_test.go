package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/store"
)

// TestEnrollPublicKey: enroll -public-key records the station's own key,
// and the enrollment file it writes holds no private key; without the
// flag central still generates one, and warns that this is not the
// documented way.
func TestEnrollPublicKey(t *testing.T) {
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "e.json")
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"enroll", "-data", dir, "-station", "GD-SZ-0001", "-central-url", "http://placeholder:1",
		"-public-key", plume.EncodeKey(pub), "-out", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("enroll -public-key: %v %s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "warning") {
		t.Errorf("enroll -public-key warned: %s", stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	e, err := plume.DecodeEnrollment(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.StationKey != "" || bytes.Contains(b, []byte("station_key")) {
		t.Fatalf("the enrollment file holds a private key:\n%s", b)
	}

	stdout.Reset()
	stderr.Reset()
	err = run(context.Background(), []string{"enroll", "-data", dir, "-station", "GD-SZ-0002", "-central-url", "http://placeholder:1",
		"-out", filepath.Join(t.TempDir(), "f.json")}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("enroll without -public-key: %v %s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "warning") || !strings.Contains(stderr.String(), "plume-edge keygen") {
		t.Errorf("enroll without -public-key did not warn: %q", stderr.String())
	}
	err = run(context.Background(), []string{"enroll", "-data", dir, "-station", "GD-SZ-0003", "-central-url", "http://placeholder:1",
		"-public-key", "c2hvcnQ=", "-out", filepath.Join(t.TempDir(), "g.json")}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "-public-key") {
		t.Fatalf("enroll with a short public key: %v, want a refusal", err)
	}

	st, err := store.Open(filepath.Join(dir, store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Station(context.Background(), "GD-SZ-0001")
	if err != nil || !ed25519.PublicKey(s.PublicKey).Equal(pub) {
		t.Fatalf("enrolled station %+v, %v; want the given public key", s, err)
	}
	if _, err := st.Station(context.Background(), "GD-SZ-0003"); err == nil {
		t.Fatal("a station with a bad public key was enrolled")
	}
}
