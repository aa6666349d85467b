// Package auth signs officers in to central: argon2id password hashes,
// sessions held in the store (browser cookies with a CSRF token, or API
// bearer tokens), and a sign-in throttle (throttle.go). Roles and station scoping are
// decided by central.Officer (Can, Sees); this package only finds out who
// is asking.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Cookie and header names.
const (
	CookieName = "plume_session"
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "csrf"
)

// argon2id parameters (RFC 9106's second recommended option, with less
// memory: 19 MiB, 2 passes, as OWASP suggests for servers).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
)

// MinPasswordLen is the shortest password accepted.
const MinPasswordLen = 10

var usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,31}$`)

// ValidateUsername checks a new username.
func ValidateUsername(u string) error {
	if !usernamePattern.MatchString(u) {
		return plume.Errorf(plume.EINVALID, "username must be 2–32 of a–z, 0–9, '.', '_' or '-'")
	}
	return nil
}

// ValidatePassword checks a new password.
func ValidatePassword(p string) error {
	if len([]rune(p)) < MinPasswordLen {
		return plume.Errorf(plume.EINVALID, "password must be at least %d characters", MinPasswordLen)
	}
	if len(p) > 256 {
		return plume.Errorf(plume.EINVALID, "password longer than 256 bytes")
	}
	return nil
}

// HashPassword returns the PHC string of an argon2id hash of password.
func HashPassword(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches the PHC hash.
func CheckPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m > 1<<20 || t > 16 || p == 0 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is checked when the username is unknown, so a log-in takes as
// long for an unknown user as for a wrong password.
var dummyHash, _ = HashPassword("plume dummy password for timing")

// Token returns a new random secret: 32 bytes, base64url.
func Token() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // cannot happen on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashToken returns the store key of a session secret.
func HashToken(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// Config configures a Manager.
type Config struct {
	Store  central.Store
	Logger *slog.Logger
	Now    func() time.Time
	// SessionTTL is how long a browser session lasts (default 12 h, one
	// shift); TokenTTL how long an API token lasts (default 90 days).
	SessionTTL time.Duration
	TokenTTL   time.Duration
	// SecureCookies always sets the cookies' Secure attribute. Without
	// it, a cookie is Secure when the request came over TLS, or from a
	// TrustedProxies address with "X-Forwarded-Proto: https" (a
	// TLS-terminating reverse proxy); the header is ignored from anyone
	// else.
	SecureCookies  bool
	TrustedProxies []netip.Prefix
	// Throttle slows sign-in attempts per username and address together
	// (default: 5 free, then 1 s doubling to 15 min), so a guesser is
	// slowed and the officer, from anywhere else, is not locked out.
	// IPThrottle slows attempts per address whatever the username
	// (default: 30 free, as one office may share an address, then 1 s
	// doubling to 15 min), against guessing across many usernames.
	Throttle   *Throttle
	IPThrottle *Throttle
}

// Manager signs officers in and out and finds who is asking.
type Manager struct {
	cfg    Config
	logger *slog.Logger
}

// New returns a Manager.
func New(cfg Config) *Manager {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 90 * 24 * time.Hour
	}
	if cfg.Throttle == nil {
		cfg.Throttle = NewThrottle(5, time.Second, 15*time.Minute, cfg.Now)
	}
	if cfg.IPThrottle == nil {
		cfg.IPThrottle = NewThrottle(30, time.Second, 15*time.Minute, cfg.Now)
	}
	return &Manager{cfg: cfg, logger: cfg.Logger.With("component", "auth")}
}

// Principal is an authenticated request's officer and session.
type Principal struct {
	Officer *central.Officer
	Session *central.Session
}

// ErrNoSession is returned by Authenticate when the request carries no
// valid session or token.
var ErrNoSession = plume.Errorf(plume.EUNAUTHORIZED, "sign in first")

// ClientIP returns the request's remote IP (central is reached directly or
// through a proxy that sets RemoteAddr; X-Forwarded-For is not trusted).
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Login checks a username and password and, on success, creates a fresh
// browser session (never reusing an identifier the client sent: no session
// fixation). It returns the cookie secret. Failures and successes are
// audited. Attempts are throttled per username and address together, and
// per address (Config.Throttle): one held back is refused with
// EUNAVAILABLE, saying how long to wait; nobody can lock an officer out
// from elsewhere.
func (m *Manager) Login(ctx context.Context, username, password, ip string) (*Principal, string, error) {
	now := m.cfg.Now()
	username = strings.ToLower(strings.TrimSpace(username))
	userKey := username + "\x00" + ip
	wait := m.cfg.IPThrottle.Begin(ip)
	if wait == 0 {
		if wait = m.cfg.Throttle.Begin(userKey); wait > 0 {
			m.cfg.IPThrottle.Undo(ip)
		}
	}
	if wait > 0 {
		m.audit(ctx, central.AuditEvent{Time: now, Actor: username, IP: ip, Action: "login.throttled"})
		return nil, "", plume.Errorf(plume.EUNAVAILABLE, "too many failed sign-ins; wait %s and try again", wait.Round(time.Second)+time.Second)
	}
	o, err := m.cfg.Store.Officer(ctx, username)
	if err != nil && !errors.Is(err, central.ErrNotFound) {
		return nil, "", err
	}
	hash := dummyHash
	if o != nil {
		hash = o.PasswordHash
	}
	ok := CheckPassword(hash, password)
	if o == nil || !ok || o.Disabled {
		m.audit(ctx, central.AuditEvent{Time: now, Actor: username, IP: ip, Action: "login.fail"})
		return nil, "", plume.Errorf(plume.EUNAUTHORIZED, "wrong username or password")
	}
	m.cfg.Throttle.Succeeded(userKey)
	m.cfg.IPThrottle.Undo(ip)
	tok := Token()
	s := &central.Session{Hash: HashToken(tok), Kind: central.SessionBrowser, Officer: o.Username, CSRF: Token(),
		CreatedAt: now.UTC(), ExpiresAt: now.Add(m.cfg.SessionTTL).UTC(), IP: ip}
	if err := m.cfg.Store.PutSession(ctx, s); err != nil {
		return nil, "", err
	}
	m.audit(ctx, central.AuditEvent{Time: now, Actor: o.Username, Role: o.Role, IP: ip, Action: "login.ok"})
	return &Principal{Officer: o, Session: s}, tok, nil
}

// ErrTokenForOther is returned by IssueToken for a token that would let
// its issuer act as another officer.
var ErrTokenForOther = plume.Errorf(plume.EFORBIDDEN, "API tokens are issued only to yourself, or to a service account (e.g. an auditor) that cannot decide cases, within your stations")

// IssueToken creates an API bearer token for an officer and returns it;
// it is shown once. An officer gets tokens for itself; an administrator
// also for service accounts: officers that cannot decide cases
// (central.Officer.Decides) and whose stations it covers. So no one can
// act as another reviewer, and every action made with a token is audited
// with its ID (Session.TokenID).
func (m *Manager) IssueToken(ctx context.Context, o *central.Officer, label, ip string, by *central.Officer) (string, error) {
	if by == nil || o.Username != by.Username && (o.Decides() || !by.Can(central.PermAdmin) || !by.Covers(o)) {
		return "", ErrTokenForOther
	}
	now := m.cfg.Now()
	tok := "plm_" + Token()
	s := &central.Session{Hash: HashToken(tok), Kind: central.SessionToken, Officer: o.Username, Label: label,
		CreatedAt: now.UTC(), ExpiresAt: now.Add(m.cfg.TokenTTL).UTC(), IP: ip}
	if err := m.cfg.Store.PutSession(ctx, s); err != nil {
		return "", err
	}
	m.audit(ctx, central.AuditEvent{Time: now, Actor: by.Username, Role: by.Role, IP: ip, Action: "token.issue", Target: o.Username, Detail: label, Token: s.TokenID()})
	return tok, nil
}

// Logout ends the request's session.
func (m *Manager) Logout(ctx context.Context, p *Principal, ip string) error {
	m.audit(ctx, central.AuditEvent{Time: m.cfg.Now(), Actor: p.Officer.Username, Role: p.Officer.Role, IP: ip, Action: "logout"})
	return m.cfg.Store.DeleteSession(ctx, p.Session.Hash)
}

// Authenticate finds the request's officer from its session cookie or its
// "Authorization: Bearer" token. It returns ErrNoSession when there is
// neither or it is not valid (expired, unknown, officer disabled).
func (m *Manager) Authenticate(r *http.Request) (*Principal, error) {
	var secret string
	kind := central.SessionBrowser
	if h := r.Header.Get("Authorization"); h != "" {
		t, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return nil, ErrNoSession
		}
		secret, kind = strings.TrimSpace(t), central.SessionToken
	} else if c, err := r.Cookie(CookieName); err == nil {
		secret = c.Value
	}
	if secret == "" || len(secret) > 128 {
		return nil, ErrNoSession
	}
	s, err := m.cfg.Store.Session(r.Context(), HashToken(secret))
	if errors.Is(err, central.ErrNotFound) {
		return nil, ErrNoSession
	} else if err != nil {
		return nil, err
	}
	if s.Kind != kind || !m.cfg.Now().Before(s.ExpiresAt) {
		return nil, ErrNoSession
	}
	o, err := m.cfg.Store.Officer(r.Context(), s.Officer)
	if errors.Is(err, central.ErrNotFound) || (err == nil && !o.Admits(s)) {
		return nil, ErrNoSession
	} else if err != nil {
		return nil, err
	}
	return &Principal{Officer: o, Session: s}, nil
}

// CheckCSRF checks a state-changing request of a browser session: the
// token (form field or X-CSRF-Token header) must equal the session's, and
// an Origin header, when sent, must be this host. Bearer-token requests
// carry no ambient credentials and need no CSRF token.
func CheckCSRF(r *http.Request, p *Principal) error {
	if p.Session.Kind == central.SessionToken {
		return nil
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		if !sameOrigin(o, r.Host) {
			return plume.Errorf(plume.EFORBIDDEN, "cross-origin request refused")
		}
	}
	tok := r.Header.Get(CSRFHeader)
	if tok == "" {
		tok = r.PostFormValue(CSRFField)
	}
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(p.Session.CSRF)) != 1 {
		return plume.Errorf(plume.EFORBIDDEN, "missing or wrong CSRF token; reload the page and try again")
	}
	return nil
}

func sameOrigin(origin, host string) bool {
	_, rest, ok := strings.Cut(origin, "://")
	return ok && rest == host
}

// SetCookie sets the session cookie: HttpOnly, SameSite=Strict, Secure
// when r came over TLS (Config.SecureCookies), for the whole site.
func (m *Manager) SetCookie(w http.ResponseWriter, r *http.Request, tok string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: tok, Path: "/", Expires: expires, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: m.Secure(r)})
}

// ClearCookie removes the session cookie.
func (m *Manager) ClearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: m.Secure(r)})
}

// Secure reports whether r reached central over TLS: directly, or through
// a trusted proxy that says so (Config.TrustedProxies), or always with
// Config.SecureCookies.
func (m *Manager) Secure(r *http.Request) bool {
	if m.cfg.SecureCookies || r.TLS != nil {
		return true
	}
	if !strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https") {
		return false
	}
	ip, err := netip.ParseAddr(ClientIP(r))
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range m.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (m *Manager) audit(ctx context.Context, e central.AuditEvent) {
	if _, err := m.cfg.Store.AppendAudit(ctx, e); err != nil {
		m.logger.Error("audit", "action", e.Action, "err", err)
	}
}

// ErrGrantExceeds is returned by CreateOfficer when the new officer would
// see stations its creator does not.
var ErrGrantExceeds = plume.Errorf(plume.EFORBIDDEN, "you can grant no more than you have: the new officer must be limited to stations you see")

// CreateOfficer validates and stores a new officer with a hashed password
// and audits it. by is the administrator creating it, nil for central
// itself (the first-run command); an administrator limited to some
// stations creates only officers limited to those (central.Officer.Covers).
func CreateOfficer(ctx context.Context, st central.Store, o *central.Officer, password string, by *central.Officer, ip string, now time.Time) error {
	if by != nil && (!by.Can(central.PermAdmin) || !by.Covers(o)) {
		return ErrGrantExceeds
	}
	o.Username = strings.ToLower(strings.TrimSpace(o.Username))
	if err := ValidateUsername(o.Username); err != nil {
		return err
	}
	if !o.Role.Valid() {
		return plume.Errorf(plume.EINVALID, "unknown role %q", o.Role)
	}
	for _, s := range o.Stations {
		if err := s.Validate(); err != nil {
			return err
		}
	}
	if err := ValidatePassword(password); err != nil {
		return err
	}
	h, err := HashPassword(password)
	if err != nil {
		return err
	}
	actor := "plume-central create-admin"
	if by != nil {
		actor = by.Username
		o.CreatedBy = by.Username
	}
	o.PasswordHash, o.CreatedAt = h, now.UTC()
	if err := st.PutOfficer(ctx, o); err != nil {
		if errors.Is(err, central.ErrConflict) {
			return plume.Errorf(plume.ECONFLICT, "username %s is taken", o.Username)
		}
		return err
	}
	after := fmt.Sprintf(`{"username":%q,"role":%q,"stations":%q}`, o.Username, o.Role, o.Stations)
	_, err = st.AppendAudit(ctx, central.AuditEvent{Time: now, Actor: actor, IP: ip, Action: "officer.create", Target: o.Username, After: after})
	return err
}
