package live

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/plume-emissions/plume"
)

// Authorizer decides whether the officer behind r may watch station. It
// returns who the officer is (for logs and the edge's log) or an error
// with code EUNAUTHORIZED (not signed in) or EFORBIDDEN (no rights to that
// station). The officer web app's session and station-scope check is meant
// to implement it.
type Authorizer interface {
	Authorize(r *http.Request, station plume.StationID) (officer string, err error)
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(r *http.Request, station plume.StationID) (string, error)

// Authorize implements Authorizer.
func (f AuthorizerFunc) Authorize(r *http.Request, station plume.StationID) (string, error) {
	return f(r, station)
}

// TokenFile is the name of the admin token file in central's data
// directory, used by TokenAuthorizer until officer sign-in guards live view.
const TokenFile = "live.token"

// TokenCookie carries the token for a browser (the page's WebSocket cannot
// set headers); the operator sets it for central's /live/ path.
const TokenCookie = "plume_live"

// TokenAuthorizer lets in whoever presents Token, as "Authorization: Bearer
// TOKEN" or the plume_live cookie. It grants every station, so it is never
// taken from a URL's query string, which ends up in proxy logs, browser
// history and Referer headers. Officers sign in instead; this is the
// operator's fallback.
type TokenAuthorizer struct{ Token string }

// Authorize implements Authorizer.
func (a TokenAuthorizer) Authorize(r *http.Request, station plume.StationID) (string, error) {
	got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if got == "" {
		if c, err := r.Cookie(TokenCookie); err == nil {
			got = c.Value
		}
	}
	if a.Token == "" || got == "" {
		return "", plume.Errorf(plume.EUNAUTHORIZED, "sign in to watch live view")
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(a.Token)) != 1 {
		return "", plume.Errorf(plume.EFORBIDDEN, "not allowed to watch station %s", station)
	}
	return "admin-token", nil
}

// LoadOrCreateToken returns the token in dir/live.token, creating a random
// one (mode 0600) on first use.
func LoadOrCreateToken(dir string) (string, error) {
	path := filepath.Join(dir, TokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 16 {
			return t, nil
		}
		return "", fmt.Errorf("load live token %s: shorter than 16 characters", path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("load live token: %w", err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("create live token: %w", err)
	}
	t := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("create live token: %w", err)
	}
	return t, nil
}
