package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/export/policetest"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/central/store"
)

// TestMain lets the test binary run as plume-central itself, so a test
// can start central as a process and kill it.
func TestMain(m *testing.M) {
	if args := os.Getenv("PLUME_CENTRAL_CHILD_ARGS"); args != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, strings.Split(args, "\x1f"), io.Discard, os.Stderr)
		stop()
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startChild runs "plume-central serve" in a child process.
func startChild(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PLUME_CENTRAL_CHILD_ARGS="+strings.Join(append([]string{"serve"}, args...), "\x1f"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExportExactlyOnceAcrossKill kills central (SIGKILL) after the police
// stored a case but before central recorded the receipt, restarts it, and
// checks that the case reaches the police exactly once, with one receipt
// and one export in the custody log, and that later restarts send nothing.
func TestExportExactlyOnceAcrossKill(t *testing.T) {
	secret := []byte("police shared secret, 32 bytes!!")
	police := policetest.New(secret)
	stored := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	police.BeforeAnswer = func(string) {
		once.Do(func() {
			close(stored)
			<-release // central dies while the answer is held back
		})
	}
	psrv := httptest.NewServer(police)
	defer psrv.Close()
	defer once.Do(func() {})

	dir := t.TempDir()
	secretFile := filepath.Join(dir, "police.secret")
	os.WriteFile(secretFile, secret, 0o600)
	data := filepath.Join(dir, "central")

	// Set up in-process: a station, a reviewer, a case, the approval. No
	// workers run, so the export waits in the durable queue.
	cfg := server.NewConfig()
	cfg.Addr, cfg.DataDir, cfg.PackageWorkers = "127.0.0.1:0", data, -1
	cfg.PoliceURL, cfg.PoliceSecret = psrv.URL, secret
	s, err := server.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	enr, err := s.Enroll(context.Background(), "GD-SZ-0001", "gantry", nil)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := enr.PrivateKey()
	if err := s.CreateOfficer(context.Background(), &central.Officer{Username: "li.wei", Name: "李伟", Role: central.RoleReviewer}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	st := &fixture.Client{BaseURL: s.URL(), Station: "GD-SZ-0001", Key: key}
	ev := fixture.NewEvidence(t, key, "GD-SZ-0001", fixture.Epoch, 1, true, 2)
	resp, err := st.PutEvidence(ev)
	if err != nil || resp.Status != http.StatusCreated {
		t.Fatal(resp, err)
	}
	id := plume.CaseID("C00000000001")
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	r, err := hc.PostForm(s.URL()+"/login", url.Values{"username": {"li.wei"}, "password": {"correct horse battery"}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(r.Body)
	r.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token after sign-in")
	}
	r, err = hc.PostForm(s.URL()+"/cases/"+string(id)+"/approve", url.Values{"csrf": {string(m[1])}})
	if err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("approve: %v %v", r.Status, err)
	}
	s.Close()

	// Central as a process; kill it while the police hold the answer.
	addr := freeAddr(t)
	args := []string{"-addr", addr, "-data", data, "-police-url", psrv.URL, "-police-secret-file", secretFile}
	child := startChild(t, args...)
	select {
	case <-stored:
	case <-time.After(30 * time.Second):
		t.Fatal("central never pushed the case")
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	close(release)
	first := police.Cases()
	if len(first) != 1 {
		t.Fatalf("police hold %d cases after the first push", len(first))
	}
	caseState := func() *central.Case {
		st, err := store.Open(filepath.Join(data, store.FileName), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		c, err := st.Case(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := caseState(); c.Status != central.CaseApproved {
		t.Fatalf("after the kill the case is %s; the receipt cannot have been recorded", c.Status)
	}

	// Restart: the export job is claimed again and resent with the same
	// key; the police answer with the first receipt.
	child = startChild(t, args...)
	waitFor(t, "the resend", 30*time.Second, func() bool { return police.Deliveries() >= 2 })
	time.Sleep(300 * time.Millisecond) // let central record the receipt
	child.Process.Signal(syscall.SIGTERM)
	child.Wait()
	c := caseState()
	if c.Status != central.CaseExported || c.Export.Receipt != first[0].Receipt.ID {
		t.Fatalf("after the restart: %s, receipt %q, want exported with %q", c.Status, c.Export.Receipt, first[0].Receipt.ID)
	}
	if n := len(police.Cases()); n != 1 {
		t.Fatalf("police hold %d cases, want exactly 1", n)
	}

	// Another restart sends nothing.
	n := police.Deliveries()
	child = startChild(t, args...)
	waitFor(t, "central to listen", 10*time.Second, func() bool {
		r, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			r.Body.Close()
		}
		return err == nil
	})
	time.Sleep(1500 * time.Millisecond)
	child.Process.Signal(syscall.SIGTERM)
	child.Wait()
	if police.Deliveries() != n {
		t.Fatalf("a restart pushed an exported case again (%d → %d deliveries)", n, police.Deliveries())
	}
	st2, _ := store.Open(filepath.Join(data, store.FileName), store.Options{})
	defer st2.Close()
	log, _ := st2.Custody(context.Background(), id)
	exports := 0
	for _, e := range log {
		if e.Action == central.ActionExported {
			exports++
		}
	}
	if exports != 1 {
		t.Fatalf("%d export entries in the custody log, want 1", exports)
	}
	t.Logf("deliveries %d (one resend after the kill), police cases 1, receipt %s", police.Deliveries(), c.Export.Receipt)
}

func TestCreateAdmin(t *testing.T) {
	data := t.TempDir()
	var out strings.Builder
	err := runCreateAdmin(context.Background(), []string{"-data", data, "-username", "chief"}, strings.NewReader("a long enough password\n"), &out, io.Discard)
	if err != nil || !strings.Contains(out.String(), "administrator chief created") {
		t.Fatalf("create-admin: %v %q", err, out.String())
	}
	if err := runCreateAdmin(context.Background(), []string{"-data", data, "-username", "chief"}, strings.NewReader("a long enough password\n"), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Fatalf("second create-admin: %v", err)
	}
	if err := runCreateAdmin(context.Background(), []string{"-data", data, "-username", "x2"}, strings.NewReader("short\n"), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "at least") {
		t.Fatalf("short password: %v", err)
	}
	st, err := store.Open(filepath.Join(data, store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o, err := st.Officer(context.Background(), "chief")
	if err != nil || o.Role != central.RoleAdmin || !strings.HasPrefix(o.PasswordHash, "$argon2id$") {
		t.Fatalf("officer %+v %v", o, err)
	}
}
