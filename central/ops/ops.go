// Package ops is central's side of station operations: it judges station
// heartbeats (starting, up, degraded, down) and keeps their history, runs the
// data-integrity rules (central/integrity) over each station's records as
// they arrive, looks for cloned plates (套牌) across stations, holds each
// station's desired configuration, decides which evidence is enforceable
// (clock discipline, analyser audits), and delivers alerts by webhook,
// e-mail and the officers' web app.
//
// # Integrity wiring
//
// Ingest hands every batch of records central accepted to Records. Each
// station has one worker goroutine owning its integrity.Stream; records
// central has already seen (a resent batch) are dropped by ID. A ticker
// calls Advance with the injected clock so that silent stations are judged
// silent, and at start-up the last eight days of each station's records
// are replayed through a fresh stream (the replay rule's horizon), so a
// restart neither forgets nor duplicates alerts: alert IDs are
// deterministic and the store upserts them, keeping their state.
//
// # Enforceability
//
// Flags marks new evidence at ingest (clock offset beyond GA/T 832-2014's
// 1.0 s, an unknown offset, an overdue or failed audit per the limit
// profile's audit policy). Enforceable is checked again, with the audits
// central holds by then, when an officer approves a case and before it is
// exported: a blocking flag refuses both with the reason.
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/integrity"
	"github.com/plume-emissions/plume/central/profile"
)

// Config configures a Service.
type Config struct {
	Store central.Store
	Ops   central.OpsStore
	// Rules is the integrity rule set; nil loads the shipped one.
	Rules    *integrity.RuleSet
	Profiles *profile.Set
	Notifier Notifier // nil: alerts only show in the web app
	Logger   *slog.Logger
	Now      func() time.Time

	// HeartbeatInterval is how often stations are asked to report
	// (default 60 s); a station is down after DownAfter without one
	// (default three intervals).
	HeartbeatInterval time.Duration
	DownAfter         time.Duration
	// StartGrace is how long after its agent started a station whose
	// analyser has not connected yet is "starting" rather than degraded
	// (default 2 min).
	StartGrace time.Duration
	// Tick is how often streams advance and heartbeats are checked
	// (default 10 s).
	Tick time.Duration
	// Replay is how much history a restart replays (default 8 days).
	Replay time.Duration
	// MaxSpeedKmh is the speed above which two sightings of one plate at
	// two stations are judged impossible (default 150 km/h).
	MaxSpeedKmh float64
	// MinFreeBytes is the disk free space below which a station without a
	// configured reserve is degraded (default 256 MiB).
	MinFreeBytes int64
}

// Service runs station operations at central.
type Service struct {
	cfg    Config
	logger *slog.Logger
	engine *integrity.Engine

	mu      sync.Mutex
	workers map[plume.StationID]*worker
	cloned  *clonedPlates

	notes  chan *central.Alert
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Service; call Start to replay history and run the ticker.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Ops == nil {
		return nil, errors.New("ops: a store and an ops store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rules == nil {
		rs, err := integrity.DefaultRules()
		if err != nil {
			return nil, fmt.Errorf("ops: %w", err)
		}
		cfg.Rules = rs
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Minute
	}
	if cfg.DownAfter <= 0 {
		cfg.DownAfter = 3 * cfg.HeartbeatInterval
	}
	if cfg.StartGrace <= 0 {
		cfg.StartGrace = 2 * time.Minute
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Second
	}
	if cfg.Replay <= 0 {
		cfg.Replay = 8 * 24 * time.Hour
	}
	if cfg.MaxSpeedKmh <= 0 {
		cfg.MaxSpeedKmh = 150
	}
	if cfg.MinFreeBytes <= 0 {
		cfg.MinFreeBytes = 256 << 20
	}
	s := &Service{
		cfg: cfg, logger: cfg.Logger.With("component", "ops"),
		engine:  integrity.New(cfg.Rules, cfg.Logger),
		workers: map[plume.StationID]*worker{},
		notes:   make(chan *central.Alert, 256),
	}
	s.cloned = newClonedPlates(s)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Rules returns the integrity rule set in force.
func (s *Service) Rules() *integrity.RuleSet { return s.cfg.Rules }

// HeartbeatInterval is how often stations should report.
func (s *Service) HeartbeatInterval() time.Duration { return s.cfg.HeartbeatInterval }

// Start replays each station's recent records through fresh integrity
// streams, then runs the ticker and the alert deliverer until Close.
func (s *Service) Start(ctx context.Context) error {
	sts, err := s.cfg.Store.Stations(ctx)
	if err != nil {
		return fmt.Errorf("ops start: %w", err)
	}
	now := s.cfg.Now()
	for _, st := range sts {
		recs, err := s.cfg.Ops.StationRecords(ctx, st.ID, now.Add(-s.cfg.Replay), time.Time{})
		if err != nil {
			return fmt.Errorf("ops start: %w", err)
		}
		if len(recs) > 0 {
			s.worker(st.ID).replay(recs)
		}
	}
	s.wg.Go(s.deliver)
	s.wg.Go(s.tick)
	return nil
}

// Close stops the workers, the ticker and the deliverer (alerts not yet
// delivered are dropped from delivery; they stay in the store).
func (s *Service) Close() {
	s.cancel()
	s.mu.Lock()
	for _, w := range s.workers {
		close(w.in)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Service) tick() {
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.Tick(s.ctx)
	}
}

// Tick advances every station's stream to now and judges stations whose
// heartbeats stopped. The ticker calls it; tests call it directly.
func (s *Service) Tick(ctx context.Context) {
	now := s.cfg.Now()
	s.mu.Lock()
	ws := make([]*worker, 0, len(s.workers))
	for _, w := range s.workers {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	for _, w := range ws {
		w.send(job{advance: now})
	}
	if err := s.checkDown(ctx, now); err != nil {
		s.logger.Error("check heartbeats", "err", err)
	}
}

// raise stores an alert and, when it is new, queues its delivery.
func (s *Service) raise(ctx context.Context, a *central.Alert) {
	if a.UpdatedAt.IsZero() {
		a.UpdatedAt = s.cfg.Now().UTC()
	}
	created, err := s.cfg.Ops.PutAlert(ctx, a)
	if err != nil {
		s.logger.Error("store alert", "alert", a.ID, "err", err)
		return
	}
	if !created {
		return
	}
	s.logger.Warn("alert raised", "alert", a.ID, "source", a.Source, "station", a.Station, "title", a.Title)
	select {
	case s.notes <- a:
	default:
		s.logger.Error("alert delivery queue full; the alert is stored but not sent", "alert", a.ID)
	}
}

func (s *Service) deliver() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case a := <-s.notes:
			if s.cfg.Notifier == nil {
				continue
			}
			if err := s.cfg.Notifier.Notify(s.ctx, a); err != nil {
				s.logger.Error("deliver alert", "alert", a.ID, "err", err)
			}
		}
	}
}

// integrityAlert converts an integrity finding to a stored alert.
func integrityAlert(a *integrity.Alert) *central.Alert {
	detail, _ := json.Marshal(a)
	return &central.Alert{
		ID: a.ID, Source: central.AlertIntegrity, Station: a.Station, Rule: fmt.Sprintf("%s@v%d", a.Rule, a.RuleVersion),
		Severity: string(a.Severity), Title: a.Title, Explanation: a.Explanation,
		From: a.From, To: a.To, Raised: a.Raised, Records: a.Records, Detail: detail,
	}
}

// IntegrityDetail decodes an integrity alert's evidence (with its chart).
func IntegrityDetail(a *central.Alert) (*integrity.Alert, error) {
	if a.Source != central.AlertIntegrity {
		return nil, plume.Errorf(plume.EINVALID, "alert %s is not an integrity alert", a.ID)
	}
	var ia integrity.Alert
	if err := json.Unmarshal(a.Detail, &ia); err != nil {
		return nil, fmt.Errorf("decode integrity alert %s: %w", a.ID, err)
	}
	return &ia, nil
}

// IntegrityDetailOf is IntegrityDetail, for callers holding the Service.
func (s *Service) IntegrityDetailOf(a *central.Alert) (*integrity.Alert, error) {
	return IntegrityDetail(a)
}

// Alert actions.
const (
	ActionAcknowledge = "acknowledge"
	ActionEscalate    = "escalate"
)

// Act acknowledges an alert or escalates it to an investigation for an
// officer who may see its station; the change is written to the audit
// log.
func (s *Service) Act(ctx context.Context, o *central.Officer, ip, id, action, comment string) (*central.Alert, error) {
	if !o.Can(central.PermReview) {
		return nil, plume.Errorf(plume.EFORBIDDEN, "your role (%s) may not act on alerts", o.Role)
	}
	if len(comment) > 2000 {
		return nil, plume.Errorf(plume.EINVALID, "comment longer than 2000 bytes")
	}
	var to central.AlertState
	switch action {
	case ActionAcknowledge:
		to = central.AlertAcknowledged
	case ActionEscalate:
		to = central.AlertEscalated
		if comment == "" {
			return nil, plume.Errorf(plume.EINVALID, "say why the alert goes to an investigation")
		}
	default:
		return nil, plume.Errorf(plume.ENOTFOUND, "no alert action %q", action)
	}
	now := s.cfg.Now().UTC()
	var before central.AlertState
	a, err := s.cfg.Ops.UpdateAlert(ctx, id, func(a *central.Alert) error {
		if !sees(o, a) {
			return central.ErrNotFound
		}
		if a.State == to || a.State == central.AlertEscalated {
			return plume.Errorf(plume.ECONFLICT, "alert is already %s", a.State)
		}
		before = a.State
		a.State, a.UpdatedAt = to, now
		a.History = append(a.History, central.AlertEvent{Time: now, Actor: o.Username, State: to, Comment: comment})
		return nil
	})
	if errors.Is(err, central.ErrNotFound) {
		return nil, plume.Errorf(plume.ENOTFOUND, "no alert %q", id)
	} else if err != nil {
		return nil, err
	}
	if _, err := s.cfg.Store.AppendAudit(ctx, central.AuditEvent{
		Time: now, Actor: o.Username, Role: o.Role, IP: ip, Action: "alert." + action, Target: id, Station: a.Station,
		Before: string(before), After: string(to), Detail: comment,
	}); err != nil {
		return nil, fmt.Errorf("audit alert %s: %w", id, err)
	}
	return a, nil
}

// Alerts lists the alerts an officer may see.
func (s *Service) Alerts(ctx context.Context, o *central.Officer, f central.AlertFilter) ([]*central.Alert, error) {
	if len(o.Stations) > 0 {
		f.Stations = o.Stations
		if f.Station != "" && !o.Sees(f.Station) {
			return nil, nil
		}
	}
	return s.cfg.Ops.Alerts(ctx, f)
}

// Alert returns one alert an officer may see.
func (s *Service) Alert(ctx context.Context, o *central.Officer, id string) (*central.Alert, error) {
	a, err := s.cfg.Ops.Alert(ctx, id)
	if errors.Is(err, central.ErrNotFound) || (err == nil && !sees(o, a)) {
		return nil, plume.Errorf(plume.ENOTFOUND, "no alert %q", id)
	}
	return a, err
}

// sees reports whether an officer may see an alert: one of the stations
// it concerns is in the officer's scope (a cloned-plate alert concerns
// both stations, as AlertFilter.Match has it).
func sees(o *central.Officer, a *central.Alert) bool {
	if o.Sees(a.Station) {
		return true
	}
	for _, s := range a.Stations {
		if o.Sees(s) {
			return true
		}
	}
	return false
}

// OpenAlerts counts the open alerts an officer may see (the app's badge).
func (s *Service) OpenAlerts(ctx context.Context, o *central.Officer) int {
	as, err := s.Alerts(ctx, o, central.AlertFilter{State: central.AlertOpen, Limit: central.MaxPageSize})
	if err != nil {
		return 0
	}
	return len(as)
}

// Backtest runs the rule set (or the named rules) over a station's stored
// records in [from, to) and returns what it would have flagged, without
// storing anything.
func (s *Service) Backtest(ctx context.Context, station plume.StationID, from, to time.Time, rules ...string) ([]integrity.Alert, []integrity.RuleStats, error) {
	rs := s.cfg.Rules
	if len(rules) > 0 {
		var err error
		if rs, err = rs.Only(rules...); err != nil {
			return nil, nil, plume.Errorf(plume.EINVALID, "backtest: %v", err)
		}
	}
	recs, err := s.cfg.Ops.StationRecords(ctx, station, from, to)
	if err != nil {
		return nil, nil, err
	}
	return integrity.New(rs, s.cfg.Logger).Evaluate(ctx, station, integrity.Series{Records: recs, Until: to})
}
