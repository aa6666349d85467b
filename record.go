package plume

import "time"

// RecordKind says what a record carries.
type RecordKind string

const (
	RecordPass    RecordKind = "pass"         // one pass, with verdict, no media
	RecordStatus  RecordKind = "status"       // analyser device status
	RecordAudit   RecordKind = "audit"        // calibration or standard-gas audit
	RecordSummary RecordKind = "summary"      // pass records compacted under disk pressure
	RecordCount   RecordKind = "camera_count" // vehicles the cameras counted over an interval
)

// Record is the compact, media-free record the edge sends to central for
// statistics. Every pass produces one, violation or not.
type Record struct {
	Kind    RecordKind    `json:"kind"`
	ID      string        `json:"id"` // unique per station; the pass ID for passes
	Station StationID     `json:"station"`
	Time    time.Time     `json:"time"`
	Pass    *Pass         `json:"pass,omitempty"`
	Status  *DeviceStatus `json:"status,omitempty"`
	Audit   *Audit        `json:"audit,omitempty"`
	Summary *PassSummary  `json:"summary,omitempty"`
	Count   *VehicleCount `json:"count,omitempty"`
}

// VehicleCount is how many vehicles the station's cameras saw cross the
// trigger line in [From, To). Central compares it with the analyser's
// passes (the camera-counts integrity rule). Only intervals a camera
// watched throughout are counted; with several cameras on the same lanes
// it is the largest count of the cameras that did.
type VehicleCount struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Vehicles int       `json:"vehicles"`
	Cameras  []string  `json:"cameras,omitempty"` // the cameras that watched the whole interval
}

// MaxCountInterval bounds a VehicleCount's interval.
const MaxCountInterval = 24 * time.Hour

// PassSummary stands in for plain pass records that the edge compacted when
// its disk ran short. Counts are kept; per-pass detail is gone.
type PassSummary struct {
	From      time.Time       `json:"from"`
	To        time.Time       `json:"to"`
	Count     int             `json:"count"`
	ByOutcome map[Outcome]int `json:"by_outcome"`
}

// Validate checks a record received from outside.
func (r *Record) Validate() error {
	if err := r.Station.Validate(); err != nil {
		return err
	}
	if r.ID == "" || len(r.ID) > 96 {
		return Errorf(EINVALID, "record: bad ID %q", r.ID)
	}
	if r.Time.IsZero() {
		return Errorf(EINVALID, "record %s: time is missing", r.ID)
	}
	switch r.Kind {
	case RecordPass:
		if r.Pass == nil {
			return Errorf(EINVALID, "record %s: pass is missing", r.ID)
		}
		if r.Pass.Station != r.Station || string(r.Pass.ID) != r.ID {
			return Errorf(EINVALID, "record %s: pass does not match the record", r.ID)
		}
		return r.Pass.Validate()
	case RecordStatus:
		if r.Status == nil || !r.Status.Flag.Valid() {
			return Errorf(EINVALID, "record %s: status missing or bad flag", r.ID)
		}
	case RecordAudit:
		if r.Audit == nil || (r.Audit.Kind != AuditCalibration && r.Audit.Kind != AuditStandardGas) {
			return Errorf(EINVALID, "record %s: audit missing or bad kind", r.ID)
		}
	case RecordSummary:
		if r.Summary == nil || r.Summary.Count < 0 {
			return Errorf(EINVALID, "record %s: summary missing", r.ID)
		}
	case RecordCount:
		c := r.Count
		if c == nil || !c.To.After(c.From) || c.To.Sub(c.From) > MaxCountInterval || c.Vehicles < 0 || len(c.Cameras) > 16 {
			return Errorf(EINVALID, "record %s: camera count missing, or a bad interval or count", r.ID)
		}
	default:
		return Errorf(EINVALID, "record %s: unknown kind %q", r.ID, r.Kind)
	}
	return nil
}
