package main

import (
	"context"
	"os"
	"os/exec"
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
	err := run(ctx, []string{"-dir", dir, "-addr", "127.0.0.1:0", "-passes", "120", "-rate", "200", "-seed", "3", "-loops", "1", "-exit"}, &out, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{"central   listening on", "120/120 passes acknowledged", "Where to look", "/api/v1/cases", "Evidence packages", "verify -central-key"} {
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
	// Both logins come first, before the station is even enrolled.
	signIn, enrolled := strings.Index(s, "Sign in at"), strings.Index(s, "enrolled  station")
	for _, user := range []string{"\n  reviewer  password demo-", "\n  admin     password demo-"} {
		if i := strings.Index(s, user); i < 0 || i > enrolled || signIn > i {
			t.Errorf("login %q not printed first:\n%s", strings.TrimSpace(user), s)
		}
	}
	// The passes the summary counts are the ones the progress lines count.
	if m := regexp.MustCompile(`central holds those (\d+) passes`).FindStringSubmatch(s); m == nil || m[1] != "120" {
		t.Errorf("summary pass count %v, want 120:\n%s", m, s)
	}
}

// TestDemoRunsNoTestHelpers: the demo links no test package (no testing,
// no agenttest), so no test-harness officer appears in its central.
func TestDemoRunsNoTestHelpers(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Skipf("SKIP: go list: %v %s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "testing" || (strings.HasPrefix(dep, "github.com/plume-emissions/") && strings.HasSuffix(dep, "test")) {
			t.Errorf("plume-demo depends on %s", dep)
		}
	}
}

func TestShorten(t *testing.T) {
	s := "exceeds: NO 1524 ppm > 1500 ppm (provisional limit) (HJ 845-2017, profile hj845-2017-diesel@2026.11-1)"
	if got := withoutCitation(s); got != "exceeds: NO 1524 ppm > 1500 ppm (provisional limit)" {
		t.Errorf("withoutCitation: %q", got)
	}
	if got := shorten("black smoke: Ringelmann grade 4 on camera", 30); got != "black smoke: Ringelmann grade …" {
		t.Errorf("shorten cut mid-word: %q", got)
	}
	if a, b := padCells("豫EM5072", 16), padCells("未识别 no plate", 16); a != "豫EM5072"+strings.Repeat(" ", 8) || b != "未识别 no plate " {
		t.Errorf("padCells: %q %q", a, b)
	}
	if got := shorten("short", 30); got != "short" {
		t.Errorf("shorten: %q", got)
	}
}
