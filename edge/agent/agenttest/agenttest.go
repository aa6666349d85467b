// Package agenttest runs real Plume parts for end-to-end tests: a central
// server on loopback with its bbolt store and blob files, an enrolled
// station, and the edge agent with its spool, all in temporary directories.
package agenttest

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/client"
	"github.com/plume-emissions/plume/central/evidence"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/edge/analyser"
	"github.com/plume-emissions/plume/edge/config"
)

// Station is the station ID the helpers enrol.
const Station = plume.StationID("DEMO-0001")

// Logger returns a logger that writes to the test log when -v is given.
func Logger(tb testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.tb.Log(string(p)); return len(p), nil }

// StartCentral starts a real central on addr ("127.0.0.1:0" for any port)
// with its data in dir, and closes it at cleanup.
func StartCentral(tb testing.TB, dir, addr string) *server.Server {
	tb.Helper()
	return StartCentralWith(tb, dir, addr, nil)
}

// StartCentralWith is StartCentral with the configuration adjusted by
// tune (may be nil) before central opens.
func StartCentralWith(tb testing.TB, dir, addr string, tune func(*server.Config)) *server.Server {
	tb.Helper()
	cfg := server.NewConfig()
	cfg.Addr, cfg.DataDir, cfg.Logger = addr, dir, Logger(tb).With("side", "central")
	if tune != nil {
		tune(&cfg)
	}
	var (
		s   *server.Server
		err error
	)
	// A port just released by a stopped central may take a moment to free.
	for i := 0; i < 50; i++ {
		if s, err = server.Open(context.Background(), cfg); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("start central: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	if _, err := SignIn(context.Background(), s); err != nil {
		tb.Fatal(err)
	}
	return s
}

// Reader is the officer account the helpers read central's API as: an
// auditor, who sees every station and may change nothing.
const Reader = "agenttest"

// tokens holds the bearer token SignIn issued for each central, by URL, so
// that Passes, Cases and DownloadPackage send it.
var tokens sync.Map // base URL → token

// SignIn makes sure central c has the Reader officer, issues it an API
// bearer token, and remembers the token for c's URL: every later read
// through this package sends it. StartCentral signs in by itself; call
// SignIn for a central opened some other way. It returns the token.
func SignIn(ctx context.Context, c *server.Server) (string, error) {
	err := c.CreateOfficer(ctx, &central.Officer{Username: Reader, Name: "Test harness (read only)", Role: central.RoleAuditor}, "pw-"+rand.Text())
	if err != nil && plume.ErrorCode(err) != plume.ECONFLICT {
		return "", fmt.Errorf("sign in at %s: %w", c.URL(), err)
	}
	tok, err := c.IssueToken(ctx, Reader, "agenttest reads")
	if err != nil {
		return "", fmt.Errorf("sign in at %s: %w", c.URL(), err)
	}
	tokens.Store(c.URL(), tok)
	return tok, nil
}

// Enroll enrols Station at c and writes the enrollment file into dataDir,
// where the station file expects it.
func Enroll(tb testing.TB, c *server.Server, dataDir string) *plume.Enrollment {
	tb.Helper()
	e, err := c.Enroll(context.Background(), Station, "test station", nil)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := server.EncodeEnrollment(e)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "enrollment.json"), b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return e
}

// StationConfig loads the embedded demo station with its data in dataDir.
func StationConfig(tb testing.TB, dataDir string) *config.Loaded {
	tb.Helper()
	st, err := config.LoadEmbedded(config.Embedded)
	if err != nil {
		tb.Fatal(err)
	}
	st.DataDir = dataDir
	return st
}

// DeviceProfile returns the demo station's analyser device profile, which
// the simulator uses to encode what it sends.
func DeviceProfile(tb testing.TB) *analyser.Profile {
	tb.Helper()
	st := StationConfig(tb, tb.TempDir())
	p, err := analyser.DecodeProfile(st.DeviceProfile)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// clientFor returns a read client for the central at baseURL with the
// token SignIn issued for it.
func clientFor(baseURL string) (*client.Client, error) {
	tok, ok := tokens.Load(strings.TrimRight(baseURL, "/"))
	if !ok {
		return nil, fmt.Errorf("not signed in at %s (call agenttest.SignIn)", baseURL)
	}
	return client.New(baseURL, tok.(string), nil), nil
}

// Passes lists every pass central holds, through its JSON API.
func Passes(ctx context.Context, baseURL string) ([]central.PassRow, error) {
	c, err := clientFor(baseURL)
	if err != nil {
		return nil, err
	}
	return c.Passes(ctx)
}

// Cases lists every case central holds, through its JSON API.
func Cases(ctx context.Context, baseURL string) ([]central.Case, error) {
	c, err := clientFor(baseURL)
	if err != nil {
		return nil, err
	}
	return c.Cases(ctx)
}

// Get reads u, a URL of a central SignIn signed in at, with the token, and
// returns the body of a 200 answer.
func Get(ctx context.Context, u string) ([]byte, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	c, err := clientFor(pu.Scheme + "://" + pu.Host)
	if err != nil {
		return nil, err
	}
	return c.Get(ctx, u)
}

// DownloadPackage fetches a case's evidence package into dir and verifies it
// offline against central's pinned public key. It returns the file's path.
func DownloadPackage(ctx context.Context, baseURL string, k central.Case, dir string, centralKey []byte) (string, *evidence.Report, error) {
	c, err := clientFor(baseURL)
	if err != nil {
		return "", nil, err
	}
	return c.DownloadPackage(ctx, k, dir, centralKey)
}

// WaitFor polls cond every 50 ms until it is true or timeout passes.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("timed out after %s waiting for %s (last state: %s)", timeout, what, last)
}
