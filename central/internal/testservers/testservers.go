// Package testservers starts real PostgreSQL and MinIO servers for tests:
// each on a free loopback port with a temporary data directory, stopped and
// removed at the test's cleanup.
//
// A test that needs a server skips, saying what to install, when the
// binaries are absent, unless PLUME_REQUIRE_SERVERS=1 (set by deploy/test
// and CI), when it fails instead. deploy/test installs both: PostgreSQL
// from Debian's package (deploy/bootstrap) and MinIO through the Go
// toolchain into ~/.cache/plume/bin.
//
// Binaries are found as follows:
//
//	MinIO       $PLUME_MINIO_BIN, else minio on PATH, else ~/.cache/plume/bin/minio
//	PostgreSQL  $PLUME_PG_BIN (a directory), else initdb and postgres on PATH,
//	            else the newest /usr/lib/postgresql/*/bin
//
// PostgreSQL refuses to run as root; when the tests run as root the server
// runs as the unprivileged "postgres" user (created by Debian's package).
package testservers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing server
// binary from a skip into a failure.
const RequireEnv = "PLUME_REQUIRE_SERVERS"

// Required reports whether tests must run their servers (RequireEnv=1).
func Required() bool { return os.Getenv(RequireEnv) == "1" }

func missing(tb testing.TB, what string) {
	tb.Helper()
	if Required() {
		tb.Fatalf("%s (%s=1 requires the test servers; run deploy/test to install them)", what, RequireEnv)
	}
	tb.Skipf("%s; run deploy/test to install it, or set %s=1 to make this a failure", what, RequireEnv)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// process is a started server.
type process struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func start(cmd *exec.Cmd, logPath string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL // never outlive the test binary
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &process{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig, waits up to grace, then kills.
func (p *process) stop(sig os.Signal, grace time.Duration) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

// MinIO is a running MinIO server.
type MinIO struct {
	Endpoint  string // host:port of the S3 API
	AccessKey string
	SecretKey string
	DataDir   string
	proc      *process
}

// MinIOBinary returns the path of the MinIO server binary, or "".
func MinIOBinary() string {
	if p := os.Getenv("PLUME_MINIO_BIN"); p != "" {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
		return ""
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "plume", "bin", "minio")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// StartMinIO starts a single-drive MinIO server (object locking and
// versioning work on it) and stops it at cleanup.
func StartMinIO(tb testing.TB) *MinIO {
	tb.Helper()
	bin := MinIOBinary()
	if bin == "" {
		missing(tb, "MinIO server binary not found")
	}
	m := &MinIO{AccessKey: "plume-test", SecretKey: "plume-test-secret-key", DataDir: tb.TempDir()}
	var lastErr error
	for range 3 { // the port may be taken between freePort and bind
		m.Endpoint = "127.0.0.1:" + strconv.Itoa(freePort(tb))
		cmd := exec.Command(bin, "server", m.DataDir, "--address", m.Endpoint, "--quiet")
		cmd.Env = append(os.Environ(),
			"MINIO_ROOT_USER="+m.AccessKey,
			"MINIO_ROOT_PASSWORD="+m.SecretKey,
			"MINIO_BROWSER=off",
			"MINIO_UPDATE=off",
		)
		p, err := start(cmd, filepath.Join(tb.TempDir(), "minio.log"))
		if err != nil {
			tb.Fatalf("start minio: %v", err)
		}
		if lastErr = waitHTTP(p, "http://"+m.Endpoint+"/minio/health/live", 60*time.Second); lastErr == nil {
			m.proc = p
			tb.Cleanup(func() { p.stop(syscall.SIGTERM, 10*time.Second) })
			return m
		}
		p.stop(syscall.SIGKILL, time.Second)
		lastErr = fmt.Errorf("%w\n%s", lastErr, p.tail())
	}
	tb.Fatalf("start minio: %v", lastErr)
	return nil
}

// Stop stops the server now (for tests of an outage); cleanup does nothing
// more.
func (m *MinIO) Stop() { m.proc.stop(syscall.SIGTERM, 10*time.Second) }

func waitHTTP(p *process, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("server exited: %v", p.err)
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready at %s after %s", url, timeout)
}

// Postgres is a running PostgreSQL server that trusts local connections.
type Postgres struct {
	Host    string // 127.0.0.1
	Port    int
	User    string // the superuser, "plume"
	DataDir string
	BinDir  string
	proc    *process
	cred    *syscall.Credential // non-nil when the server runs as another user
}

// PostgresBinDir returns the directory holding initdb and postgres, or "".
func PostgresBinDir() string {
	if d := os.Getenv("PLUME_PG_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d
		}
		return ""
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if q, err := exec.LookPath("postgres"); err == nil {
			// Debian links them into /usr/local/bin on some hosts; use
			// the real directory so pg_ctl and friends sit beside them.
			if r, err := filepath.EvalSymlinks(q); err == nil {
				q = r
			}
			if r, err := filepath.EvalSymlinks(p); err == nil && filepath.Dir(r) == filepath.Dir(q) {
				return filepath.Dir(r)
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d
		}
	}
	return ""
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// StartPostgres initialises a cluster in a temporary directory and starts
// PostgreSQL on a free loopback port, with fsync off (test data only). It
// stops the server and removes the directory at cleanup.
func StartPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	bin := PostgresBinDir()
	if bin == "" {
		missing(tb, "PostgreSQL binaries (initdb, postgres) not found")
	}
	pg := &Postgres{Host: "127.0.0.1", User: "plume", BinDir: bin}
	parent := ""
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(tb, "running as root, and there is no unprivileged postgres user to run PostgreSQL as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// t.TempDir is private to root; the server needs a directory
		// of its own.
		d, err := os.MkdirTemp("", "plume-pg-*")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.RemoveAll(d) })
		if err := os.Chown(d, uid, gid); err != nil {
			tb.Fatal(err)
		}
		parent = d
	} else {
		parent = tb.TempDir()
	}
	pg.DataDir = filepath.Join(parent, "data")
	logDir := tb.TempDir()

	initdb := pg.command("initdb", "-D", pg.DataDir, "-U", pg.User, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		tb.Fatalf("initdb: %v\n%s", err, out)
	}
	var lastErr error
	for range 3 {
		pg.Port = freePort(tb)
		cmd := pg.command("postgres", "-D", pg.DataDir, "-p", strconv.Itoa(pg.Port), "-h", pg.Host,
			"-k", parent, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
		p, err := start(cmd, filepath.Join(logDir, "postgres.log"))
		if err != nil {
			tb.Fatalf("start postgres: %v", err)
		}
		if lastErr = pg.waitReady(p, 30*time.Second); lastErr == nil {
			pg.proc = p
			// SIGINT is PostgreSQL's fast shutdown.
			tb.Cleanup(func() { p.stop(syscall.SIGINT, 15*time.Second) })
			return pg
		}
		p.stop(syscall.SIGKILL, time.Second)
		lastErr = fmt.Errorf("%w\n%s", lastErr, p.tail())
	}
	tb.Fatalf("start postgres: %v", lastErr)
	return nil
}

// command returns a command for one of the server's programs, run as the
// server's user.
func (pg *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.BinDir, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
		cmd.Dir = "/"
	}
	return cmd
}

func (pg *Postgres) waitReady(p *process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("server exited: %v", p.err)
		}
		ready := pg.command("pg_isready", "-h", pg.Host, "-p", strconv.Itoa(pg.Port), "-U", pg.User, "-d", "postgres")
		if ready.Run() == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready on %s:%d after %s", pg.Host, pg.Port, timeout)
}

// CreateDatabase creates a fresh database and returns its connection
// string (a libpq URL, as pgx takes it).
func (pg *Postgres) CreateDatabase(tb testing.TB, name string) string {
	tb.Helper()
	cmd := pg.command("createdb", "-h", pg.Host, "-p", strconv.Itoa(pg.Port), "-U", pg.User, name)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("createdb %s: %v\n%s", name, err, out)
	}
	return pg.DSN(name)
}

// DSN returns the connection string of database name.
func (pg *Postgres) DSN(name string) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", pg.User, pg.Host, pg.Port, name)
}

// Query runs one SQL statement through psql and returns its unaligned
// output, for tests that check the server without a driver.
func (pg *Postgres) Query(ctx context.Context, database, sql string) (string, error) {
	psql := filepath.Join(pg.BinDir, "psql")
	if _, err := os.Stat(psql); err != nil {
		if p, err := exec.LookPath("psql"); err == nil {
			psql = p
		} else {
			return "", errors.New("query: psql not found")
		}
	}
	cmd := exec.CommandContext(ctx, psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", pg.Host, "-p", strconv.Itoa(pg.Port), "-U", pg.User, "-d", database, "-c", sql)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("query: %w: %s", err, bytes.TrimSpace(out))
	}
	return string(bytes.TrimSpace(out)), nil
}

// Stop stops the server now; cleanup does nothing more.
func (pg *Postgres) Stop() { pg.proc.stop(syscall.SIGINT, 15*time.Second) }
