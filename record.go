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

// PassSummary stands in for plain pass records that the edge folded when
// central had been unreachable and its records budget was spent. Central
// shows it as a gap in the pass rows, with Cause. Passes keeps, in time
// order, what the integrity rules read from each folded pass (its values
// per pollutant); plates, validity details and ambient are gone.
type PassSummary struct {
	From      time.Time       `json:"from"`
	To        time.Time       `json:"to"`
	Count     int             `json:"count"`
	ByOutcome map[Outcome]int `json:"by_outcome"`
	Cause     string          `json:"cause,omitempty"`
	Passes    []FoldedPass    `json:"passes,omitempty"`
}

// FoldedPass is one pass inside a PassSummary.
type FoldedPass struct {
	ID         PassID    `json:"id"`
	Time       time.Time `json:"time"`
	Lane       int       `json:"lane"`
	Outcome    Outcome   `json:"outcome"`
	Gases      Gases     `json:"gases"`
	Opacity    float64   `json:"opacity"`
	Ringelmann float64   `json:"ringelmann"`
	SpeedKmh   float64   `json:"speed_kmh"`
	AccelMS2   float64   `json:"accel_ms2"`
}

// Fold returns the part of p a PassSummary keeps.
func (p *Pass) Fold() FoldedPass {
	r := &p.Reading
	return FoldedPass{ID: p.ID, Time: r.Time, Lane: r.Lane, Outcome: p.Verdict.Outcome, Gases: r.Gases,
		Opacity: r.Opacity, Ringelmann: r.Ringelmann, SpeedKmh: r.SpeedKmh, AccelMS2: r.AccelMS2}
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
		if r.Summary == nil || r.Summary.Count < 0 || len(r.Summary.Passes) > r.Summary.Count {
			return Errorf(EINVALID, "record %s: summary missing, or more passes than its count", r.ID)
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
