package central

import (
	"sort"
	"time"

	"github.com/plume-emissions/plume"
)

// CaseChange is what goes with a case update, in the same transaction:
// custody entries (appended to the case's chain), audit events (appended to
// the audit log) and jobs (queued). At is when the change happened; the
// dashboard's counters are kept by its day.
type CaseChange struct {
	At      time.Time
	Custody []CustodyEntry
	Audit   []AuditEvent
	Jobs    []Job
}

// VehicleEntry is one pass of one vehicle (by plate) in the vehicle file
// (一车一档): every station, newest first. Stores write it from pass
// records and from evidence, under the same key, so each pass is listed
// once.
type VehicleEntry struct {
	Plate    string            `json:"plate"`
	PassID   plume.PassID      `json:"pass_id"`
	Station  plume.StationID   `json:"station"`
	Time     time.Time         `json:"time"`
	Outcome  plume.Outcome     `json:"outcome"`
	Exceeded []plume.Pollutant `json:"exceeded,omitempty"`
	Judged   []plume.Pollutant `json:"judged,omitempty"` // pollutants the verdict checked (valid passes)
	Smoke    int               `json:"smoke,omitempty"`  // camera Ringelmann grade when smoky
	CaseID   plume.CaseID      `json:"case_id,omitempty"`
	Summary  string            `json:"summary,omitempty"`
}

// NewVehicleEntry returns the vehicle-file entry of a pass, or nil when no
// plate was read.
func NewVehicleEntry(p *plume.Pass) *VehicleEntry {
	if p.Plate == nil || p.Plate.Text == "" {
		return nil
	}
	e := &VehicleEntry{Plate: p.Plate.Text, PassID: p.ID, Station: p.Station, Time: p.Reading.Time.UTC(), Outcome: p.Verdict.Outcome, Summary: p.Verdict.Summary}
	if p.Verdict.Outcome != plume.OutcomeInvalid {
		for _, c := range p.Verdict.Checks {
			e.Judged = append(e.Judged, c.Pollutant)
			if c.Exceeded {
				e.Exceeded = append(e.Exceeded, c.Pollutant)
			}
		}
	}
	if s := p.SmokeSeen; s != nil && s.Smoky {
		e.Smoke = s.Grade
	}
	return e
}

// DayStats counts one station's activity on one local day (China Standard
// Time). The dashboard sums them.
type DayStats struct {
	Day     string          `json:"day"` // YYYY-MM-DD, local
	Station plume.StationID `json:"station"`

	Passes      int                     `json:"passes"`
	Valid       int                     `json:"valid"`
	Invalid     int                     `json:"invalid"`
	Exceed      int                     `json:"exceed"`
	ByPollutant map[plume.Pollutant]int `json:"by_pollutant,omitempty"`
	Smoke       int                     `json:"smoke"` // cases with camera black smoke

	Cases        int                        `json:"cases"`
	Warnings     int                        `json:"warnings"`
	Enforcements int                        `json:"enforcements"`
	Reviewed     int                        `json:"reviewed"` // first decisions
	Approved     int                        `json:"approved"` // final approvals
	Rejected     int                        `json:"rejected"`
	Exported     int                        `json:"exported"`
	Dispositions map[DispositionOutcome]int `json:"dispositions,omitempty"`
	// ExportSeconds sums capture-to-export times of the cases exported
	// that day; ExportBuckets counts them by hours (see ExportBucketHours).
	ExportSeconds float64 `json:"export_seconds"`
	ExportBuckets []int   `json:"export_buckets,omitempty"`
}

// ExportBucketHours are the upper bounds of the capture-to-export
// histogram; the last bucket is everything slower.
var ExportBucketHours = []float64{1, 4, 24, 72}

// StatsZone is the zone of dashboard days (China Standard Time).
var StatsZone = caseZone

// DayOf returns the local day key of t.
func DayOf(t time.Time) string { return t.In(StatsZone).Format("2006-01-02") }

// AddPass counts one pass.
func (d *DayStats) AddPass(p *plume.Pass) {
	d.Passes++
	switch p.Verdict.Outcome {
	case plume.OutcomeInvalid:
		d.Invalid++
	case plume.OutcomeExceed:
		d.Valid++
		d.Exceed++
		for _, c := range p.Verdict.Exceedances() {
			if d.ByPollutant == nil {
				d.ByPollutant = map[plume.Pollutant]int{}
			}
			d.ByPollutant[c.Pollutant]++
		}
	default:
		d.Valid++
	}
}

// AddTransition counts a case moving from one state to another at the
// day of d (a new case has from == "").
func (d *DayStats) AddTransition(before, after *Case) {
	if before == nil {
		d.Cases++
		switch after.Kind {
		case KindWarning:
			d.Warnings++
		case KindEnforcement:
			d.Enforcements++
		}
		if after.SmokeGrade > 0 {
			d.Smoke++
		}
		return
	}
	from, to := before.Status, after.Status
	if from == to {
		return
	}
	if from == CaseOpen && (to == CaseApproved || to == CaseSecondReview || to == CaseRejected) {
		d.Reviewed++
	}
	switch to {
	case CaseApproved:
		d.Approved++
	case CaseRejected:
		d.Rejected++
	case CaseExported:
		d.Exported++
		if after.Export != nil && !after.Export.SentAt.IsZero() {
			secs := after.Export.SentAt.Sub(after.CapturedAt).Seconds()
			d.ExportSeconds += secs
			if len(d.ExportBuckets) == 0 {
				d.ExportBuckets = make([]int, len(ExportBucketHours)+1)
			}
			i := sort.SearchFloat64s(ExportBucketHours, secs/3600)
			d.ExportBuckets[i]++
		}
	case CaseClosed:
		if after.Disposition != nil {
			if d.Dispositions == nil {
				d.Dispositions = map[DispositionOutcome]int{}
			}
			d.Dispositions[after.Disposition.Outcome]++
		}
	}
}

// Merge adds o's counts to d.
func (d *DayStats) Merge(o *DayStats) {
	d.Passes += o.Passes
	d.Valid += o.Valid
	d.Invalid += o.Invalid
	d.Exceed += o.Exceed
	d.Smoke += o.Smoke
	d.Cases += o.Cases
	d.Warnings += o.Warnings
	d.Enforcements += o.Enforcements
	d.Reviewed += o.Reviewed
	d.Approved += o.Approved
	d.Rejected += o.Rejected
	d.Exported += o.Exported
	d.ExportSeconds += o.ExportSeconds
	for k, v := range o.ByPollutant {
		if d.ByPollutant == nil {
			d.ByPollutant = map[plume.Pollutant]int{}
		}
		d.ByPollutant[k] += v
	}
	for k, v := range o.Dispositions {
		if d.Dispositions == nil {
			d.Dispositions = map[DispositionOutcome]int{}
		}
		d.Dispositions[k] += v
	}
	if len(o.ExportBuckets) > 0 && len(d.ExportBuckets) == 0 {
		d.ExportBuckets = make([]int, len(o.ExportBuckets))
	}
	for i, v := range o.ExportBuckets {
		if i < len(d.ExportBuckets) {
			d.ExportBuckets[i] += v
		}
	}
}
