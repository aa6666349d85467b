package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plume-emissions/plume/central/store"
)

// TestEnrollLocation: enroll -lat -lon records the station's coordinates
// (the cloned-plate speed check needs them); coordinates off the globe are
// refused and nothing is enrolled.
func TestEnrollLocation(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	args := []string{"enroll", "-data", dir, "-station", "GD-SZ-0001", "-central-url", "http://placeholder:1", "-out", filepath.Join(t.TempDir(), "e.json")}
	if err := run(context.Background(), append(args, "-lat", "22.543096", "-lon", "114.057865"), &out, &errOut); err != nil {
		t.Fatalf("enroll -lat -lon: %v %s", err, errOut.String())
	}
	err := run(context.Background(), []string{"enroll", "-data", dir, "-station", "GD-SZ-0002", "-central-url", "http://placeholder:1",
		"-out", filepath.Join(t.TempDir(), "f.json"), "-lat", "122.5", "-lon", "114"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "WGS 84") {
		t.Fatalf("enroll with latitude 122.5: %v, want a refusal naming WGS 84", err)
	}
	st, err := store.Open(filepath.Join(dir, store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Station(context.Background(), "GD-SZ-0001")
	if err != nil || s.Latitude != 22.543096 || s.Longitude != 114.057865 {
		t.Fatalf("enrolled station %+v, %v", s, err)
	}
	if _, err := st.Station(context.Background(), "GD-SZ-0002"); err == nil {
		t.Fatal("a station with bad coordinates was enrolled")
	}
}
