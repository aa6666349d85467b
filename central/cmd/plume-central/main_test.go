package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/central/store"
)

// syncBuffer is a bytes.Buffer safe for a goroutine writing and a test
// reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listening = regexp.MustCompile(`listening on (http://127\.0\.0\.1:[0-9]+)`)

// serve runs "plume-central serve" on a free port and returns its URL and a
// function that stops it and returns its error.
func serve(t *testing.T, dir string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-data", dir}, &out, &errOut) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := listening.FindStringSubmatch(out.String()); m != nil {
			stop := sync.OnceValue(func() error { cancel(); return <-done })
			t.Cleanup(func() { stop() })
			return m[1], stop
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	enrollment := filepath.Join(t.TempDir(), "station.json")
	url, stop := serve(t, dir)

	// enroll refuses quickly while central runs.
	start := time.Now()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"enroll", "-data", dir, "-station", "GD-SZ-0001", "-central-url", url, "-out", enrollment}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "in use by a running central") {
		t.Fatalf("enroll while running: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("enroll took %v to fail", d)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}

	out.Reset()
	if err := run(context.Background(), []string{"enroll", "-data", dir, "-station", "GD-SZ-0001", "-name", "north gantry", "-central-url", "http://placeholder:1", "-out", enrollment}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(enrollment)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("enrollment file %v %v", fi, err)
	}
	b, _ := os.ReadFile(enrollment)
	e, err := plume.DecodeEnrollment(b)
	if err != nil {
		t.Fatal(err)
	}
	key, err := e.PrivateKey()
	if err != nil {
		t.Fatal(err)
	}

	// The API serves no anonymous reads: an administrator signs in.
	t.Setenv("PLUME_ADMIN_PASSWORD", "admin-password-1")
	if err := run(context.Background(), []string{"create-admin", "-data", dir, "-username", "admin"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	url, _ = serve(t, dir)
	officer := signIn(t, url, "admin", "admin-password-1")
	c := &fixture.Client{BaseURL: url, Station: e.Station, Key: key}
	ev := fixture.NewEvidence(t, key, e.Station, time.Now(), 1, true, 2)
	r, err := c.PutEvidence(ev)
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("%s %v", r, err)
	}
	var created struct{ Case string }
	r.JSON(&created)

	// Wait for the package, then download it.
	var pkg []byte
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := officer.Get(url + "/api/v1/cases/" + created.Case + "/package")
		if err != nil {
			t.Fatal(err)
		}
		pkg, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("package never built: %d %s", resp.StatusCode, pkg)
		}
		time.Sleep(20 * time.Millisecond)
	}
	zipPath := filepath.Join(t.TempDir(), "case.zip")
	os.WriteFile(zipPath, pkg, 0o600)

	out.Reset()
	if err := run(context.Background(), []string{"verify", "-central-key", e.CentralKey, zipPath}, &out, &errOut); err != nil {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}
	for _, want := range []string{"ok   central signature", "pinned central key", "ok   custody chain", "verifies"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("verify output lacks %q:\n%s", want, out.String())
		}
	}

	// Without a pinned key the signer is unknown: a package re-signed with
	// anyone's key would verify just the same, so verify fails (issue 14
	// finding 2).
	out.Reset()
	err = run(context.Background(), []string{"verify", zipPath}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "signer unknown") || !strings.Contains(out.String(), "SIGNER UNKNOWN") || strings.Contains(out.String(), "package "+created.Case+" verifies") {
		t.Fatalf("unpinned verify: %v\n%s", err, out.String())
	}
	// The police get central's key and fingerprint with "key", and pin it
	// with a keyring file.
	out.Reset()
	if err := run(context.Background(), []string{"key", "-data", dir}, &out, &errOut); err != nil || !strings.Contains(out.String(), e.CentralKey) || !strings.Contains(out.String(), "fingerprint  SHA256:") {
		t.Fatalf("key: %v %s", err, out.String())
	}
	ring := filepath.Join(t.TempDir(), "central-keys.txt")
	os.WriteFile(ring, []byte("# Shenzhen central\n"+plume.EncodeKey(fixture.Key("retired").Public().(ed25519.PublicKey))+" - 2026-01-01T00:00:00Z\n"+e.CentralKey+" 2026-01-01T00:00:00Z -\n"), 0o600)
	out.Reset()
	if err := run(context.Background(), []string{"verify", "-central-keys", ring, zipPath}, &out, &errOut); err != nil || !strings.Contains(out.String(), "signed by pinned central key SHA256:") {
		t.Fatalf("verify with a keyring: %v\n%s", err, out.String())
	}

	// Pinning a key that is not central's fails.
	out.Reset()
	otherKey := plume.EncodeKey(fixture.Key("other").Public().(ed25519.PublicKey))
	err = run(context.Background(), []string{"verify", "-central-key", otherKey, zipPath}, &out, &errOut)
	if err == nil || !strings.Contains(out.String(), "FAIL central signature") {
		t.Fatalf("wrong pinned key: %v\n%s", err, out.String())
	}

	// One changed byte of media fails verification.
	i := bytes.Index(pkg, ev.Media[1].Data)
	if i < 0 {
		t.Fatal("media not stored verbatim in the zip")
	}
	pkg[i] ^= 0x20
	os.WriteFile(zipPath, pkg, 0o600)
	out.Reset()
	err = run(context.Background(), []string{"verify", zipPath}, &out, &errOut)
	if err == nil || !strings.Contains(out.String(), "FAIL") {
		t.Fatalf("tampered package: %v\n%s", err, out.String())
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), nil, &out, &errOut); err == nil || !strings.Contains(errOut.String(), "usage") {
		t.Fatalf("no args: %v", err)
	}
	if err := run(context.Background(), []string{"frobnicate"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("unknown command: %v", err)
	}
	if err := run(context.Background(), []string{"verify"}, &out, &errOut); err == nil {
		t.Fatal("verify without a package succeeded")
	}
	if err := run(context.Background(), []string{"enroll", "-data", t.TempDir()}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "required") {
		t.Fatalf("enroll without flags: %v", err)
	}
}

// signIn signs in at central's /login and returns a client carrying the
// session cookie.
func signIn(tb testing.TB, baseURL, user, password string) *http.Client {
	tb.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(baseURL+"/login", url.Values{"username": {user}, "password": {password}})
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		tb.Fatalf("sign in as %s: %d", user, resp.StatusCode)
	}
	return c
}

// Issue 14, finding 9: a short police secret, or one in a file others may
// read, is refused at start.
func TestPoliceSecretChecked(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		secret string
		mode   os.FileMode
		ok     bool
	}{
		"OK":            {"police shared secret, 32 bytes!!", 0o600, true},
		"ErrShort":      {"short secret", 0o600, false},
		"ErrWorldReads": {"police shared secret, 32 bytes!!", 0o644, false},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(tc.secret+"\n"), tc.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, tc.mode)
			m := NewMain()
			err := m.ParseFlags([]string{"-police-secret-file", path}, io.Discard)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseFlags: %v", err)
			}
		})
	}
}

// TestOfficerCommand: on a stopped central, "officer" disables an officer
// and sets a password, audited as the command line.
func TestOfficerCommand(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	if err := server.CreateAdminDataDir(ctx, dir, "admin", "Admin", "correct horse battery", time.Now()); err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		if k == "PLUME_OFFICER_PASSWORD" {
			return "another long password"
		}
		return ""
	}
	var out bytes.Buffer
	for _, do := range []string{"disable", "set-password"} {
		if err := runOfficer(ctx, []string{"-data", dir, "-username", "admin", "-do", do}, env, strings.NewReader(""), &out, io.Discard); err != nil {
			t.Fatalf("%s: %v", do, err)
		}
	}
	if err := runOfficer(ctx, []string{"-data", dir, "-username", "nobody", "-do", "disable"}, env, strings.NewReader(""), &out, io.Discard); err == nil {
		t.Fatal("disabled an officer who does not exist")
	}
	st, err := store.Open(filepath.Join(dir, store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o, err := st.Officer(ctx, "admin")
	if err != nil || !o.Disabled || o.SessionsNotBefore.IsZero() {
		t.Fatalf("officer %+v %v", o, err)
	}
	evs, _, _ := st.Audit(ctx, central.AuditFilter{Action: "officer.", Target: "admin"})
	if len(evs) != 3 || evs[0].Actor != "plume-central officer" || evs[1].Action != "officer.disable" {
		t.Fatalf("audit %+v", evs)
	}
}
