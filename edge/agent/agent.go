// Package agent is the roadside edge agent. It wires the analyser link,
// capture (verdicts and signed evidence), the spool and the uplink into one
// service that runs unattended for months:
//
//	analyser ──► Capture ──► spool ──► uplink ──► central
//
// The analyser is acknowledged only after Capture has stored a record in the
// spool, so a crash or power cut at any moment loses nothing: the analyser
// resends, and deterministic pass IDs make the resend harmless.
//
// Shutdown drains: stop intake → flush the spool to central (with a
// deadline) → close the spool.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/analyser"
	"github.com/plume-emissions/plume/edge/config"
	"github.com/plume-emissions/plume/edge/spool"
	"github.com/plume-emissions/plume/edge/uplink"
)

// Version is the agent's software version, written into every manifest.
var Version = "plume-edge/0.1.0"

// quarantineFloor is the free space, beyond the spool's own MinFreeBytes,
// below which rejected analyser input is counted and dropped instead of
// written.
const quarantineFloor = 4 << 20

// Config is what the agent needs to run.
type Config struct {
	Station    *config.Loaded
	Enrollment *plume.Enrollment
	Logger     *slog.Logger
	Now        func() time.Time

	// AnalyserAddr overrides the station file's analyser address (tests
	// and the demo use "127.0.0.1:0").
	AnalyserAddr string
	// MetricsAddr overrides the station file's metrics address; "-"
	// disables the metrics listener.
	MetricsAddr string
	// FlushTimeout bounds how long Close waits for the spool to drain to
	// central (default 10 s). Whatever is left stays in the spool.
	FlushTimeout time.Duration
	// UplinkPoll and UplinkBackoffMax tune delivery (zero: uplink defaults).
	UplinkPoll       time.Duration
	UplinkBackoffMax time.Duration
	Live             LiveConfig // live view (live.go)
	// Cameras tunes the station's cameras, when it has any (camera.go).
	Cameras CameraOptions
	// Health tunes heartbeats and remote configuration (health.go).
	Health HealthOptions
}

// Agent is a running edge agent.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	spool   *spool.Spool
	uplink  *uplink.Uplink
	capture *Capture
	quar    *analyser.QuarantineFile
	cameras *cameraSet

	server *analyser.Server
	client *analyser.Client
	serial *analyser.Serial
	addr   net.Addr

	metrics *http.Server
	metAddr net.Addr
	live    *liveView
	health  health

	cancelHealth context.CancelFunc
	healthDone   chan struct{}

	cancelIntake context.CancelFunc
	intakeDone   chan struct{}
	uplinkDone   chan struct{}
	closeOnce    sync.Once
	closeErr     error
}

// Open starts the agent: it opens the spool (reconciling it with the media
// on disk), starts delivery to central, and starts listening to the
// analyser.
func Open(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Station == nil || cfg.Enrollment == nil {
		return nil, errors.New("agent: station configuration and enrollment are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = 10 * time.Second
	}
	st := cfg.Station
	if cfg.Enrollment.Station != st.Station.Station {
		return nil, fmt.Errorf("agent: enrollment is for station %s, configuration for %s", cfg.Enrollment.Station, st.Station.Station)
	}
	key, err := cfg.Enrollment.PrivateKey()
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	device, err := analyser.DecodeProfile(st.DeviceProfile)
	if err != nil {
		return nil, fmt.Errorf("agent: device profile %s: %w", st.DeviceRef, err)
	}
	if err := os.MkdirAll(st.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("agent: data dir: %w", err)
	}

	a := &Agent{cfg: cfg, log: cfg.Logger.With("component", "agent", "station", st.Station.Station)}
	a.health.started = cfg.Now()
	a.spool, err = spool.Open(ctx, filepath.Join(st.DataDir, "spool"), spool.Options{
		Logger: cfg.Logger.With("component", "spool"), Now: cfg.Now,
		MaxBytes: st.Spool.MaxBytes, MinFreeBytes: st.Spool.MinFreeBytes, RecordsMaxBytes: st.Spool.RecordsMaxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.uplink, err = uplink.New(uplink.Config{
		CentralURL: cfg.Enrollment.CentralURL, Station: st.Station.Station, Key: key, Spool: a.spool,
		Logger: cfg.Logger.With("component", "uplink"), Now: cfg.Now, RecordBatch: st.Uplink.BatchSize,
		PollInterval: firstNonZero(cfg.UplinkPoll, st.Uplink.PollInterval), BackoffMax: cfg.UplinkBackoffMax,
	})
	if err != nil {
		a.spool.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	// Garbage from the analyser may fill only its own budget, and never the
	// space passes need.
	a.quar, err = analyser.OpenQuarantineWith(filepath.Join(st.DataDir, "analyser-quarantine.jsonl"), analyser.QuarantineOptions{
		MaxBytes: st.Spool.QuarantineMaxBytes, DiskFree: a.diskFree, MinFreeBytes: st.Spool.MinFreeBytes + quarantineFloor, Now: cfg.Now,
	})
	if err != nil {
		a.spool.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.capture = &Capture{
		Station: st.Station.Station, Profiles: st.Profiles, Key: key, Outbox: a.spool,
		Software: Version, Now: cfg.Now,
		Clock: a.clockOffset,
	}
	a.loadRemote()

	if a.cameras, err = openCameras(ctx, st, cfg.Cameras, cfg.Logger); err != nil {
		a.quar.Close()
		a.spool.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	if a.cameras != nil {
		a.capture.Cameras = a.cameras
	}

	a.uplinkDone = make(chan struct{})
	go func() {
		defer close(a.uplinkDone)
		if err := a.uplink.Run(context.WithoutCancel(ctx)); err != nil {
			a.log.Error("uplink stopped", "err", err)
		}
	}()

	if err := a.startMetrics(); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.startIntake(ctx, device); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.startLive(ctx, key); err != nil {
		a.Close()
		return nil, err
	}
	if a.cfg.Health.Interval >= 0 {
		hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		a.cancelHealth, a.healthDone = cancel, make(chan struct{})
		go func() { defer close(a.healthDone); a.runHealth(hctx) }()
	}
	a.log.Info("edge agent started", "analyser", a.AnalyserAddr(), "protocol", st.Analyser.Protocol,
		"transport", st.Analyser.Transport, "central", cfg.Enrollment.CentralURL, "config_hash", st.Hash)
	return a, nil
}

func (a *Agent) startIntake(ctx context.Context, device *analyser.Profile) error {
	st := a.cfg.Station.Analyser
	acfg := analyser.Config{
		Protocol: st.Protocol, Profile: device, Handler: a.handle,
		Logger: a.cfg.Logger.With("component", "analyser"), Quarantine: a.quar, Now: a.cfg.Now,
	}
	intakeCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancelIntake = cancel
	a.intakeDone = make(chan struct{})
	var run func() error
	switch st.Transport {
	case "listen":
		addr := firstNonEmpty(a.cfg.AnalyserAddr, st.Addr)
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			cancel()
			close(a.intakeDone)
			return fmt.Errorf("agent: analyser listen: %w", err)
		}
		a.addr = ln.Addr()
		a.server = &analyser.Server{Addr: addr, Config: acfg}
		run = func() error { return a.server.Serve(intakeCtx, ln) }
	case "dial":
		a.client = &analyser.Client{Addr: firstNonEmpty(a.cfg.AnalyserAddr, st.Addr), Config: acfg}
		run = func() error { return a.client.Run(intakeCtx) }
	case "serial":
		a.serial = &analyser.Serial{Port: st.SerialPort, BaudRate: st.SerialBaud, Config: acfg}
		run = func() error { return a.serial.Run(intakeCtx) }
	default:
		cancel()
		close(a.intakeDone)
		return fmt.Errorf("agent: unknown analyser transport %q", st.Transport)
	}
	go func() {
		defer close(a.intakeDone)
		if err := run(); err != nil && !errors.Is(err, analyser.ErrServerClosed) {
			a.log.Error("analyser intake stopped", "err", err)
		}
	}()
	return nil
}

// handle stores one analyser message; the analyser is acknowledged only
// when it returns nil.
func (a *Agent) handle(ctx context.Context, m analyser.Message) error {
	a.note(m)
	switch m.Kind {
	case plume.RecordPass:
		p, err := a.capture.Pass(ctx, m.Reading, m.Raw)
		if err != nil {
			return err
		}
		a.publishPass(p)
		if p.Verdict.Outcome == plume.OutcomeExceed {
			a.log.Info("violation candidate captured", "pass", p.ID, "verdict", p.Verdict.Summary)
		}
		return nil
	case plume.RecordStatus:
		return a.capture.Status(ctx, m.Status)
	case plume.RecordAudit:
		return a.capture.Audit(ctx, m.Audit)
	}
	return fmt.Errorf("agent: unhandled record kind %q", m.Kind)
}

// AnalyserAddr returns the address the agent listens on for the analyser,
// or "" when it dials or reads a serial line.
func (a *Agent) AnalyserAddr() string {
	if a.addr == nil {
		return ""
	}
	return a.addr.String()
}

// MetricsAddr returns the metrics listener's address, or "".
func (a *Agent) MetricsAddr() string {
	if a.metAddr == nil {
		return ""
	}
	return a.metAddr.String()
}

// Stats is a snapshot of the agent's counters.
type Stats struct {
	Passes, Violations, Invalid, Exceed, Status, Audits, Rejected int64
	Analyser                                                      analyser.Stats
	Spool                                                         spool.Stats
	Uplink                                                        uplink.Stats
}

// Stats returns a snapshot of the agent's counters.
func (a *Agent) Stats() Stats {
	c := a.capture.Stats()
	s := Stats{
		Passes: c.Passes.Load(), Violations: c.Violations.Load(), Invalid: c.Invalid.Load(), Exceed: c.Exceed.Load(),
		Status: c.Status.Load(), Audits: c.Audits.Load(), Rejected: c.Rejected.Load(),
		Spool: a.spool.Stats(), Uplink: a.uplink.Stats(),
	}
	s.Analyser = a.analyserStats()
	return s
}

func (a *Agent) analyserStats() analyser.Stats {
	switch {
	case a.server != nil:
		return a.server.Stats()
	case a.client != nil:
		return a.client.Stats()
	case a.serial != nil:
		return a.serial.Stats()
	}
	return analyser.Stats{}
}

// Healthy reports whether the agent can still do its job: the spool answers
// and the analyser intake is running. An unreachable central is not a
// fault (edge boxes run offline for days); the systemd watchdog uses this.
func (a *Agent) Healthy(ctx context.Context) error {
	if _, err := a.spool.Totals(ctx); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	select {
	case <-a.intakeDone:
		return errors.New("analyser intake stopped")
	default:
	}
	return nil
}

// Spool returns the agent's spool, for operations tools and tests.
func (a *Agent) Spool() *spool.Spool { return a.spool }

// Close drains and stops the agent: stop intake, flush the spool to
// central within FlushTimeout, then close the spool.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		if a.cancelHealth != nil {
			a.cancelHealth()
			<-a.healthDone
		}
		a.stopLive()
		if a.cancelIntake != nil {
			a.cancelIntake()
			if a.server != nil {
				a.server.Close()
			}
			<-a.intakeDone
		}
		if a.cameras != nil {
			a.cameras.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.FlushTimeout)
		if err := a.uplink.Flush(ctx); err != nil {
			a.log.Warn("spool not fully flushed at shutdown; it stays queued", "err", err)
		}
		cancel()
		var errs []error
		errs = append(errs, a.uplink.Close())
		<-a.uplinkDone
		if a.metrics != nil {
			errs = append(errs, a.metrics.Close())
		}
		errs = append(errs, a.quar.Close(), a.spool.Close())
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

func (a *Agent) startMetrics() error {
	addr := firstNonEmpty(a.cfg.MetricsAddr, a.cfg.Station.MetricsAddr)
	if addr == "" || addr == "-" {
		return nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerMetrics(reg, a)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("agent: metrics listen: %w", err)
	}
	a.metAddr = ln.Addr()
	a.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go a.metrics.Serve(ln)
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func firstNonZero(d ...time.Duration) time.Duration {
	for _, x := range d {
		if x != 0 {
			return x
		}
	}
	return 0
}
