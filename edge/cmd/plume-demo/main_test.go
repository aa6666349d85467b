package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The README's first command runs this program; it must work end to end and
// say where to look.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "demo-data")
	var out strings.Builder
	err := run(ctx, []string{"-dir", dir, "-addr", "127.0.0.1:0", "-passes", "120", "-rate", "200", "-seed", "3", "-exit"}, &out, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{"central   listening on", "120/120 passes acked", "Where to look", "/api/v1/cases", "Evidence packages", "verify -central-key"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	m := regexp.MustCompile(`(\d+) evidence packages built, downloaded and verified offline`).FindStringSubmatch(s)
	if m == nil || m[1] == "0" {
		t.Fatalf("no packages verified:\n%s", s)
	}
	zips, _ := filepath.Glob(filepath.Join(dir, "packages", "*.zip"))
	if len(zips) == 0 || m[1] != strconv.Itoa(len(zips)) {
		t.Fatalf("%d packages on disk, output says %s", len(zips), m[1])
	}
	if _, err := os.Stat(filepath.Join(dir, "edge", "enrollment.json")); err != nil {
		t.Fatal(err)
	}
}
