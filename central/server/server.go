// Package server wires central together: the bbolt store and filesystem
// blob store in the data directory, central's signing key, the HTTP API and
// the package builders. One Server is one central process.
//
// The data directory holds:
//
//	central.db    metadata (bbolt; one process at a time)
//	central.key   central's Ed25519 private key seed, base64, mode 0600
//	blobs/        media and evidence packages, content-addressed
//	tmp/          packages being assembled
//
// For scale-out, Config.Store and Config.Blobs replace central.db and
// blobs/ with stores shared by several replicas (central/sqlstore on
// PostgreSQL, central/objectstore on MinIO), and Config.Key gives every
// replica the same signing key; the data directory then holds only tmp/.
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/auth"
	"github.com/plume-emissions/plume/central/blob"
	"github.com/plume-emissions/plume/central/export"
	liveview "github.com/plume-emissions/plume/central/live"
	"github.com/plume-emissions/plume/central/metrics"
	"github.com/plume-emissions/plume/central/ops"
	"github.com/plume-emissions/plume/central/packer"
	"github.com/plume-emissions/plume/central/review"
	"github.com/plume-emissions/plume/central/store"
)

// KeyFile is the name of central's key file in the data directory.
const KeyFile = "central.key"

// Config configures a Server.
type Config struct {
	Addr    string // listen address; "127.0.0.1:0" picks a free port
	DataDir string
	// AllowedSkew is how far a station's Plume-Date may be from central's
	// clock (default plume.DefaultMaxClockSkew).
	AllowedSkew time.Duration
	// Organization is the Source-Organization of evidence packages.
	Organization string
	// MinSmokeGrade: camera smoke at or above this Ringelmann grade opens a
	// case on its own; 0 (the default for now) means only an analyser
	// exceedance does.
	MinSmokeGrade int
	// PackageWorkers is the number of concurrent package builds (default
	// 2). Negative disables building: cases queue their builds durably
	// for a later run.
	PackageWorkers int
	// ShutdownTimeout bounds how long Close waits for requests in flight
	// (default 30 s).
	ShutdownTimeout time.Duration
	// TLSCert and TLSKey, both set, make central serve HTTPS with that
	// certificate and key (PEM files), TLS 1.2 or later. Without them
	// central serves plain HTTP, for a TLS-terminating reverse proxy in
	// front (name it in TrustedProxies).
	TLSCert, TLSKey string
	// BodyTimeout bounds how long reading one request body may take
	// (default 30 s), so a body trickled a byte at a time cannot hold a
	// connection; station uploads (PUT /api/v1/stations/…) get
	// UploadTimeout (default 10 min: a clip over a weak 4G link).
	BodyTimeout   time.Duration
	UploadTimeout time.Duration

	// SecondReview makes every approval wait for a supervisor.
	SecondReview bool
	// SheetFont is the TrueType font (.ttf, or .ttc whose first font is
	// TrueType) with CJK glyphs for the PDF evidence sheet; default
	// evidence.DefaultSheetFont; "none" builds packages without the PDF.
	SheetFont string
	// SecureCookies always marks session cookies Secure. Without it they
	// are Secure on requests that came over TLS, or from a TrustedProxies
	// address that sends "X-Forwarded-Proto: https".
	SecureCookies  bool
	TrustedProxies []netip.Prefix
	// PoliceURL is the police system's push base URL; with it, approved
	// cases are pushed over HTTP (POLICE-CONTRACT.md §1). Without it they
	// are dropped as files in DropDir (default <data>/police-drop).
	PoliceURL string
	DropDir   string
	// PoliceSecret is the shared secret of the police exchange (push
	// signatures and the disposition callback).
	PoliceSecret []byte
	// PublicURL is the URL the police reach central at, for the callback
	// (default the listen URL).
	PublicURL string
	// ExportPoll is how often an idle export worker looks for due retries
	// (default 1 s).
	ExportPoll time.Duration
	// JobLease is how long a replica holds a claimed package build or
	// export before another may take it over (default: the packer's 10
	// min and the exporter's 5 min). Shorter leases recover sooner from a
	// replica that died; a lease must outlast the slowest build or push.
	JobLease time.Duration
	// Live configures live view (central/live): STUN URLs, the built-in
	// TURN relay and relay-only mode. Officers are authorised by
	// Live.Authorizer, or else by the admin token in DataDir/live.token.
	Live LiveConfig
	// Ops configures station operations: heartbeats, integrity rules and
	// alert delivery (ops.go).
	Ops OpsConfig
	// Store and Blobs, when set, are used instead of the embedded bbolt
	// store and filesystem blob store in DataDir (scale-out: a
	// sqlstore.Store and an objectstore.Store shared by every replica).
	// The Server closes Store when it closes.
	Store central.Store
	Blobs central.BlobStore
	// Key, when set, is central's signing key instead of
	// DataDir/central.key; replicas must share one key.
	Key    ed25519.PrivateKey
	Logger *slog.Logger
	Now    func() time.Time
}

// NewConfig returns the defaults.
func NewConfig() Config {
	return Config{
		Addr:            "127.0.0.1:8080",
		DataDir:         "./central-data",
		AllowedSkew:     plume.DefaultMaxClockSkew,
		Organization:    "Plume central",
		PackageWorkers:  2,
		ShutdownTimeout: 30 * time.Second,
	}
}

func (c *Config) fill() {
	def := NewConfig()
	if c.Addr == "" {
		c.Addr = def.Addr
	}
	if c.DataDir == "" {
		c.DataDir = def.DataDir
	}
	if c.AllowedSkew <= 0 {
		c.AllowedSkew = def.AllowedSkew
	}
	if c.Organization == "" {
		c.Organization = def.Organization
	}
	if c.PackageWorkers == 0 {
		c.PackageWorkers = def.PackageWorkers
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = def.ShutdownTimeout
	}
	if c.BodyTimeout <= 0 {
		c.BodyTimeout = 30 * time.Second
	}
	if c.UploadTimeout <= 0 {
		c.UploadTimeout = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Server is a running central.
type Server struct {
	cfg     Config
	scheme  string // "http", or "https" with Config.TLSCert
	logger  *slog.Logger
	store   central.Store
	blobs   central.BlobStore
	key     ed25519.PrivateKey
	metrics *metrics.Metrics
	packer  *packer.Packer
	exports *export.Worker
	auth    *auth.Manager
	review  *review.Service
	ln      net.Listener
	http    *http.Server
	live    *liveview.Hub
	turn    *liveview.TURN
	ops     *ops.Service

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open opens the data directory (creating it and central's key on first
// use), starts listening on cfg.Addr, and starts serving and building
// packages. Package builds left pending by an earlier run resume. ctx is
// used only while opening; Close stops the server.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	cfg.fill()
	s := &Server{cfg: cfg, scheme: "http", logger: cfg.Logger.With("component", "server"), metrics: metrics.New()}
	if err := s.openData(); err != nil {
		return nil, err
	}
	tlsConfig, err := loadTLS(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		s.store.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		s.store.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
		s.scheme = "https"
	}
	s.ln = ln

	handler, webHandler, err := s.openCasework(ctx, ln)
	if err != nil {
		ln.Close()
		if s.ops != nil {
			s.ops.Close()
		}
		s.store.Close()
		return nil, err
	}
	mux, err := s.openLive(handler)
	if err != nil {
		ln.Close()
		s.store.Close()
		return nil, err
	}
	s.http = &http.Server{
		Handler:           withBodyDeadline(withWeb(webHandler, mux), cfg.BodyTimeout, cfg.UploadTimeout),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.With("component", "http").Handler(), slog.LevelWarn),
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Go(func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("http server stopped", "err", err)
		}
	})
	if cfg.PackageWorkers > 0 {
		s.wg.Go(func() { s.packer.Run(runCtx) })
		s.wg.Go(func() { s.exports.Run(runCtx) })
	}
	s.logger.Info("central started", "addr", ln.Addr().String(), "data", cfg.DataDir, "central_key", plume.EncodeKey(s.PublicKey()))
	return s, nil
}

func (s *Server) openData() error {
	dir := s.cfg.DataDir
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o750); err != nil {
		return fmt.Errorf("open data dir: %w", err)
	}
	s.store, s.blobs, s.key = s.cfg.Store, s.cfg.Blobs, s.cfg.Key
	if s.store == nil {
		st, err := store.Open(filepath.Join(dir, store.FileName), store.Options{})
		if err != nil {
			return err
		}
		s.store = st
	}
	var err error
	if s.blobs == nil {
		if s.blobs, err = blob.Open(filepath.Join(dir, "blobs")); err != nil {
			s.store.Close()
			return err
		}
	}
	if s.key == nil {
		if s.key, err = LoadOrCreateKey(dir); err != nil {
			s.store.Close()
			return err
		}
	}
	// Packages being assembled when the last run stopped are incomplete;
	// their jobs are still queued and rebuild them.
	tmp, _ := filepath.Glob(filepath.Join(dir, "tmp", "package-*.zip"))
	for _, f := range tmp {
		os.Remove(f)
	}
	return nil
}

// LoadOrCreateKey loads central's signing key from dir/central.key,
// creating it (mode 0600) if there is none. A key file that others may
// read is refused: whoever reads it can sign packages as central.
func LoadOrCreateKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load central key: %s is readable by others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("create central key: %w", err)
		}
		if err := writeFileSync(path, []byte(base64.StdEncoding.EncodeToString(key.Seed())+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("create central key: %w", err)
		}
		return key, nil
	} else if err != nil {
		return nil, fmt.Errorf("load central key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("load central key %s: not base64 of a %d-byte Ed25519 seed", path, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func writeFileSync(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// URL returns the base URL central serves on, e.g. http://127.0.0.1:8080
// (https with Config.TLSCert).
func (s *Server) URL() string { return s.scheme + "://" + s.ln.Addr().String() }

// loadTLS returns the TLS configuration of cert and key, nil when neither
// is set.
func loadTLS(cert, key string) (*tls.Config, error) {
	if cert == "" && key == "" {
		return nil, nil
	}
	if cert == "" || key == "" {
		return nil, errors.New("tls: give both the certificate and the key")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}, nil
}

// PublicKey returns central's Ed25519 public key.
func (s *Server) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Enroll enrolls a station while central runs and returns its enrollment
// file content (with URL as central_url). With pub nil a key pair is
// generated and the private key is in the enrollment; otherwise the edge
// keeps its own key.
func (s *Server) Enroll(ctx context.Context, station plume.StationID, name string, pub ed25519.PublicKey, opts ...EnrollOption) (*plume.Enrollment, error) {
	return enroll(ctx, s.store, s.key, s.URL(), station, name, pub, s.cfg.Now(), opts...)
}

// EnrollOption sets more about a station at enrollment.
type EnrollOption func(*central.Station)

// AtLocation places the station at enrollment (WGS 84 degrees), so the
// cloned-plate speed check can use it from its first pass.
func AtLocation(lat, lon float64) EnrollOption {
	return func(st *central.Station) { st.Latitude, st.Longitude = lat, lon }
}

// EnrollDataDir enrolls a station in a stopped central's data directory
// (plume-central enroll). If a running central holds the database it fails
// within a second with an error wrapping store.ErrLocked.
func EnrollDataDir(ctx context.Context, dataDir, centralURL string, station plume.StationID, name string, pub ed25519.PublicKey, now time.Time, opts ...EnrollOption) (*plume.Enrollment, error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	st, err := store.Open(filepath.Join(dataDir, store.FileName), store.Options{LockTimeout: 500 * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	defer st.Close()
	key, err := LoadOrCreateKey(dataDir)
	if err != nil {
		return nil, err
	}
	return enroll(ctx, st, key, centralURL, station, name, pub, now, opts...)
}

// EnrollStore enrolls a station in st, signing with key (plume-central
// enroll against a shared PostgreSQL store, while replicas run).
func EnrollStore(ctx context.Context, st central.Store, key ed25519.PrivateKey, centralURL string, station plume.StationID, name string, pub ed25519.PublicKey, now time.Time, opts ...EnrollOption) (*plume.Enrollment, error) {
	return enroll(ctx, st, key, centralURL, station, name, pub, now, opts...)
}

func enroll(ctx context.Context, st central.Store, key ed25519.PrivateKey, centralURL string, station plume.StationID, name string, pub ed25519.PublicKey, now time.Time, opts ...EnrollOption) (*plume.Enrollment, error) {
	if err := station.Validate(); err != nil {
		return nil, err
	}
	rec := &central.Station{ID: station, Name: name, EnrolledAt: now.UTC()}
	for _, o := range opts {
		o(rec)
	}
	if rec.Located() {
		if err := central.ValidateLocation(rec.Latitude, rec.Longitude); err != nil {
			return nil, err
		}
	}
	e := &plume.Enrollment{Station: station, Name: name, CentralURL: centralURL, CentralKey: plume.EncodeKey(key.Public().(ed25519.PublicKey))}
	if pub == nil {
		p, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("enroll: %w", err)
		}
		pub, e.StationKey = p, plume.EncodeKey(plume.SeedOf(k))
	} else if len(pub) != ed25519.PublicKeySize {
		return nil, plume.Errorf(plume.EINVALID, "station public key must be %d bytes", ed25519.PublicKeySize)
	}
	// The enrollment must be loadable by the edge before it is recorded.
	buf, err := EncodeEnrollment(e)
	if err != nil {
		return nil, err
	}
	if _, err := plume.DecodeEnrollment(buf); err != nil {
		return nil, err
	}
	rec.PublicKey = pub
	if err := st.PutStation(ctx, rec); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	return e, nil
}

// Stats counts what central holds.
func (s *Server) Stats(ctx context.Context) (central.Stats, error) { return s.store.Stats(ctx) }

// withBodyDeadline bounds the time to read each request's body: upload
// for station uploads, body for everything else. A server-wide
// ReadTimeout would do it too, but it would also cut the long station
// uploads and the live-view WebSockets, which are GETs that read for
// hours after the upgrade: GET and HEAD requests carry no body and keep
// only the header timeout.
func withBodyDeadline(next http.Handler, body, upload time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			d := body
			if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/api/v1/stations/") {
				d = upload
			}
			// An error means the connection cannot take a deadline
			// (e.g. HTTP/2 through a test recorder); it is served anyway.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		next.ServeHTTP(w, r)
	})
}

// WaitIdle waits until no package build or export is pending, or ctx ends.
// A job its worker gave up on (central.Job.Failed) waits for an
// administrator, not for time, so it does not count.
func (s *Server) WaitIdle(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		jobs, err := s.store.Jobs(ctx)
		if err != nil {
			return err
		}
		pending := 0
		for _, j := range jobs {
			if !j.Failed() {
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for package builds (%d pending): %w", pending, ctx.Err())
		case <-t.C:
		}
	}
}

// Close stops intake (no new connections; requests in flight finish within
// ShutdownTimeout), lets a package build in progress finish, and closes the
// store.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		var errs []error
		s.closeLive()
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown http: %w", err))
			s.http.Close()
		}
		s.cancel()
		s.wg.Wait()
		if s.ops != nil {
			s.ops.Close()
		}
		if err := s.store.Close(); err != nil {
			errs = append(errs, err)
		}
		s.closeErr = errors.Join(errs...)
		s.logger.Info("central stopped")
	})
	return s.closeErr
}

// EncodeEnrollment returns the enrollment file bytes: indented JSON with a
// final newline.
func EncodeEnrollment(e *plume.Enrollment) ([]byte, error) {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode enrollment: %w", err)
	}
	return append(b, '\n'), nil
}
