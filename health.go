package plume

import (
	"math"
	"time"
)

// MaxClockOffset is the largest clock offset at which image evidence is
// admissible: GA/T 832-2014 requires the device clock to be within 1.0 s of
// standard time.
const MaxClockOffset = time.Second

// HeaderTime is the response header in which central gives its own time
// with millisecond precision (RFC 3339), so that stations can measure their
// clock offset far better than the one-second Date header allows.
const HeaderTime = "Plume-Time"

// TimeFormat is the layout of HeaderTime.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Heartbeat is a station's periodic health report (edge → central,
// PUT /api/v1/stations/{station}/health/{seq}).
type Heartbeat struct {
	Station StationID `json:"station"`
	Seq     uint64    `json:"seq"`  // increases by one per heartbeat since the agent started
	Time    time.Time `json:"time"` // the station's clock when it was sent
	// Software is the agent's version; ConfigHash the SHA-256 of the
	// station configuration it runs.
	Software   string `json:"software"`
	ConfigHash string `json:"config_hash"`
	// Started is when the agent started (the station's clock): central
	// gives a station that has just started time for its analyser to
	// connect before judging the link lost.
	Started time.Time `json:"started,omitzero"`
	// ConfigError is why the last remotely delivered configuration was
	// rejected ("" when none was, or the last one was applied).
	ConfigError string `json:"config_error,omitempty"`
	// ConfigRejected is the hash of that rejected configuration.
	ConfigRejected string         `json:"config_rejected,omitempty"`
	Analyser       AnalyserHealth `json:"analyser"`
	Cameras        []CameraHealth `json:"cameras,omitempty"`
	Disk           DiskHealth     `json:"disk"`
	Spool          SpoolHealth    `json:"spool"`
	Clock          ClockHealth    `json:"clock"`
}

// AnalyserHealth is the state of the link to the remote-sensing analyser.
type AnalyserHealth struct {
	Connected  bool      `json:"connected"`              // a connection (or serial port) is open now
	LastRecord time.Time `json:"last_record,omitzero"`   // when the last record was stored
	Records    uint64    `json:"records"`                // records stored since start
	Malformed  uint64    `json:"malformed"`              // records quarantined since start
	Flag       string    `json:"flag,omitempty"`         // the last device status flag (HJ 212: N, C, D, …)
	LastAudit  time.Time `json:"last_audit,omitzero"`    // the last calibration or audit record
	AuditFail  bool      `json:"audit_failed,omitempty"` // that audit failed
}

// CameraHealth is one camera's state.
type CameraHealth struct {
	Name       string    `json:"name"`
	Connected  bool      `json:"connected"`
	FPS        float64   `json:"fps"`
	Frozen     bool      `json:"frozen,omitempty"`
	Black      bool      `json:"black,omitempty"`
	Reconnects int64     `json:"reconnects"`
	LastFrame  time.Time `json:"last_frame,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
}

// DiskHealth is the free space where the spool lives.
type DiskHealth struct {
	FreeBytes    int64 `json:"free_bytes"`
	MinFreeBytes int64 `json:"min_free_bytes,omitempty"` // the spool's configured reserve
	Known        bool  `json:"known"`
}

// SpoolHealth is the edge outbox.
type SpoolHealth struct {
	QueuedEvidence int   `json:"queued_evidence"`
	QueuedRecords  int   `json:"queued_records"`
	DeadLetters    int   `json:"dead_letters"`
	Bytes          int64 `json:"bytes"`
	FullRefusals   int64 `json:"full_refusals,omitempty"`
	// Folded counts pass records folded into summaries (central
	// unreachable and the records budget spent) since the agent started.
	Folded int64 `json:"folded,omitempty"`
	// Healed counts spool database values that failed their checksum and
	// were replaced from the spool's files; Recovered the records queued
	// again from the record segments (after a rebuild or a heal).
	Healed    int64 `json:"healed,omitempty"`
	Recovered int64 `json:"recovered,omitempty"`
	// Rebuilt says the spool database was found corrupt at start and
	// rebuilt from the files.
	Rebuilt bool `json:"rebuilt,omitempty"`
	// MediaDamaged counts queued media the background scrub found not to
	// match its hash; LastScrub is when the scrub last ran.
	MediaDamaged int       `json:"media_damaged,omitempty"`
	LastScrub    time.Time `json:"last_scrub,omitzero"`
}

// ClockHealth is the station clock's offset (station minus reference) as
// the station measured it.
type ClockHealth struct {
	// OffsetMS is the offset the station uses for its evidence (the larger
	// in magnitude of the fresh measurements below).
	OffsetMS int64  `json:"offset_ms"`
	Known    bool   `json:"known"`
	Source   string `json:"source,omitempty"` // "central", "ntp"
	// CentralMS is measured against central's Plume-Time at the midpoint
	// of a request's round trip; RoundTripMS bounds its error.
	CentralMS    *int64 `json:"central_ms,omitempty"`
	RoundTripMS  int64  `json:"round_trip_ms,omitempty"`
	NTPMS        *int64 `json:"ntp_ms,omitempty"` // from chrony's tracking, where it runs
	NTPSynced    bool   `json:"ntp_synced,omitempty"`
	NTPReference string `json:"ntp_reference,omitempty"`
}

// Offset returns the clock offset as a duration.
func (c ClockHealth) Offset() time.Duration { return time.Duration(c.OffsetMS) * time.Millisecond }

// ClockOK reports whether an offset is within MaxClockOffset.
func ClockOK(offset time.Duration) bool { return offset.Abs() <= MaxClockOffset }

// Validate checks a heartbeat received from outside.
func (h *Heartbeat) Validate() error {
	if err := h.Station.Validate(); err != nil {
		return err
	}
	if h.Time.IsZero() {
		return Errorf(EINVALID, "heartbeat: time is missing")
	}
	if len(h.Software) > 128 || len(h.ConfigHash) > 128 || len(h.ConfigRejected) > 128 || len(h.ConfigError) > 2000 {
		return Errorf(EINVALID, "heartbeat: a text field is too long")
	}
	if len(h.Cameras) > 16 {
		return Errorf(EINVALID, "heartbeat: too many cameras")
	}
	for _, c := range h.Cameras {
		if c.Name == "" || len(c.Name) > 64 || len(c.LastError) > 500 || math.IsNaN(c.FPS) || math.IsInf(c.FPS, 0) || c.FPS < 0 {
			return Errorf(EINVALID, "heartbeat: bad camera %q", c.Name)
		}
	}
	if h.Disk.FreeBytes < 0 || h.Spool.DeadLetters < 0 || h.Spool.QueuedEvidence < 0 || h.Spool.QueuedRecords < 0 {
		return Errorf(EINVALID, "heartbeat: negative counts")
	}
	return nil
}
