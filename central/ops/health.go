package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Judge says what a heartbeat shows: up, or degraded with the reasons,
// or starting: an agent started less than StartGrace ago whose analyser
// has not connected yet, and nothing else wrong.
func (s *Service) Judge(hb *plume.Heartbeat) (central.HealthState, []string) {
	var why []string
	starting := false
	if !hb.Analyser.Connected {
		if up := hb.Time.Sub(hb.Started); !hb.Started.IsZero() && hb.Analyser.Records == 0 && up >= 0 && up < s.cfg.StartGrace {
			starting = true
		} else {
			why = append(why, "分析仪链路中断 analyser link lost")
		}
	}
	if hb.Analyser.AuditFail {
		why = append(why, "分析仪审核不合格 the analyser's last audit failed")
	}
	switch plume.StatusFlag(hb.Analyser.Flag) {
	case plume.FlagFault, plume.FlagCommsFault, plume.FlagStopped:
		why = append(why, fmt.Sprintf("分析仪状态 analyser flag %s", hb.Analyser.Flag))
	}
	for _, c := range hb.Cameras {
		switch {
		case !c.Connected:
			why = append(why, fmt.Sprintf("摄像机断开 camera %s disconnected", c.Name))
		case c.Frozen:
			why = append(why, fmt.Sprintf("画面冻结 camera %s frozen", c.Name))
		case c.Black:
			why = append(why, fmt.Sprintf("黑屏 camera %s black", c.Name))
		}
	}
	if hb.Disk.Known {
		min := s.cfg.MinFreeBytes
		if hb.Disk.MinFreeBytes > 0 {
			min = 2 * hb.Disk.MinFreeBytes
		}
		if hb.Disk.FreeBytes < min {
			why = append(why, fmt.Sprintf("磁盘将满 disk nearly full: %d MiB free, want %d MiB", hb.Disk.FreeBytes>>20, min>>20))
		}
	}
	if hb.Spool.DeadLetters > 0 {
		why = append(why, fmt.Sprintf("死信 %d dead letter(s) in the spool", hb.Spool.DeadLetters))
	}
	if hb.Clock.Known && !plume.ClockOK(hb.Clock.Offset()) {
		why = append(why, fmt.Sprintf("时钟偏差 clock off by %.3f s (GA/T 832-2014 allows 1.0 s)", hb.Clock.Offset().Seconds()))
	}
	if hb.ConfigError != "" {
		why = append(why, "配置被拒 configuration rejected: "+hb.ConfigError)
	}
	switch {
	case len(why) > 0:
		return central.HealthDegraded, why
	case starting:
		return central.HealthStarting, []string{fmt.Sprintf("启动中，等待分析仪连接 started %s ago, waiting for the analyser to connect",
			hb.Time.Sub(hb.Started).Round(time.Second))}
	}
	return central.HealthUp, nil
}

// HeartbeatReply is central's answer to a heartbeat.
type HeartbeatReply struct {
	State   central.HealthState `json:"state"`
	Reasons []string            `json:"reasons,omitempty"`
	// ConfigHash is the hash of the station's desired configuration, ""
	// when central holds none; a station running another fetches it.
	ConfigHash string `json:"config_hash,omitempty"`
	// IntervalMS is how often central wants heartbeats.
	IntervalMS int64 `json:"interval_ms"`
}

// Heartbeat judges and stores one heartbeat of an authenticated station
// and raises an alert when the station's state changed.
func (s *Service) Heartbeat(ctx context.Context, st *central.Station, hb *plume.Heartbeat) (*HeartbeatReply, error) {
	if hb.Station != st.ID {
		return nil, plume.Errorf(plume.EFORBIDDEN, "station %s may not report for station %s", st.ID, hb.Station)
	}
	if err := hb.Validate(); err != nil {
		return nil, err
	}
	prev := s.latest(ctx, st.ID)
	// Heartbeats must move forward in time (the time is inside the signed
	// body): an older one is a replay or out of order and is refused, so a
	// captured "up" heartbeat cannot hide a later "degraded" one. The same
	// heartbeat again (a retry) is answered without being recorded twice.
	// The edge's sequence number restarts with the agent, so the time
	// decides; the sequence only breaks a tie (a clock that did not move).
	if prev != nil {
		last := prev.Heartbeat
		switch {
		case hb.Time.Equal(last.Time) && hb.Seq == last.Seq:
			return s.reply(ctx, st.ID, prev.State, prev.Reasons)
		case hb.Time.Before(last.Time) || hb.Time.Equal(last.Time) && hb.Seq <= last.Seq:
			s.logger.Warn("heartbeat refused: not newer than the last one (replayed?)", "station", st.ID, "seq", hb.Seq, "time", hb.Time, "last_seq", last.Seq, "last_time", last.Time)
			return nil, fmt.Errorf("%w: heartbeat %d of %s is not newer than the last one (%d of %s)", ErrStaleHeartbeat,
				hb.Seq, hb.Time.Format(time.RFC3339Nano), last.Seq, last.Time.Format(time.RFC3339Nano))
		}
	}
	state, why := s.Judge(hb)
	h := &central.StationHealth{Station: st.ID, State: state, Reasons: why, ReceivedAt: s.cfg.Now().UTC(), Heartbeat: *hb}
	prevState := central.HealthUnknown
	var prevWhy []string
	if prev != nil {
		prevState, prevWhy = prev.State, prev.Reasons
	}
	// The alert is stored before the new state, so whoever sees the state
	// also finds the alert that announced it.
	// A condition that persists extends its alert's span (first raised …
	// last seen); a change closes the alert of the condition that ended
	// and raises one for the new state.
	switch {
	case prevState == state && (state != central.HealthDegraded || slices.Equal(prevWhy, why)):
		if state != central.HealthUp && state != central.HealthStarting {
			s.seenHealthAlert(ctx, st.ID, h.ReceivedAt)
		}
	default:
		s.endHealthAlert(ctx, st.ID, state, h.ReceivedAt)
		if state != central.HealthStarting {
			s.healthAlert(ctx, st.ID, prevState, state, why, h.ReceivedAt, hb)
		}
	}
	if err := s.cfg.Ops.PutHealth(ctx, h); err != nil {
		return nil, err
	}
	if hb.ConfigError != "" && hb.ConfigRejected != "" {
		s.raise(ctx, &central.Alert{
			ID: fmt.Sprintf("config/%s/%s", st.ID, hb.ConfigRejected), Source: central.AlertConfig, Station: st.ID,
			Severity: "warning", Title: "站点拒绝了下发的配置 Station rejected its configuration",
			Explanation: fmt.Sprintf("Station %s rejected configuration %.12s and keeps running %.12s: %s", st.ID, hb.ConfigRejected, hb.ConfigHash, hb.ConfigError),
			From:        h.ReceivedAt, To: h.ReceivedAt, Raised: h.ReceivedAt,
		})
	}
	return s.reply(ctx, st.ID, state, why)
}

// ErrStaleHeartbeat is returned (wrapped) by Heartbeat for a heartbeat not
// newer than the station's last one: a replay, or out of order.
var ErrStaleHeartbeat = plume.Errorf(plume.ECONFLICT, "stale heartbeat")

func (s *Service) reply(ctx context.Context, station plume.StationID, state central.HealthState, why []string) (*HeartbeatReply, error) {
	reply := &HeartbeatReply{State: state, Reasons: why, IntervalMS: s.cfg.HeartbeatInterval.Milliseconds()}
	if dc, err := s.cfg.Ops.DesiredConfig(ctx, station); err == nil {
		reply.ConfigHash = dc.Hash
	} else if !errors.Is(err, central.ErrNotFound) {
		return nil, err
	}
	return reply, nil
}

func (s *Service) latest(ctx context.Context, station plume.StationID) *central.StationHealth {
	all, err := s.cfg.Ops.Health(ctx)
	if err != nil {
		s.logger.Error("health", "err", err)
		return nil
	}
	for _, h := range all {
		if h.Station == station {
			return h
		}
	}
	return nil
}

func (s *Service) healthAlert(ctx context.Context, station plume.StationID, from, to central.HealthState, why []string, at time.Time, hb *plume.Heartbeat) {
	sev := "warning"
	switch to {
	case central.HealthDown:
		sev = "critical"
	case central.HealthUp:
		sev = "info"
	}
	var detail []byte
	if hb != nil {
		detail, _ = json.Marshal(hb)
	}
	expl := fmt.Sprintf("Station %s went from %s to %s.", station, from, to)
	if len(why) > 0 {
		expl += " " + strings.Join(why, "; ") + "."
	}
	a := &central.Alert{
		ID: fmt.Sprintf("health/%s/%s", station, at.UTC().Format("20060102T150405.000000000Z")), Source: central.AlertHealth,
		Station: station, Severity: sev, Title: fmt.Sprintf("站点状态 Station %s: %s", to.Label(), station),
		Explanation: expl, From: at, To: at, Raised: at, Detail: detail,
	}
	if to == central.HealthUp {
		a.State = central.AlertResolved
	}
	s.raise(ctx, a)
}

// openHealthAlert returns the station's newest health alert when its
// condition has not been closed, else nil.
func (s *Service) openHealthAlert(ctx context.Context, station plume.StationID) *central.Alert {
	as, err := s.cfg.Ops.Alerts(ctx, central.AlertFilter{Station: station, Source: central.AlertHealth, Limit: 1})
	if err != nil {
		s.logger.Error("health alerts", "station", station, "err", err)
		return nil
	}
	if len(as) == 0 || as[0].State == central.AlertResolved {
		return nil
	}
	return as[0]
}

// seenHealthAlert moves the end of the station's open health alert to at:
// its condition was seen again.
func (s *Service) seenHealthAlert(ctx context.Context, station plume.StationID, at time.Time) {
	a := s.openHealthAlert(ctx, station)
	if a == nil || !at.After(a.To) {
		return
	}
	if _, err := s.cfg.Ops.UpdateAlert(ctx, a.ID, func(a *central.Alert) error {
		if at.After(a.To) {
			a.To = at
		}
		return nil
	}); err != nil {
		s.logger.Error("extend health alert", "alert", a.ID, "err", err)
	}
}

// endHealthAlert resolves the station's open health alert: its condition
// ended at at, the station now being in state now. An alert escalated to
// an investigation keeps its state; the investigation closes it.
func (s *Service) endHealthAlert(ctx context.Context, station plume.StationID, now central.HealthState, at time.Time) {
	a := s.openHealthAlert(ctx, station)
	if a == nil || a.State == central.AlertEscalated {
		return
	}
	if _, err := s.cfg.Ops.UpdateAlert(ctx, a.ID, func(a *central.Alert) error {
		if a.State == central.AlertResolved || a.State == central.AlertEscalated {
			return nil
		}
		a.State, a.UpdatedAt = central.AlertResolved, s.cfg.Now().UTC()
		a.History = append(a.History, central.AlertEvent{Time: at, Actor: "central", State: central.AlertResolved,
			Comment: "状况结束 condition ended; station now " + now.Label()})
		return nil
	}); err != nil {
		s.logger.Error("resolve health alert", "alert", a.ID, "err", err)
	}
}

// checkDown marks stations whose heartbeats stopped as down.
func (s *Service) checkDown(ctx context.Context, now time.Time) error {
	all, err := s.cfg.Ops.Health(ctx)
	if err != nil {
		return err
	}
	for _, h := range all {
		if h.State == central.HealthDown {
			s.seenHealthAlert(ctx, h.Station, now.UTC())
			continue
		}
		if now.Sub(h.ReceivedAt) <= s.cfg.DownAfter {
			continue
		}
		why := []string{fmt.Sprintf("离线 no heartbeat for %s (last at %s)", now.Sub(h.ReceivedAt).Round(time.Second), h.ReceivedAt.UTC().Format(time.RFC3339))}
		if err := s.cfg.Ops.SetHealthState(ctx, h.Station, central.HealthDown, why); err != nil {
			return err
		}
		s.endHealthAlert(ctx, h.Station, central.HealthDown, now.UTC())
		s.healthAlert(ctx, h.Station, h.State, central.HealthDown, why, now.UTC(), nil)
	}
	return nil
}

// StationView is a station with its latest health, for the web app and
// the JSON API.
type StationView struct {
	Station *central.Station       `json:"station"`
	Health  *central.StationHealth `json:"health,omitempty"`
	State   central.HealthState    `json:"state"`
}

// Stations lists the stations an officer sees with their health.
func (s *Service) Stations(ctx context.Context, o *central.Officer) ([]StationView, error) {
	sts, err := s.cfg.Store.Stations(ctx)
	if err != nil {
		return nil, err
	}
	hs, err := s.cfg.Ops.Health(ctx)
	if err != nil {
		return nil, err
	}
	by := map[plume.StationID]*central.StationHealth{}
	for _, h := range hs {
		by[h.Station] = h
	}
	var out []StationView
	for _, st := range sts {
		if !o.Sees(st.ID) {
			continue
		}
		v := StationView{Station: st, Health: by[st.ID], State: central.HealthUnknown}
		if v.Health != nil {
			v.State = v.Health.State
		}
		out = append(out, v)
	}
	return out, nil
}

// StationHistory returns a station's health history for an officer who
// sees it, newest first.
func (s *Service) StationHistory(ctx context.Context, o *central.Officer, id plume.StationID, limit int) (*central.Station, []*central.StationHealth, error) {
	st, err := s.cfg.Store.Station(ctx, id)
	if errors.Is(err, central.ErrNotFound) || (err == nil && !o.Sees(id)) {
		return nil, nil, plume.Errorf(plume.ENOTFOUND, "no station %s", id)
	} else if err != nil {
		return nil, nil, err
	}
	hist, err := s.cfg.Ops.HealthHistory(ctx, id, time.Time{}, time.Time{}, limit)
	return st, hist, err
}
