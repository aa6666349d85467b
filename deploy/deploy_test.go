package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/plume-emissions/plume/central/objectstore"
)

// unit is a parsed systemd unit file: section -> key -> values (a key may
// repeat, e.g. DeviceAllow).
type unit map[string]map[string][]string

// parseUnit reads systemd's INI dialect: [Section] headers, Key=Value
// lines, '#' and ';' comments, and backslash continuation lines.
func parseUnit(r io.Reader) (unit, error) {
	u := unit{}
	section := ""
	sc := bufio.NewScanner(r)
	lineNo := 0
	var pending string
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line = pending + " " + line
			pending = ""
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("line %d: bad section header %q", lineNo, line)
			}
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: want Key=Value inside a section, got %q", lineNo, line)
		}
		k = strings.TrimSpace(k)
		u[section][k] = append(u[section][k], strings.TrimSpace(v))
	}
	if pending != "" {
		return nil, errors.New("file ends in a continuation line")
	}
	return u, sc.Err()
}

func (u unit) get(section, key string) (string, bool) {
	vs, ok := u[section][key]
	if !ok {
		return "", false
	}
	return vs[len(vs)-1], true
}

func TestParseUnit(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"OK", "[Service]\n# c\n; c\nExecStart=/bin/a \\\n  -b\nDeviceAllow=x\nDeviceAllow=y\n", true},
		{"ErrNoSection", "Key=v\n", false},
		{"ErrBadHeader", "[Service\n", false},
		{"ErrNoEquals", "[Service]\nJustAWord\n", false},
		{"ErrDanglingContinuation", "[Service]\nA=b \\\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := parseUnit(strings.NewReader(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if tc.ok {
				if v, _ := u.get("Service", "ExecStart"); v != "/bin/a  -b" {
					t.Fatalf("continuation: %q", v)
				}
				if len(u["Service"]["DeviceAllow"]) != 2 {
					t.Fatal("repeated key lost")
				}
			}
		})
	}
}

func TestEdgeUnitHardened(t *testing.T) {
	f, err := os.Open("systemd/plume-edge.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, err := parseUnit(f)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Type": "notify", "NotifyAccess": "main", "User": "plume-edge", "Group": "plume-edge",
		"ProtectSystem": "strict", "ReadWritePaths": "/var/lib/plume-edge", "StateDirectory": "plume-edge",
		"NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectHome": "yes", "CapabilityBoundingSet": "",
		"AmbientCapabilities": "", "Restart": "always", "DevicePolicy": "closed",
		"ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
		"RestrictSUIDSGID": "yes", "SystemCallArchitectures": "native",
	}
	for k, v := range want {
		if got, ok := u.get("Service", k); !ok || got != v {
			t.Errorf("[Service] %s=%q (present %v), want %q", k, got, ok, v)
		}
	}
	for _, k := range []string{"WatchdogSec", "RestartSec", "RestartMaxDelaySec", "TimeoutStopSec"} {
		if v, ok := u.get("Service", k); !ok || v == "" || v == "0" {
			t.Errorf("[Service] %s missing or off", k)
		}
	}
	if v, _ := u.get("Unit", "StartLimitIntervalSec"); v != "0" {
		t.Errorf("StartLimitIntervalSec=%q: systemd would give up restarting", v)
	}
	exec, _ := u.get("Service", "ExecStart")
	if !strings.HasPrefix(exec, "/usr/local/bin/plume-edge run ") || !strings.Contains(exec, "-data /var/lib/plume-edge") {
		t.Errorf("ExecStart %q: want plume-edge run with its data in the writable path", exec)
	}
	if v, _ := u.get("Install", "WantedBy"); v != "multi-user.target" {
		t.Errorf("WantedBy=%q", v)
	}
	users, err := os.ReadFile("systemd/plume-edge.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^u plume-edge - .* /var/lib/plume-edge /usr/sbin/nologin$`).Match(users) {
		t.Error("sysusers file does not create the plume-edge user")
	}
}

// decodeAll decodes every YAML document of a file into generic maps.
func decodeAll(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// at walks a decoded document by keys and list indexes.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// pinned reports whether an image reference names a fixed version: a
// digest, or a tag other than latest.
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	name := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	return ok && tag != "" && tag != "latest"
}

func TestPinned(t *testing.T) {
	for img, want := range map[string]bool{
		"postgres:15.10-bookworm": true, "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z": true,
		"nginx": false, "nginx:latest": false, "localhost:5000/x": false, "x@sha256:abc": true,
	} {
		if pinned(img) != want {
			t.Errorf("pinned(%q) = %v", img, !want)
		}
	}
}

// centralEnv are the environment variables central is configured by in
// deploy/: the object store's, the PostgreSQL store's DSN and the shared
// key file (central/cmd/plume-central backends.go).
func centralEnvKnown(name string) bool {
	_, ok := objectstore.Env[name]
	return ok || name == "PLUME_STORE_DSN" || name == "PLUME_CENTRAL_KEY_FILE"
}

func TestCompose(t *testing.T) {
	docs := decodeAll(t, "compose/compose.yaml")
	if len(docs) != 1 {
		t.Fatalf("%d documents", len(docs))
	}
	services, _ := docs[0]["services"].(map[string]any)
	for _, name := range []string{"postgres", "minio1", "minio2", "minio3", "minio4", "central", "lb"} {
		if services[name] == nil {
			t.Fatalf("service %s missing", name)
		}
	}
	for name, svc := range services {
		img := str(at(svc, "image"))
		if !pinned(img) {
			t.Errorf("%s: image %q not pinned", name, img)
		}
		if at(svc, "privileged") == true {
			t.Errorf("%s: privileged", name)
		}
		if at(svc, "deploy", "resources", "limits", "memory") == nil {
			t.Errorf("%s: no memory limit", name)
		}
		if !slices.Contains(toStrings(at(svc, "security_opt")), "no-new-privileges:true") {
			t.Errorf("%s: no-new-privileges not set", name)
		}
		for k, v := range asMap(at(svc, "environment")) {
			if regexp.MustCompile(`(?i)password|secret|access_key`).MatchString(k) && !strings.Contains(str(v), "${") {
				t.Errorf("%s: %s has a literal value; secrets come from the environment", name, k)
			}
		}
	}
	// A distributed MinIO: 4 nodes named by the server command.
	for i := 1; i <= 4; i++ {
		cmd := strings.Join(toStrings(at(services, fmt.Sprintf("minio%d", i), "command")), " ")
		if !strings.Contains(cmd, "http://minio{1...4}/data{1...2}") {
			t.Errorf("minio%d command %q is not the 4-node pool", i, cmd)
		}
	}
	central := services["central"]
	if n := at(central, "deploy", "replicas"); n != 2 {
		t.Errorf("central replicas %v, want 2", n)
	}
	env := asMap(at(central, "environment"))
	for k := range env {
		if !centralEnvKnown(k) {
			t.Errorf("central: %s is not a setting central knows", k)
		}
	}
	checkBlobEnv(t, "compose central", env)
}

// checkBlobEnv checks the object-store settings parse as central would
// parse them.
func checkBlobEnv(t *testing.T, where string, env map[string]any) {
	t.Helper()
	cfg, err := objectstore.ConfigFromEnv(func(k string) string { return str(env[k]) })
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if cfg.Mode == "" || cfg.Endpoint == "" {
		t.Errorf("%s: retention mode and endpoint must be set: %+v", where, cfg)
	}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func toStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, str(x))
	}
	return out
}

// manifests returns every Kubernetes document under k8s/, by kind/name.
func manifests(t *testing.T) map[string]map[string]any {
	t.Helper()
	files, _ := filepath.Glob("k8s/*.yaml")
	if len(files) == 0 {
		t.Fatal("no manifests")
	}
	out := map[string]map[string]any{}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		for _, d := range decodeAll(t, f) {
			kind, name := str(d["kind"]), str(at(d, "metadata", "name"))
			if kind == "" || name == "" || str(d["apiVersion"]) == "" {
				t.Fatalf("%s: a document without apiVersion, kind or name", f)
			}
			if kind != "Namespace" && str(at(d, "metadata", "namespace")) != "plume" {
				t.Errorf("%s %s/%s: not in namespace plume", f, kind, name)
			}
			out[kind+"/"+name] = d
		}
	}
	return out
}

func TestKubernetes(t *testing.T) {
	m := manifests(t)
	replicas := map[string]int{"Deployment/central": 2, "StatefulSet/postgres": 1, "StatefulSet/minio": 4}
	for id, want := range replicas {
		d := m[id]
		if d == nil {
			t.Fatalf("%s missing", id)
		}
		if got := at(d, "spec", "replicas"); got != want {
			t.Errorf("%s: replicas %v, want %d", id, got, want)
		}
		labels := asMap(at(d, "spec", "template", "metadata", "labels"))
		for k, v := range asMap(at(d, "spec", "selector", "matchLabels")) {
			if labels[k] != v {
				t.Errorf("%s: selector %s=%v does not match the pod labels", id, k, v)
			}
		}
		if at(d, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
			t.Errorf("%s: pods may run as root", id)
		}
		containers, _ := at(d, "spec", "template", "spec", "containers").([]any)
		if len(containers) == 0 {
			t.Fatalf("%s: no containers", id)
		}
		for _, c := range containers {
			name := id + " " + str(at(c, "name"))
			if img := str(at(c, "image")); !pinned(img) {
				t.Errorf("%s: image %q not pinned", name, img)
			}
			for _, r := range []string{"cpu", "memory"} {
				if at(c, "resources", "limits", r) == nil || at(c, "resources", "requests", r) == nil {
					t.Errorf("%s: no %s request and limit", name, r)
				}
			}
			if at(c, "readinessProbe") == nil || at(c, "livenessProbe") == nil {
				t.Errorf("%s: readiness and liveness probes required", name)
			}
			if at(c, "securityContext", "privileged") == true || at(c, "securityContext", "allowPrivilegeEscalation") != false {
				t.Errorf("%s: privileged or may escalate", name)
			}
			if !slices.Contains(toStrings(at(c, "securityContext", "capabilities", "drop")), "ALL") {
				t.Errorf("%s: capabilities not dropped", name)
			}
			checkRefs(t, name, c, m)
		}
	}
	central := at(m["Deployment/central"], "spec", "template", "spec", "containers", 0)
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		if p := str(at(central, probe, "httpGet", "path")); p != "/healthz" {
			t.Errorf("central %s path %q, want /healthz", probe, p)
		}
	}
	if str(at(m["Service/central"], "spec", "selector", "app")) != "central" {
		t.Error("central Service does not select the central pods")
	}
	args := strings.Join(toStrings(at(m["StatefulSet/minio"], "spec", "template", "spec", "containers", 0, "args")), " ")
	if !strings.Contains(args, "http://minio-{0...3}.minio-hl.plume.svc.cluster.local/data") {
		t.Errorf("minio args %q do not name the 4 pods", args)
	}
	if str(at(m["StatefulSet/minio"], "spec", "serviceName")) != "minio-hl" || m["Service/minio-hl"] == nil {
		t.Error("minio needs its headless Service for stable pod names")
	}
	cm := asMap(at(m["ConfigMap/plume-central"], "data"))
	for k := range cm {
		if !centralEnvKnown(k) {
			t.Errorf("ConfigMap key %s is not a setting central knows", k)
		}
	}
	env := map[string]any{"PLUME_BLOB_ACCESS_KEY": "k", "PLUME_BLOB_SECRET_KEY": "s"}
	for k, v := range cm {
		env[k] = v
	}
	checkBlobEnv(t, "ConfigMap", env)
	for k, v := range asMap(at(m["Secret/plume-secrets"], "stringData")) {
		if !strings.Contains(str(v), "CHANGE-ME") {
			t.Errorf("example Secret %s holds a real-looking value", k)
		}
	}
	kust := decodeAll(t, "k8s/kustomization.yaml")[0]
	for _, r := range toStrings(kust["resources"]) {
		if _, err := os.Stat(filepath.Join("k8s", r)); err != nil {
			t.Errorf("kustomization lists %s: %v", r, err)
		}
		if strings.Contains(r, "secret") {
			t.Errorf("kustomization applies %s; the example Secret must not be applied", r)
		}
	}
}

// checkRefs checks that every Secret and ConfigMap a container reads exists
// with the key it names.
func checkRefs(t *testing.T, name string, c any, m map[string]map[string]any) {
	t.Helper()
	env, _ := at(c, "env").([]any)
	for _, e := range env {
		if ref := at(e, "valueFrom", "secretKeyRef"); ref != nil {
			s := m["Secret/"+str(at(ref, "name"))]
			if s == nil || at(s, "stringData", str(at(ref, "key"))) == nil {
				t.Errorf("%s: env %s reads missing secret key %v", name, str(at(e, "name")), ref)
			}
		}
	}
	from, _ := at(c, "envFrom").([]any)
	for _, f := range from {
		if ref := at(f, "configMapRef", "name"); ref != nil && m["ConfigMap/"+str(ref)] == nil {
			t.Errorf("%s: envFrom missing ConfigMap %v", name, ref)
		}
	}
}

func TestTestCommandInstallsServers(t *testing.T) {
	b, err := os.ReadFile("test")
	if err != nil {
		t.Fatal(err)
	}
	script := string(b)
	m := regexp.MustCompile(`(?m)^MINIO_VERSION=(\S+)$`).FindStringSubmatch(script)
	if m == nil || m[1] == "latest" || !strings.HasPrefix(m[1], "v") {
		t.Fatalf("deploy/test does not pin the MinIO version: %v", m)
	}
	for _, want := range []string{
		`go install "github.com/minio/minio@$MINIO_VERSION"`, // through the Go toolchain
		`if [[ ! -x "$PLUME_BIN/minio"`,                      // only when missing
		`export PLUME_MINIO_BIN="$PLUME_BIN/minio"`,
		"export PLUME_REQUIRE_SERVERS=1",
		"gofmt -l .", "go mod tidy -diff", "go tool staticcheck ./...", // drift fails CI
		"--- SKIP", // the skipped tests are listed
	} {
		if !strings.Contains(script, want) {
			t.Errorf("deploy/test lacks %q", want)
		}
	}
	if strings.Index(script, "PLUME_REQUIRE_SERVERS=1") > strings.Index(script, "go test") {
		t.Error("PLUME_REQUIRE_SERVERS is set after go test runs")
	}
	boot, err := os.ReadFile("bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s+postgresql\s`).Match(boot) {
		t.Error("bootstrap does not install postgresql for the test servers")
	}
}

// TestTestCommandBuildsMinIOOnce runs deploy/test's MinIO section with a
// stand-in go on PATH: the first run builds into the cache, the second
// finds it and builds nothing.
func TestTestCommandBuildsMinIOOnce(t *testing.T) {
	b, err := os.ReadFile("test")
	if err != nil {
		t.Fatal(err)
	}
	script := string(b)
	from, to := strings.Index(script, "MINIO_VERSION="), strings.Index(script, "export PLUME_REQUIRE_SERVERS=1")
	if from < 0 || to < from {
		t.Fatal("deploy/test has no MinIO section")
	}
	dir := t.TempDir()
	section := filepath.Join(dir, "section.sh")
	body := "set -euo pipefail\n" + script[from:to] + "echo \"bin=$PLUME_MINIO_BIN\"\n"
	if err := os.WriteFile(section, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	fakeBin := filepath.Join(dir, "fakebin")
	os.Mkdir(fakeBin, 0o755)
	goLog := filepath.Join(dir, "go.log")
	fakeGo := "#!/bin/sh\necho \"GOBIN=$GOBIN $*\" >> " + goLog + "\nmkdir -p \"$GOBIN\" && printf '#!/bin/sh\\n' > \"$GOBIN/minio\" && chmod +x \"$GOBIN/minio\"\n"
	if err := os.WriteFile(filepath.Join(fakeBin, "go"), []byte(fakeGo), 0o755); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	env := append(os.Environ(), "PATH="+fakeBin+":"+os.Getenv("PATH"), "XDG_CACHE_HOME="+cache)
	for run := 1; run <= 2; run++ {
		cmd := exec.Command("bash", section)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out)
		}
		if want := "bin=" + filepath.Join(cache, "plume", "bin", "minio"); !strings.Contains(string(out), want) {
			t.Fatalf("run %d: output lacks %q:\n%s", run, want, out)
		}
	}
	calls, _ := os.ReadFile(goLog)
	lines := strings.Split(strings.TrimSpace(string(calls)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "install github.com/minio/minio@v") {
		t.Fatalf("go calls over two runs:\n%s\nwant one pinned go install", calls)
	}
}
