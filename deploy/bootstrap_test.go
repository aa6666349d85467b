package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSystem puts stand-ins for dpkg-query and apt-get first on PATH: dpkg
// reports every package installed except those in missing, and apt-get
// records how it was called.
func fakeSystem(t *testing.T, missing ...string) (env []string, aptLog string) {
	t.Helper()
	dir := t.TempDir()
	aptLog = filepath.Join(dir, "apt.log")
	dpkg := `#!/bin/sh
# dpkg-query -W -f='${Status}' PKG
for pkg; do :; done  # the last argument
for m in $FAKE_MISSING; do
  if [ "$m" = "$pkg" ]; then echo "dpkg-query: no packages found matching $pkg" >&2; exit 1; fi
done
printf 'install ok installed'
`
	apt := `#!/bin/sh
echo "$@" >> "$FAKE_APT_LOG"
`
	for name, body := range map[string]string{"dpkg-query": dpkg, "apt-get": apt} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env = append(os.Environ(),
		"PATH="+dir+":"+os.Getenv("PATH"),
		"FAKE_MISSING="+strings.Join(missing, " "),
		"FAKE_APT_LOG="+aptLog,
	)
	return env, aptLog
}

func runBootstrap(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("bootstrap installs as root; run the tests as root to check it")
	}
	cmd := exec.Command("./bootstrap", args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestBootstrapInstallsWhatIsMissing(t *testing.T) {
	env, aptLog := fakeSystem(t, "libopencv-dev", "chromium")
	out, err := runBootstrap(t, env)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	log, _ := os.ReadFile(aptLog)
	var installs []string
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		if strings.HasPrefix(line, "install") {
			installs = append(installs, line)
		}
	}
	if len(installs) != 1 {
		t.Fatalf("want one apt-get install, got %q\n%s", installs, out)
	}
	fields := strings.Fields(installs[0])
	got := fields[len(fields)-2:]
	if got[0] != "libopencv-dev" || got[1] != "chromium" {
		t.Fatalf("installed %v, want exactly the missing libopencv-dev and chromium (%s)", got, installs[0])
	}
}

func TestBootstrapIsIdempotent(t *testing.T) {
	env, aptLog := fakeSystem(t)
	out, err := runBootstrap(t, env)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := os.Stat(aptLog); err == nil {
		log, _ := os.ReadFile(aptLog)
		t.Fatalf("apt-get ran with everything present: %s", log)
	}
	if !strings.Contains(out, "all present") {
		t.Fatalf("output: %s", out)
	}
}

func TestBootstrapCheck(t *testing.T) {
	env, aptLog := fakeSystem(t, "fonts-wqy-zenhei")
	out, err := runBootstrap(t, env, "--check")
	if err == nil || !strings.Contains(out, "missing: fonts-wqy-zenhei") {
		t.Fatalf("check should fail and name the missing package: %v\n%s", err, out)
	}
	if _, err := os.Stat(aptLog); err == nil {
		t.Fatal("--check installed something")
	}
}
