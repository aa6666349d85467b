// Package agenttest runs real Plume parts for end-to-end tests: a central
// server on loopback with its bbolt store and blob files, an enrolled
// station, and the edge agent with its spool, all in temporary directories.
package agenttest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
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

// Passes lists every pass central holds, through its JSON API.
func Passes(ctx context.Context, baseURL string) ([]central.PassRow, error) {
	var all []central.PassRow
	err := pages(ctx, baseURL+"/api/v1/passes", func(b []byte) (string, error) {
		var page struct {
			Passes []central.PassRow `json:"passes"`
			Next   string            `json:"next_cursor"`
		}
		err := json.Unmarshal(b, &page)
		all = append(all, page.Passes...)
		return page.Next, err
	})
	return all, err
}

// Cases lists every case central holds, through its JSON API.
func Cases(ctx context.Context, baseURL string) ([]central.Case, error) {
	var all []central.Case
	err := pages(ctx, baseURL+"/api/v1/cases", func(b []byte) (string, error) {
		var page struct {
			Cases []central.Case `json:"cases"`
			Next  string         `json:"next_cursor"`
		}
		err := json.Unmarshal(b, &page)
		all = append(all, page.Cases...)
		return page.Next, err
	})
	return all, err
}

func pages(ctx context.Context, u string, each func([]byte) (string, error)) error {
	cursor := ""
	for {
		q := url.Values{"limit": {"500"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		b, err := get(ctx, u+"?"+q.Encode())
		if err != nil {
			return err
		}
		if cursor, err = each(b); err != nil {
			return fmt.Errorf("decode %s: %w", u, err)
		}
		if cursor == "" {
			return nil
		}
	}
}

// Get reads u, a URL of a central SignIn signed in at, with the token, and
// returns the body of a 200 answer.
func Get(ctx context.Context, u string) ([]byte, error) { return get(ctx, u) }

// get reads u signed in: with the token SignIn issued for the central
// whose URL prefixes u.
func get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	tok, ok := tokens.Load(req.URL.Scheme + "://" + req.URL.Host)
	if !ok {
		return nil, fmt.Errorf("GET %s: not signed in at %s (call agenttest.SignIn)", u, req.URL.Host)
	}
	req.Header.Set("Authorization", "Bearer "+tok.(string))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return b, nil
}

// DownloadPackage fetches a case's evidence package into dir and verifies it
// offline against central's pinned public key. It returns the file's path.
func DownloadPackage(ctx context.Context, baseURL string, c central.Case, dir string, centralKey []byte) (string, *evidence.Report, error) {
	b, err := get(ctx, baseURL+"/api/v1/cases/"+url.PathEscape(string(c.ID))+"/package")
	if err != nil {
		return "", nil, err
	}
	p := filepath.Join(dir, c.Number+".zip")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return "", nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	rep, err := evidence.Verify(f, int64(len(b)), evidence.VerifyOptions{CentralKey: centralKey})
	if err != nil {
		return p, rep, fmt.Errorf("verify %s: %w", p, err)
	}
	return p, rep, nil
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
