package server

import (
	"context"
	"fmt"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/ops"
	"github.com/plume-emissions/plume/central/profile"
)

// OpsConfig configures station operations (central/ops): heartbeats,
// integrity rules and alert delivery.
type OpsConfig struct {
	// HeartbeatInterval is how often stations report (default 60 s); a
	// station is down after DownAfter without one (default 3 intervals).
	HeartbeatInterval time.Duration
	DownAfter         time.Duration
	// Tick is how often integrity streams advance (default 10 s).
	Tick time.Duration
	// StartGrace is how long a just-started station's analyser may take
	// to connect before the station is degraded (default 2 min).
	StartGrace time.Duration
	// Webhook, when set, receives every new alert as JSON.
	Webhook string
	// SMTPRelay (host:port), MailFrom and MailTo send every new alert by
	// e-mail.
	SMTPRelay string
	MailFrom  string
	MailTo    []string
	// MaxSpeedKmh bounds plausible travel between stations (default 150).
	MaxSpeedKmh float64
}

// openOps starts station operations over the store. A store that does
// not implement central.OpsStore (yet) runs central without them: no
// heartbeats, integrity alerts or evidence flags, which the log says.
func (s *Server) openOps(ctx context.Context, profiles *profile.Set, publicURL string) error {
	os, ok := s.store.(central.OpsStore)
	if !ok {
		s.logger.Error("station operations disabled: the store does not implement central.OpsStore", "store", fmt.Sprintf("%T", s.store))
		return nil
	}
	oc := s.cfg.Ops
	var notes ops.Notifiers
	if oc.Webhook != "" {
		notes = append(notes, ops.NewWebhook(oc.Webhook, publicURL, s.cfg.Logger))
	}
	if oc.SMTPRelay != "" {
		notes = append(notes, &ops.Email{Relay: oc.SMTPRelay, From: oc.MailFrom, To: oc.MailTo, BaseURL: publicURL})
	}
	var n ops.Notifier
	if len(notes) > 0 {
		n = notes
	}
	svc, err := ops.New(ops.Config{
		Store: s.store, Ops: os, Profiles: profiles, Notifier: n, Logger: s.cfg.Logger, Now: s.cfg.Now,
		HeartbeatInterval: oc.HeartbeatInterval, DownAfter: oc.DownAfter, Tick: oc.Tick, StartGrace: oc.StartGrace, MaxSpeedKmh: oc.MaxSpeedKmh,
	})
	if err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		svc.Close()
		return err
	}
	s.ops = svc
	return nil
}

// opsHooks returns the hooks ingest, review and export take from station
// operations; all nil when they are disabled.
func (s *Server) opsHooks() (flags func(context.Context, *plume.Manifest) ([]central.CaseFlag, error), records func(context.Context, plume.StationID, []plume.Record), enforceable func(context.Context, *central.Case) error) {
	if s.ops == nil {
		return nil, nil, nil
	}
	return s.ops.Flags, s.ops.Records, s.ops.Enforceable
}

// Ops returns the station-operations service (nil when disabled).
func (s *Server) Ops() *ops.Service { return s.ops }
