package central

import (
	"context"
	"encoding/json"
	"math"
	"time"

	"github.com/plume-emissions/plume"
)

// HealthState is a station's operational state at central.
type HealthState string

// Station states.
const (
	HealthUnknown  HealthState = "unknown"  // no heartbeat yet
	HealthUp       HealthState = "up"       // heartbeats arrive and report nothing wrong
	HealthDegraded HealthState = "degraded" // heartbeats arrive and report a fault
	HealthDown     HealthState = "down"     // heartbeats stopped
	// HealthStarting: the station has just started and its analyser has
	// not connected yet; shown, never alerted on.
	HealthStarting HealthState = "starting"
)

// Label returns the state's bilingual label.
func (s HealthState) Label() string {
	switch s {
	case HealthUp:
		return "正常 up"
	case HealthDegraded:
		return "降级 degraded"
	case HealthDown:
		return "离线 down"
	case HealthStarting:
		return "启动中 starting"
	}
	return "未知 unknown"
}

// StationHealth is one heartbeat as judged at central.
type StationHealth struct {
	Station    plume.StationID `json:"station"`
	State      HealthState     `json:"state"`
	Reasons    []string        `json:"reasons,omitempty"` // why degraded or down
	ReceivedAt time.Time       `json:"received_at"`
	Heartbeat  plume.Heartbeat `json:"heartbeat"`
}

// AlertState is where an alert stands.
type AlertState string

// Alert states.
const (
	AlertOpen         AlertState = "open"
	AlertAcknowledged AlertState = "acknowledged"
	AlertEscalated    AlertState = "escalated" // escalated to an investigation
	AlertResolved     AlertState = "resolved"  // the condition cleared (station health)
)

// Alert sources.
const (
	AlertIntegrity = "integrity"    // a data-integrity rule (central/integrity)
	AlertHealth    = "health"       // a station changed state
	AlertCloned    = "cloned-plate" // the same plate where it cannot be (套牌)
	AlertConfig    = "config"       // a station rejected its configuration
)

// Alert is an operational alert at central: a data-integrity finding, a
// station health change or a suspected cloned plate. Detail holds the
// source's own evidence (the integrity alert with its chart, the two
// sightings, the heartbeat).
type Alert struct {
	ID          string            `json:"id"` // deterministic per source, so re-raising upserts
	Source      string            `json:"source"`
	Station     plume.StationID   `json:"station"`
	Stations    []plume.StationID `json:"stations,omitempty"` // every station the alert concerns (cloned plates: two)
	Rule        string            `json:"rule,omitempty"`
	Severity    string            `json:"severity"`
	Title       string            `json:"title"`
	Explanation string            `json:"explanation"`
	From        time.Time         `json:"from"`
	To          time.Time         `json:"to"`
	Raised      time.Time         `json:"raised"`
	Records     []string          `json:"records,omitempty"`
	Detail      json.RawMessage   `json:"detail,omitempty"`

	State     AlertState   `json:"state"`
	UpdatedAt time.Time    `json:"updated_at"`
	History   []AlertEvent `json:"history,omitempty"`
}

// AlertEvent is one change of an alert's state.
type AlertEvent struct {
	Time    time.Time  `json:"time"`
	Actor   string     `json:"actor"`
	State   AlertState `json:"state"`
	Comment string     `json:"comment,omitempty"`
}

// Concerns reports whether the alert concerns station s.
func (a *Alert) Concerns(s plume.StationID) bool {
	if a.Station == s {
		return true
	}
	for _, x := range a.Stations {
		if x == s {
			return true
		}
	}
	return false
}

// AlertFilter selects alerts. Zero fields match everything.
type AlertFilter struct {
	Station  plume.StationID
	Stations []plume.StationID // an officer's scope; nil: all
	Source   string
	State    AlertState
	Limit    int
}

// Match reports whether a matches the filter.
func (f *AlertFilter) Match(a *Alert) bool {
	switch {
	case f.Station != "" && !a.Concerns(f.Station):
	case f.Source != "" && a.Source != f.Source:
	case f.State != "" && a.State != f.State:
	default:
		if len(f.Stations) == 0 {
			return true
		}
		for _, s := range f.Stations {
			if a.Concerns(s) {
				return true
			}
		}
	}
	return false
}

// DesiredConfig is the configuration central wants a station to run:
// a document the edge validates and applies (edge/config.Remote).
type DesiredConfig struct {
	Station plume.StationID `json:"station"`
	Version int             `json:"version"` // set by the store: 1, 2, …
	Hash    string          `json:"hash"`    // SHA-256 of Body
	Body    []byte          `json:"body"`    // YAML
	SetBy   string          `json:"set_by"`
	SetAt   time.Time       `json:"set_at"`
	// Previous is the body of the version this one replaced (empty for
	// the first), so that the change can be shown as a diff.
	Previous []byte `json:"previous,omitempty"`
}

// CaseFlag marks evidence that a court could question: a clock outside
// GA/T 832-2014, an overdue or failed analyser audit. A blocking flag keeps
// the case from being approved or exported.
type CaseFlag struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Blocks  bool   `json:"blocks,omitempty"`
}

// Case flag codes.
const (
	FlagClockOffset  = "clock_offset"  // |clock offset| at capture > 1.0 s
	FlagClockUnknown = "clock_unknown" // the station had not measured its offset
	FlagAuditFailed  = "audit_failed"  // the last audit before capture failed
	FlagAuditOverdue = "audit_overdue" // no audit within the profile's interval
	// FlagVerdictMismatch: central's own copy of the cited profile does
	// not agree with the station's verdict (profile.Set.Rejudge); it
	// always blocks.
	FlagVerdictMismatch = "verdict_mismatch"
)

// OpsStore holds what station operations need beside the Store: health
// snapshots with history, alerts with their state, and each station's
// desired configuration. It is a separate interface so that a Store
// implementation can add it independently; every implementation must pass
// central/store/storetest.RunOps.
type OpsStore interface {
	// PutHealth records one judged heartbeat as the station's latest and
	// in its history.
	PutHealth(ctx context.Context, h *StationHealth) error
	// Health returns every station's latest health, ordered by station.
	Health(ctx context.Context) ([]*StationHealth, error)
	// HealthHistory returns a station's judged heartbeats received in
	// [from, to), newest first, at most limit.
	HealthHistory(ctx context.Context, station plume.StationID, from, to time.Time, limit int) ([]*StationHealth, error)
	// SetHealthState changes the latest health's state and reasons (a
	// station judged down when heartbeats stop). ErrNotFound if the
	// station never sent one.
	SetHealthState(ctx context.Context, station plume.StationID, state HealthState, reasons []string) error

	// PutAlert stores an alert by ID. A new alert is stored as given
	// (created=true); an alert already held keeps its state and history and
	// takes the new evidence (created=false).
	PutAlert(ctx context.Context, a *Alert) (created bool, err error)
	// Alert returns one alert, or ErrNotFound.
	Alert(ctx context.Context, id string) (*Alert, error)
	// Alerts lists alerts matching f, newest raised first.
	Alerts(ctx context.Context, f AlertFilter) ([]*Alert, error)
	// UpdateAlert changes an alert atomically; fn's error aborts the
	// change. ErrNotFound if there is no such alert.
	UpdateAlert(ctx context.Context, id string, fn func(a *Alert) error) (*Alert, error)

	// StationRecords returns a station's stored records whose time is in
	// [from, to), in no particular order (integrity replay at start-up).
	StationRecords(ctx context.Context, station plume.StationID, from, to time.Time) ([]plume.Record, error)

	// PutDesiredConfig stores a new version of a station's desired
	// configuration, setting Version and Hash.
	PutDesiredConfig(ctx context.Context, c *DesiredConfig) error
	// DesiredConfig returns the station's current desired configuration,
	// or ErrNotFound.
	DesiredConfig(ctx context.Context, station plume.StationID) (*DesiredConfig, error)

	// SetStationLocation places an enrolled station (WGS 84 degrees),
	// for the cloned-plate speed check. ErrNotFound if it is not
	// enrolled.
	SetStationLocation(ctx context.Context, station plume.StationID, lat, lon float64) error
}

// ValidateLocation checks a station's WGS 84 coordinates; (0, 0) means
// unknown and is refused, as is anything off the globe.
func ValidateLocation(lat, lon float64) error {
	switch {
	case math.IsNaN(lat) || math.IsNaN(lon) || lat < -90 || lat > 90 || lon < -180 || lon > 180:
		return plume.Errorf(plume.EINVALID, "coordinates %g, %g are not WGS 84 degrees (latitude −90…90, longitude −180…180)", lat, lon)
	case lat == 0 && lon == 0:
		return plume.Errorf(plume.EINVALID, "coordinates 0, 0 mean unknown; give the station's position")
	}
	return nil
}
