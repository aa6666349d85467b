package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/api"
	"github.com/plume-emissions/plume/central/auth"
	"github.com/plume-emissions/plume/central/evidence"
	"github.com/plume-emissions/plume/central/export"
	"github.com/plume-emissions/plume/central/ingest"
	"github.com/plume-emissions/plume/central/packer"
	"github.com/plume-emissions/plume/central/profile"
	"github.com/plume-emissions/plume/central/review"
	"github.com/plume-emissions/plume/central/store"
	"github.com/plume-emissions/plume/central/web"
)

// openCasework builds the case side of central: the package builder (with
// the PDF sheet font), the exporter and its queue, officer sign-in, the
// review service, ingest with the repeat-exceedance rule, and the API and
// web handlers.
func (s *Server) openCasework(ctx context.Context, ln net.Listener) (*api.Handler, http.Handler, error) {
	cfg := s.cfg
	var font []byte
	if cfg.SheetFont != "none" {
		path := cfg.SheetFont
		if path == "" {
			path = evidence.DefaultSheetFont
		}
		// A missing font does not stop central: packages are then built
		// without the PDF sheet, and this says why.
		var err error
		if font, err = evidence.LoadSheetFont(path); err != nil {
			s.logger.Error("evidence sheet PDF disabled", "err", err)
		}
	}
	profiles, err := profile.Embedded()
	if err != nil {
		return nil, nil, err
	}
	s.packer = packer.New(packer.Config{
		Store: s.store, Blobs: s.blobs, Key: s.key, TempDir: filepath.Join(cfg.DataDir, "tmp"),
		Organization: cfg.Organization, Logger: cfg.Logger, Now: cfg.Now, Metrics: s.metrics,
		Workers: max(cfg.PackageWorkers, 1), SheetFont: font, Lease: cfg.JobLease,
	})
	var exporter export.Exporter
	if cfg.PoliceURL != "" {
		exporter, err = export.NewHTTPPush(export.PushConfig{BaseURL: cfg.PoliceURL, Secret: cfg.PoliceSecret, Logger: cfg.Logger, Now: cfg.Now})
	} else {
		dir := cfg.DropDir
		if dir == "" {
			dir = filepath.Join(cfg.DataDir, "police-drop")
		}
		exporter, err = export.NewDrop(dir, cfg.Now)
	}
	if err != nil {
		return nil, nil, err
	}
	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = s.scheme + "://" + ln.Addr().String()
	}
	if err := s.openOps(ctx, profiles, publicURL); err != nil {
		return nil, nil, err
	}
	opsFlags, opsRecords, enforceable := s.opsHooks()
	s.exports = export.NewWorker(export.Config{
		Store: s.store, Blobs: s.blobs, Exporter: exporter, CallbackURL: strings.TrimRight(publicURL, "/") + "/api/v1/police/dispositions",
		Logger: cfg.Logger, Now: cfg.Now, Poll: cfg.ExportPoll, Lease: cfg.JobLease, Enforceable: enforceable,
	})
	s.auth = auth.New(auth.Config{Store: s.store, Logger: cfg.Logger, Now: cfg.Now, SecureCookies: cfg.SecureCookies, TrustedProxies: cfg.TrustedProxies})
	s.review = review.New(review.Config{Store: s.store, SecondReview: cfg.SecondReview, Exporter: exporter.Name(), Logger: cfg.Logger, Now: cfg.Now,
		OnJobs: func() { s.packer.Wake(); s.exports.Wake() }, Enforceable: enforceable, Profiles: profiles})
	svc := ingest.New(ingest.Config{
		Store: s.store, Blobs: s.blobs, Logger: cfg.Logger, Now: cfg.Now, Metrics: s.metrics,
		MinSmokeGrade: cfg.MinSmokeGrade, OnCase: func(plume.CaseID) { s.packer.Wake() }, Profiles: profiles,
		Flags: opsFlags, OnRecords: opsRecords,
	})
	// Every read needs an officer's session or bearer token, on loopback
	// and before the first officer exists too (IssueToken for tools).
	handler := api.New(api.Config{
		Store: s.store, Blobs: s.blobs, Ingest: svc, Metrics: s.metrics,
		Logger: cfg.Logger, Now: cfg.Now, AllowedSkew: cfg.AllowedSkew,
		Auth: s.auth, Review: s.review, PoliceSecret: cfg.PoliceSecret, Ops: s.ops,
	})
	wh, err := web.New(web.Config{Store: s.store, Blobs: s.blobs, Auth: s.auth, Review: s.review, Profiles: profiles, Logger: cfg.Logger, Now: cfg.Now, Ops: s.ops, OnJobs: s.packer.Wake})
	if err != nil {
		return nil, nil, err
	}
	return handler, wh, nil
}

// webPaths are the officers' pages; everything else (the API, health,
// metrics, live view) goes to the API side.
var webPaths = []string{"GET /{$}", "/login", "/logout", "/queue", "/queue/", "/cases/", "/vehicles", "/dashboard", "/dashboard.csv", "/audit", "/audit.csv", "/admin/", "/static/", "/stations", "/stations/", "/alerts", "/alerts/", "/backtest"}

// withWeb routes the officers' pages to web and everything else to next.
func withWeb(web, next http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, p := range webPaths {
		mux.Handle(p, web)
	}
	mux.Handle("/", next)
	return mux
}

// CreateOfficer adds an officer while central runs (created by the
// system, e.g. the demo's first administrator).
func (s *Server) CreateOfficer(ctx context.Context, o *central.Officer, password string) error {
	return auth.CreateOfficer(ctx, s.store, o, password, nil, "", s.cfg.Now())
}

// IssueToken issues an API bearer token to the existing officer username,
// as that officer (for the demo and test harnesses, which read central's
// API signed in like any other client). The issue is audited.
func (s *Server) IssueToken(ctx context.Context, username, label string) (string, error) {
	o, err := s.store.Officer(ctx, username)
	if err != nil {
		return "", fmt.Errorf("issue token for %s: %w", username, err)
	}
	tok, err := s.auth.IssueToken(ctx, o, label, "", o)
	if err != nil {
		return "", fmt.Errorf("issue token for %s: %w", username, err)
	}
	return tok, nil
}

// Store returns central's store (for tests and the demo).
func (s *Server) Store() central.Store { return s.store }

// Blobs returns central's blob store (for tests).
func (s *Server) Blobs() central.BlobStore { return s.blobs }

// CreateAdminDataDir creates an administrator in a stopped central's data
// directory (plume-central create-admin). If a running central holds the
// database it fails within a second with an error wrapping store.ErrLocked.
func CreateAdminDataDir(ctx context.Context, dataDir, username, name, password string, now time.Time) error {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return fmt.Errorf("create admin: %w", err)
	}
	st, err := store.Open(filepath.Join(dataDir, store.FileName), store.Options{LockTimeout: 500 * time.Millisecond})
	if err != nil {
		return fmt.Errorf("create admin: %w", err)
	}
	defer st.Close()
	return auth.CreateOfficer(ctx, st, &central.Officer{Username: username, Name: name, Role: central.RoleAdmin}, password, nil, "", now)
}
