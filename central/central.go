package central

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/plume-emissions/plume"
)

// Sentinel errors shared by every Store and BlobStore implementation. Each is
// a *plume.Error, so plume.ErrorCode maps it to the right API status even
// when wrapped.
var (
	// ErrNotFound is returned when a station, evidence item, case, job or
	// blob does not exist.
	ErrNotFound = &plume.Error{Code: plume.ENOTFOUND, Message: "not found"}
	// ErrConflict is returned when an ID is already taken by different
	// content: a different manifest under the same evidence ID, or a second
	// enrollment of a station.
	ErrConflict = &plume.Error{Code: plume.ECONFLICT, Message: "conflict"}
	// ErrNoJob is returned by Store.ClaimJob when no job is ready.
	ErrNoJob = &plume.Error{Code: plume.ENOTFOUND, Message: "no job ready"}
	// ErrDigestMismatch is returned by BlobStore.Put when the bytes do not
	// hash to the given SHA-256. Nothing is stored.
	ErrDigestMismatch = &plume.Error{Code: plume.EINVALID, Message: "content does not match its sha256"}
	// ErrSizeMismatch is returned by BlobStore.Put when the reader yields
	// more or fewer bytes than the given size. Nothing is stored.
	ErrSizeMismatch = &plume.Error{Code: plume.EINVALID, Message: "content does not match its size"}
)

// MissingMediaError is returned when an evidence manifest lists media that
// central does not hold (with the listed digest and size). The API answers
// 409 missing_media with the Missing list beside the error.
type MissingMediaError struct {
	Missing []string // lowercase hex SHA-256 digests
}

func (e *MissingMediaError) Error() string {
	return fmt.Sprintf("missing media: %s", strings.Join(e.Missing, ", "))
}

// Unwrap gives the error its plume code.
func (e *MissingMediaError) Unwrap() error {
	return plume.Errorf(plume.EMISSINGMEDIA, "%d media item(s) not held; upload them, then retry the manifest", len(e.Missing))
}

// Station is a roadside station enrolled at central.
type Station struct {
	ID         plume.StationID   `json:"id"`
	Name       string            `json:"name,omitempty"`
	PublicKey  ed25519.PublicKey `json:"public_key"` // base64 in JSON
	EnrolledAt time.Time         `json:"enrolled_at"`
	Revoked    bool              `json:"revoked"`
	// Latitude and Longitude place the station (WGS 84 degrees; both 0
	// when unknown), for the cloned-plate check and reports.
	Latitude  float64 `json:"latitude,omitempty"`
	Longitude float64 `json:"longitude,omitempty"`
}

// Located reports whether the station's coordinates are known.
func (s *Station) Located() bool { return s.Latitude != 0 || s.Longitude != 0 }

// StoredEvidence is one evidence manifest as received: the exact bytes the
// station signed at capture, its signature, and the key that verified it.
type StoredEvidence struct {
	ID         plume.EvidenceID  `json:"id"`
	Station    plume.StationID   `json:"station"`
	Manifest   []byte            `json:"manifest"`    // verbatim signed bytes
	StationSig []byte            `json:"station_sig"` // Ed25519 signature of Manifest
	StationKey ed25519.PublicKey `json:"station_key"` // the key that verified StationSig at ingest
	ReceivedAt time.Time         `json:"received_at"`
	CaseID     plume.CaseID      `json:"case_id,omitempty"` // empty unless the pass is a violation candidate
}

// CaseStatus is where a case stands.
//
//	open ──approve──► approved ──export──► exported ──disposition──► closed
//	  │  └─approve (second review on)─► second_review ─confirm─► approved
//	  │                                       └─return─► open
//	  └─reject──► rejected
type CaseStatus string

// Case states.
const (
	CaseOpen         CaseStatus = "open"          // created from a violation candidate, awaiting review
	CaseSecondReview CaseStatus = "second_review" // approved once, awaiting a supervisor
	CaseApproved     CaseStatus = "approved"      // approved; the export is queued
	CaseExported     CaseStatus = "exported"      // the police acknowledged receipt
	CaseClosed       CaseStatus = "closed"        // the police reported their disposition
	CaseRejected     CaseStatus = "rejected"      // not enforced; the reason is recorded
)

// CaseStatuses lists every state in workflow order.
var CaseStatuses = []CaseStatus{CaseOpen, CaseSecondReview, CaseApproved, CaseExported, CaseClosed, CaseRejected}

// Valid reports whether s is a known state.
func (s CaseStatus) Valid() bool {
	for _, v := range CaseStatuses {
		if v == s {
			return true
		}
	}
	return false
}

// Label returns the state's bilingual label.
func (s CaseStatus) Label() string {
	switch s {
	case CaseOpen:
		return "待审核 Open"
	case CaseSecondReview:
		return "待复核 2nd review"
	case CaseApproved:
		return "已批准 Approved"
	case CaseExported:
		return "已移送 Exported"
	case CaseClosed:
		return "已结案 Closed"
	case CaseRejected:
		return "已驳回 Rejected"
	}
	return string(s)
}

// CaseKind is what the repeat-exceedance rule made of a case (HJ 845-2017:
// the same pollutant exceeding Count times in a row within Window).
type CaseKind string

// Case kinds.
const (
	KindWarning     CaseKind = "warning"     // a first exceedance: the vehicle is warned
	KindEnforcement CaseKind = "enforcement" // a confirmed repeat: the vehicle is over the limit
	KindUnlinked    CaseKind = "unlinked"    // no plate was read: the pass cannot be linked to earlier ones
	KindSmoke       CaseKind = "smoke"       // camera black smoke (黑烟车) without an analyser exceedance
)

// Label returns the kind's bilingual label.
func (k CaseKind) Label() string {
	switch k {
	case KindWarning:
		return "首次超标·警告 Warning"
	case KindEnforcement:
		return "复核超标·处罚 Enforcement"
	case KindUnlinked:
		return "无号牌·无法关联 Unlinked"
	case KindSmoke:
		return "黑烟车 Black smoke"
	}
	return string(k)
}

// Review is one officer decision on a case.
type Review struct {
	Time     time.Time `json:"time"`
	Officer  string    `json:"officer"`
	Name     string    `json:"name,omitempty"`
	Role     Role      `json:"role"`
	Decision string    `json:"decision"` // "approve", "reject", "confirm", "return", "plate"
	Reason   string    `json:"reason,omitempty"`
	Comment  string    `json:"comment,omitempty"`
}

// Review decisions.
const (
	DecisionApprove = "approve"
	DecisionReject  = "reject"
	DecisionConfirm = "confirm" // a supervisor's second review agrees
	DecisionReturn  = "return"  // a supervisor's second review sends the case back
	DecisionPlate   = "plate"   // the plate was corrected
)

// ExportStatus says where a case's export to the police stands.
type ExportStatus string

// Export states.
const (
	ExportQueued  ExportStatus = "queued"  // waiting for the export worker (or a retry)
	ExportSent    ExportStatus = "sent"    // the police acknowledged with a receipt
	ExportFailing ExportStatus = "failing" // attempts failed; still retrying
	ExportFailed  ExportStatus = "failed"  // refused for good; retry by hand
)

// Export is a case's export to the traffic police.
type Export struct {
	Status      ExportStatus `json:"status"`
	Adapter     string       `json:"adapter,omitempty"`
	Key         string       `json:"idempotency_key"`
	QueuedAt    time.Time    `json:"queued_at"`
	Attempts    int          `json:"attempts"`
	LastError   string       `json:"last_error,omitempty"`
	LastAttempt time.Time    `json:"last_attempt,omitzero"`
	Receipt     string       `json:"receipt,omitempty"` // the police system's receipt ID
	SentAt      time.Time    `json:"sent_at,omitzero"`
	PackageSHA  string       `json:"package_sha256,omitempty"` // the package sent
}

// DispositionOutcome is what the police did with a case.
type DispositionOutcome string

// Police dispositions (central/export/POLICE-CONTRACT.md).
const (
	DispositionPenalty      DispositionOutcome = "penalty_issued"
	DispositionNotProcessed DispositionOutcome = "not_processed"
	DispositionNoVehicle    DispositionOutcome = "vehicle_not_found"
)

// Valid reports whether d is a known outcome.
func (d DispositionOutcome) Valid() bool {
	return d == DispositionPenalty || d == DispositionNotProcessed || d == DispositionNoVehicle
}

// Label returns the outcome's bilingual label.
func (d DispositionOutcome) Label() string {
	switch d {
	case DispositionPenalty:
		return "已处罚 Penalty issued"
	case DispositionNotProcessed:
		return "不予处理 Not processed"
	case DispositionNoVehicle:
		return "查无此车 Vehicle not found"
	}
	return string(d)
}

// Disposition is the police's report on a case; it closes the case.
type Disposition struct {
	Outcome    DispositionOutcome `json:"outcome"`
	Reason     string             `json:"reason,omitempty"`
	Reference  string             `json:"reference,omitempty"` // the police decision number
	DecidedAt  time.Time          `json:"decided_at"`
	ReceivedAt time.Time          `json:"received_at"`
}

// Case is a violation candidate at central: one evidence item, its
// violation summary and its evidence package.
type Case struct {
	ID          plume.CaseID      `json:"id"`
	Number      string            `json:"number"` // human case number, e.g. PLM-20261128-000042
	EvidenceID  plume.EvidenceID  `json:"evidence_id"`
	Station     plume.StationID   `json:"station"`
	PassID      plume.PassID      `json:"pass_id"`
	Plate       string            `json:"plate,omitempty"`
	PlateColour plume.PlateColour `json:"plate_colour,omitempty"`
	Pollutants  []plume.Pollutant `json:"pollutants,omitempty"`  // pollutants whose limit was exceeded
	SmokeGrade  int               `json:"smoke_grade,omitempty"` // camera Ringelmann grade, when smoke was seen
	Profile     string            `json:"profile"`               // limit profile as name@version
	Standard    string            `json:"standard,omitempty"`
	Summary     string            `json:"summary"` // the verdict's explanation
	Status      CaseStatus        `json:"status"`
	CapturedAt  time.Time         `json:"captured_at"` // the time of the pass (the analyser reading)
	CreatedAt   time.Time         `json:"created_at"`

	// Kind is what the repeat-exceedance rule made of the case, and
	// RepeatNote explains it (which earlier passes, which window).
	Kind       CaseKind `json:"kind,omitempty"`
	RepeatNote string   `json:"repeat_note,omitempty"`
	// PlateRead is the plate as the station read it, kept when an officer
	// corrects Plate.
	PlateRead   string       `json:"plate_read,omitempty"`
	Reviews     []Review     `json:"reviews,omitempty"`
	Export      *Export      `json:"export,omitempty"`
	Disposition *Disposition `json:"disposition,omitempty"`
	UpdatedAt   time.Time    `json:"updated_at,omitzero"`
	// Revision counts changes that the evidence package must show (plate
	// corrections, decisions); PackageRevision is the revision the built
	// package shows.
	Revision        int `json:"revision,omitempty"`
	PackageRevision int `json:"package_revision,omitempty"`

	PackageSHA256  string    `json:"package_sha256,omitempty"`
	PackageSize    int64     `json:"package_size,omitempty"`
	PackageBuiltAt time.Time `json:"package_built_at,omitzero"`

	// Flags mark evidence a court could question (clock, audits), set at
	// ingest; a blocking flag keeps the case from approval and export.
	Flags []CaseFlag `json:"flags,omitempty"`
}

// Blocked returns the first blocking flag, or nil.
func (c *Case) Blocked() *CaseFlag {
	for i := range c.Flags {
		if c.Flags[i].Blocks {
			return &c.Flags[i]
		}
	}
	return nil
}

// PackageCurrent reports whether the built package shows the case as it
// stands.
func (c *Case) PackageCurrent() bool {
	return c.PackageSHA256 != "" && c.PackageRevision == c.Revision
}

// Exceeds reports whether the case lists pollutant p as exceeded.
func (c *Case) Exceeds(p plume.Pollutant) bool {
	for _, q := range c.Pollutants {
		if q == p {
			return true
		}
	}
	return false
}

// NewCase returns the case for a violation-candidate manifest. The store
// fills in ID, Number and CreatedAt.
func NewCase(m *plume.Manifest) *Case {
	c := &Case{
		EvidenceID: m.ID,
		Station:    m.Station,
		PassID:     m.Pass.ID,
		Status:     CaseOpen,
		// One clock for the case: the time of the pass, which the images'
		// strips, the sheet and the vehicle file show too (m.CapturedAt
		// is when the station signed, which may be seconds later).
		CapturedAt: m.Pass.Reading.Time,
		Standard:   m.Pass.Verdict.Standard,
		Summary:    m.Pass.Verdict.Summary,
	}
	if v := m.Pass.Verdict; v.Profile != "" {
		c.Profile = v.Profile + "@" + v.ProfileVersion
	}
	if p := m.Pass.Plate; p != nil {
		c.PlateColour, c.PlateRead = p.Colour, p.Text
		// A doubtful read is kept as the station's reading but not used as
		// the case's plate: an officer reads it from the images, so nobody
		// is accused on a guess.
		if p.Confidence >= MinPlateConfidence {
			c.Plate = p.Text
		}
	}
	for _, ck := range m.Pass.Verdict.Exceedances() {
		c.Pollutants = append(c.Pollutants, ck.Pollutant)
	}
	if s := m.Pass.SmokeSeen; s != nil && s.Smoky {
		c.SmokeGrade = s.Grade
		// The summary leads with what made this a case: camera smoke, and
		// the analyser's verdict beside it.
		smoke := fmt.Sprintf("black smoke: Ringelmann grade %d on camera (confidence %.0f%%)", s.Grade, 100*s.Confidence)
		switch {
		case cameraJudged(m.Pass.Verdict):
			// plume.Judge already led the verdict with the camera's grade.
		case m.Pass.Verdict.Outcome == plume.OutcomeExceed:
			c.Summary = smoke + "; " + c.Summary
		default:
			c.Summary = smoke + "; analyser " + c.Summary
		}
	}
	return c
}

// cameraJudged reports whether the verdict holds the camera's smoke grade
// (edges that judge with plume.Judge).
func cameraJudged(v plume.Verdict) bool {
	for _, c := range v.Checks {
		if c.Source == plume.SourceCamera {
			return true
		}
	}
	return false
}

// MinPlateConfidence is the whole-plate confidence below which the
// station's plate read is not taken as the case's plate.
const MinPlateConfidence = 0.5

// caseZone is the zone of the date in case numbers: the bureau's local
// date (China Standard Time, UTC+8, no daylight saving). A fixed zone keeps
// the binary free of tzdata.
var caseZone = time.FixedZone("CST", 8*3600)

// FormatCaseID returns the case ID for the store's seq-th case. IDs sort in
// creation order.
func FormatCaseID(seq uint64) plume.CaseID { return plume.CaseID(fmt.Sprintf("C%011d", seq)) }

// FormatCaseNumber returns the human case number of the seq-th case,
// created at t: PLM-<local date>-<seq, at least 6 digits>.
func FormatCaseNumber(t time.Time, seq uint64) string {
	return fmt.Sprintf("PLM-%s-%06d", t.In(caseZone).Format("20060102"), seq)
}

// PassRow is one pass kept for statistics (from a pass record).
type PassRow struct {
	Seq        uint64          `json:"-"` // store order; the paging cursor
	ID         plume.PassID    `json:"id"`
	Station    plume.StationID `json:"station"`
	Time       time.Time       `json:"time"`
	Lane       int             `json:"lane"`
	Fuel       plume.Fuel      `json:"fuel,omitempty"`
	Outcome    plume.Outcome   `json:"outcome"`
	Plate      string          `json:"plate,omitempty"`
	Profile    string          `json:"profile,omitempty"`
	Summary    string          `json:"summary,omitempty"`
	ReceivedAt time.Time       `json:"received_at"` // when central stored it
}

// NewPassRow returns the statistics row of a pass.
func NewPassRow(p *plume.Pass, receivedAt time.Time) *PassRow {
	row := &PassRow{
		ID: p.ID, Station: p.Station, Time: p.Reading.Time, Lane: p.Reading.Lane, Fuel: p.Reading.Fuel,
		Outcome: p.Verdict.Outcome, Summary: p.Verdict.Summary, ReceivedAt: receivedAt,
	}
	if p.Verdict.Profile != "" {
		row.Profile = p.Verdict.Profile + "@" + p.Verdict.ProfileVersion
	}
	if p.Plate != nil {
		row.Plate = p.Plate.Text
	}
	return row
}

// CustodyGenesis is the prev_sha256 of the first custody entry.
const CustodyGenesis = "0000000000000000000000000000000000000000000000000000000000000000"

// CustodyEntry is one link in a case's chain of custody. The log only ever
// grows: each entry carries the SHA-256 of the previous entry's encoded
// line (EncodeCustody), so removing or editing an entry breaks the chain.
type CustodyEntry struct {
	Seq        int64     `json:"seq"` // 1-based
	Time       time.Time `json:"time"`
	Actor      string    `json:"actor"`  // "station:<id>", "central", later "officer:<id>"
	Action     string    `json:"action"` // e.g. "captured and signed at station"
	Detail     string    `json:"detail,omitempty"`
	PrevSHA256 string    `json:"prev_sha256"`
}

// Custody actions written by central.
const (
	ActionCaptured     = "captured and signed at station"
	ActionReceived     = "received and verified at central"
	ActionCaseOpened   = "case opened"
	ActionPackageBuilt = "package built"
	ActionPlateCorrect = "plate corrected"
	ActionApproved     = "approved"
	ActionConfirmed    = "second review confirmed"
	ActionReturned     = "second review returned"
	ActionRejected     = "rejected"
	ActionExported     = "exported to the traffic police"
	ActionDisposition  = "police disposition received"
)

// ActionLabel returns a custody action in Chinese with its English words
// (the recorded value, which the custody chain hashes) beside it.
func ActionLabel(a string) string {
	zh := map[string]string{
		ActionCaptured: "站点采集并签名", ActionReceived: "中心接收并校验", ActionCaseOpened: "立案",
		ActionPackageBuilt: "生成证据包", ActionPlateCorrect: "号牌更正", ActionApproved: "批准",
		ActionConfirmed: "复核通过", ActionReturned: "复核退回", ActionRejected: "驳回",
		ActionExported: "移送交警", ActionDisposition: "收到交警处理结果",
	}[a]
	if zh == "" {
		return a
	}
	return zh + " " + a
}

// EncodeCustody returns the canonical line of e (compact JSON, no newline):
// what custody.jsonl holds and what the next entry's PrevSHA256 hashes.
func EncodeCustody(e CustodyEntry) []byte {
	e.Time = e.Time.UTC()
	b, err := json.Marshal(e)
	if err != nil { // cannot happen: every field is a plain value
		panic(fmt.Sprintf("encode custody entry: %v", err))
	}
	return b
}

// CustodyHash returns the lowercase hex SHA-256 of an encoded custody line.
func CustodyHash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// ChainCustody links e after last (nil for the first entry): it sets Seq
// and PrevSHA256 and normalises the time to UTC.
func ChainCustody(last *CustodyEntry, e CustodyEntry) CustodyEntry {
	e.Time = e.Time.UTC()
	if last == nil {
		e.Seq, e.PrevSHA256 = 1, CustodyGenesis
		return e
	}
	e.Seq, e.PrevSHA256 = last.Seq+1, CustodyHash(EncodeCustody(*last))
	return e
}

// JobKind says what a queued job does.
type JobKind string

// Job kinds.
const (
	JobBuildPackage JobKind = "build-package" // build (or rebuild) a case's evidence package
	JobExport       JobKind = "export"        // send a case to the traffic police
)

// Job is one item of durable work. A claimed job is leased; if its worker
// dies the lease runs out and another worker picks it up, so every job must
// be idempotent.
type Job struct {
	ID         uint64       `json:"id"`
	Kind       JobKind      `json:"kind"`
	CaseID     plume.CaseID `json:"case_id"`
	Attempts   int          `json:"attempts"`
	CreatedAt  time.Time    `json:"created_at"`
	NotBefore  time.Time    `json:"not_before,omitzero"`
	LeaseUntil time.Time    `json:"lease_until,omitzero"`
	LastError  string       `json:"last_error,omitempty"`
}

// JobGaveUp is the NotBefore of a job whose worker gave up on it after its
// last allowed attempt (a poison case, say). Such a job is never claimed
// again on its own: it stays in the queue, visible with its last error,
// until an administrator retries it. A fixed far-future time keeps the
// failed state in the fields every store already has.
var JobGaveUp = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

// Failed reports whether the job's worker gave up on it (JobGaveUp).
func (j Job) Failed() bool { return !j.NotBefore.Before(JobGaveUp) }

// PassFilter selects passes. Zero fields match everything.
type PassFilter struct {
	Station  plume.StationID
	Stations []plume.StationID // an officer's scope; nil: all
	Outcome  plume.Outcome
	Limit    int    // at most this many; the store caps it (MaxPageSize)
	Cursor   string // from a previous page's next cursor; "" for the first page
}

// CaseFilter selects cases. Zero fields match everything.
type CaseFilter struct {
	Station plume.StationID
	// Stations, when set, limits the cases to these stations (an
	// officer's scope; see Officer.ScopeCases).
	Stations []plume.StationID
	Status   CaseStatus
	Kind     CaseKind
	// ExcludeKind, when set, leaves out the cases of that kind (the review
	// queue sets aside unlinked cases by default).
	ExcludeKind CaseKind
	Pollutant   plume.Pollutant
	Plate       string    // exact plate
	MinGrade    int       // camera smoke grade at least this
	From, To    time.Time // captured in [From, To)
	Oldest      bool      // oldest first (triage order) instead of newest first
	// SortBy, when set, orders the cases by that column instead, ties
	// broken by case ID in the same direction (a stable order, so pages
	// neither repeat nor skip a case); Descending reverses it. Oldest is
	// then ignored. The cursor of a sorted page is a SortCursor.
	SortBy     CaseSortKey
	Descending bool
	Limit      int
	Cursor     string
}

// CaseSortKey names a column the review queue sorts by.
type CaseSortKey string

// The queue's sort columns.
const (
	SortCaptured CaseSortKey = "captured" // capture time
	SortStation  CaseSortKey = "station"
	SortPlate    CaseSortKey = "plate"
	SortKind     CaseSortKey = "kind"  // violation kind (warning, enforcement)
	SortGrade    CaseSortKey = "grade" // camera smoke grade
	SortStatus   CaseSortKey = "status"
)

// CaseSortKeys lists the sort columns.
var CaseSortKeys = []CaseSortKey{SortCaptured, SortStation, SortPlate, SortKind, SortGrade, SortStatus}

// Valid reports whether k is a sort column ("" is not).
func (k CaseSortKey) Valid() bool { return slices.Contains(CaseSortKeys, k) }

// numeric reports whether k's values are numbers.
func (k CaseSortKey) numeric() bool { return k == SortCaptured || k == SortGrade }

// SortValue returns the summary's value of column k: the number for
// numeric columns, else the text.
func (k CaseSortKey) SortValue(s CaseSummary) (int64, string) {
	switch k {
	case SortCaptured:
		return s.CapturedAt.UnixNano(), ""
	case SortGrade:
		return int64(s.Grade), ""
	case SortStation:
		return 0, string(s.Station)
	case SortPlate:
		return 0, s.Plate
	case SortKind:
		return 0, string(s.Kind)
	case SortStatus:
		return 0, string(s.Status)
	}
	return 0, ""
}

// ParseCaseSort sets f's order from a sort parameter: "" or "newest"
// (newest first), "oldest", a column of CaseSortKeys (ascending), or
// "-column" (descending).
func ParseCaseSort(f *CaseFilter, sort string) error {
	switch sort {
	case "", "newest":
		return nil
	case "oldest":
		f.Oldest = true
		return nil
	}
	key, desc := strings.CutPrefix(sort, "-")
	if !CaseSortKey(key).Valid() {
		return plume.Errorf(plume.EINVALID, "cannot sort by %q", sort)
	}
	f.SortBy, f.Descending = CaseSortKey(key), desc
	return nil
}

// SortCursor is the position of a case in a sorted page walk: its ID and
// its value of the sort column when the page was read, so the next page
// starts right after it even if the case changed since.
type SortCursor struct {
	ID   plume.CaseID
	Num  int64
	Text string
}

// EncodeSortCursor returns the cursor after the case s in column k.
func EncodeSortCursor(k CaseSortKey, s CaseSummary) string {
	n, t := k.SortValue(s)
	v := t
	if k.numeric() {
		v = strconv.FormatInt(n, 10)
	}
	return string(s.ID) + "." + base64.RawURLEncoding.EncodeToString([]byte(v))
}

// DecodeSortCursor parses a sorted page's cursor for column k.
func DecodeSortCursor(k CaseSortKey, cursor string) (SortCursor, error) {
	id, v, ok := strings.Cut(cursor, ".")
	b, err := base64.RawURLEncoding.DecodeString(v)
	if !ok || err != nil || id == "" || len(cursor) > 96 || !utf8.Valid(b) {
		return SortCursor{}, plume.Errorf(plume.EINVALID, "bad cursor")
	}
	c := SortCursor{ID: plume.CaseID(id)}
	if !k.numeric() {
		c.Text = string(b)
		return c, nil
	}
	if c.Num, err = strconv.ParseInt(string(b), 10, 64); err != nil {
		return SortCursor{}, plume.Errorf(plume.EINVALID, "bad cursor")
	}
	return c, nil
}

// CompareSorted orders two summaries by the filter's sort column, then by
// ID, in the filter's direction: negative if a comes first.
func (f *CaseFilter) CompareSorted(a, b CaseSummary) int {
	an, at := f.SortBy.SortValue(a)
	bn, bt := f.SortBy.SortValue(b)
	return f.compare(an, at, a.ID, bn, bt, b.ID)
}

// AfterCursor reports whether s comes after the cursor's position.
func (f *CaseFilter) AfterCursor(s CaseSummary, c SortCursor) bool {
	n, t := f.SortBy.SortValue(s)
	return f.compare(n, t, s.ID, c.Num, c.Text, c.ID) > 0
}

func (f *CaseFilter) compare(an int64, at string, aid plume.CaseID, bn int64, bt string, bid plume.CaseID) int {
	r := cmp.Compare(an, bn)
	if r == 0 {
		r = strings.Compare(at, bt)
	}
	if r == 0 {
		r = strings.Compare(string(aid), string(bid))
	}
	if f.Descending {
		return -r
	}
	return r
}

// Match reports whether c matches the filter (other than paging).
func (f *CaseFilter) Match(c *Case) bool {
	return f.MatchSummary(c.Summarize())
}

// CaseSummary is the part of a case that list filters look at; stores keep
// it in their indexes so a filter need not decode whole cases.
type CaseSummary struct {
	ID         plume.CaseID
	Station    plume.StationID
	Status     CaseStatus
	Kind       CaseKind
	Plate      string
	Grade      int
	Pollutants []plume.Pollutant
	CapturedAt time.Time
}

// Summarize returns the case's summary.
func (c *Case) Summarize() CaseSummary {
	return CaseSummary{ID: c.ID, Station: c.Station, Status: c.Status, Kind: c.Kind, Plate: c.Plate, Grade: c.SmokeGrade, Pollutants: c.Pollutants, CapturedAt: c.CapturedAt}
}

// MatchSummary reports whether a case summary matches the filter.
func (f *CaseFilter) MatchSummary(s CaseSummary) bool {
	switch {
	case f.Station != "" && s.Station != f.Station:
	case len(f.Stations) > 0 && !containsStation(f.Stations, s.Station):
	case f.Status != "" && s.Status != f.Status:
	case f.Kind != "" && s.Kind != f.Kind:
	case f.ExcludeKind != "" && s.Kind == f.ExcludeKind:
	case f.Plate != "" && s.Plate != f.Plate:
	case f.MinGrade > 0 && s.Grade < f.MinGrade:
	case f.Pollutant != "" && !containsPollutant(s.Pollutants, f.Pollutant):
	case !f.From.IsZero() && s.CapturedAt.Before(f.From):
	case !f.To.IsZero() && !s.CapturedAt.Before(f.To):
	default:
		return true
	}
	return false
}

func containsStation(list []plume.StationID, s plume.StationID) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func containsPollutant(list []plume.Pollutant, p plume.Pollutant) bool {
	for _, v := range list {
		if v == p {
			return true
		}
	}
	return false
}

// Page sizes for list queries.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// PageLimit returns the effective page size for a requested limit.
func PageLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return n
}

// Stats counts what the store holds.
type Stats struct {
	Stations      int `json:"stations"`
	Evidence      int `json:"evidence"`
	Records       int `json:"records"`
	Cases         int `json:"cases"`
	PackagesBuilt int `json:"packages_built"`
	PendingJobs   int `json:"pending_jobs"`
}

// Store holds central's metadata: stations, evidence, records and passes,
// cases with their custody logs, and a durable work queue. The embedded
// default is bbolt (central/store); PostgreSQL implements the same
// interface. Every implementation must pass central/store/storetest.
//
// Lists return newest first. Errors wrap ErrNotFound and ErrConflict where
// documented.
type Store interface {
	// PutStation enrolls a station; ErrConflict if the ID is taken.
	PutStation(ctx context.Context, s *Station) error
	// Station returns one station, or ErrNotFound.
	Station(ctx context.Context, id plume.StationID) (*Station, error)
	// Stations returns every station, ordered by ID.
	Stations(ctx context.Context) ([]*Station, error)

	// PutEvidence stores ev atomically with its case (c may be nil), the
	// case's first custody entries, and a package job for the case. It is
	// idempotent by (ev.Station, ev.ID): for identical manifest bytes
	// already stored it returns the stored item and created=false; for
	// different bytes it returns ErrConflict. When it creates the case it
	// sets c.ID, c.Number and c.CreatedAt (= ev.ReceivedAt) and ev.CaseID.
	PutEvidence(ctx context.Context, ev *StoredEvidence, c *Case, custody []CustodyEntry) (stored *StoredEvidence, created bool, err error)
	// Evidence returns one evidence item, or ErrNotFound.
	Evidence(ctx context.Context, station plume.StationID, id plume.EvidenceID) (*StoredEvidence, error)

	// PutRecords stores records of one station, idempotent by (station,
	// record ID): a record whose ID is already stored counts as a
	// duplicate and is left as it was. Pass records also become PassRows.
	PutRecords(ctx context.Context, station plume.StationID, recs []plume.Record, receivedAt time.Time) (accepted, duplicates int, err error)
	// Passes lists pass rows, newest first, and the cursor of the next page
	// ("" on the last page).
	Passes(ctx context.Context, f PassFilter) (rows []*PassRow, next string, err error)

	// Case returns one case, or ErrNotFound.
	Case(ctx context.Context, id plume.CaseID) (*Case, error)
	// Cases lists cases matching f, newest first (oldest first with
	// f.Oldest), and the cursor of the next page.
	Cases(ctx context.Context, f CaseFilter) (cases []*Case, next string, err error)
	// CaseCounts counts the cases matching f (paging and f.Status
	// ignored) by status.
	CaseCounts(ctx context.Context, f CaseFilter) (map[CaseStatus]int, error)
	// UpdateCase changes a case atomically: fn edits the case and returns
	// what goes with the change (custody, audit, jobs), all committed in
	// one transaction with the dashboard counters. If fn returns an error
	// nothing is stored and that error is returned. ErrNotFound if there is
	// no such case.
	UpdateCase(ctx context.Context, id plume.CaseID, fn func(c *Case) (*CaseChange, error)) (*Case, error)
	// VehicleHistory returns the vehicle file of a plate: its passes at
	// every station, newest first, at most limit.
	VehicleHistory(ctx context.Context, plate string, limit int) ([]VehicleEntry, error)
	// StationAudits returns the station's calibration and standard-gas
	// audit records at or before t, newest first, at most limit.
	StationAudits(ctx context.Context, station plume.StationID, before time.Time, limit int) ([]plume.Audit, error)
	// DailyStats returns the per-station day counters for local days in
	// [from, to] (YYYY-MM-DD), ordered by day then station.
	DailyStats(ctx context.Context, from, to string) ([]DayStats, error)
	// SetCasePackage records a case's built evidence package, which shows
	// the case at revision.
	SetCasePackage(ctx context.Context, id plume.CaseID, sha256 string, size int64, builtAt time.Time, revision int) error
	// AppendCustody chains e after the case's last custody entry and
	// returns it as stored.
	AppendCustody(ctx context.Context, id plume.CaseID, e CustodyEntry) (CustodyEntry, error)
	// Custody returns a case's custody log in order.
	Custody(ctx context.Context, id plume.CaseID) ([]CustodyEntry, error)

	// EnqueueJob adds a job; the store sets ID and CreatedAt.
	EnqueueJob(ctx context.Context, j Job) (Job, error)
	// ClaimJob leases the oldest job of one of kinds (any kind when none
	// is given) that is ready at now (NotBefore and any earlier lease
	// passed) until now+lease and counts an attempt. It returns ErrNoJob
	// when none is ready.
	ClaimJob(ctx context.Context, now time.Time, lease time.Duration, kinds ...JobKind) (*Job, error)
	// Jobs lists the queued jobs, oldest first.
	Jobs(ctx context.Context) ([]Job, error)
	// CompleteJob removes a finished job.
	CompleteJob(ctx context.Context, id uint64) error
	// RetryJob releases a job's lease and makes it ready again at notBefore,
	// recording why it failed.
	RetryJob(ctx context.Context, id uint64, notBefore time.Time, reason string) error

	OfficerStore

	// Stats counts what the store holds.
	Stats(ctx context.Context) (Stats, error)
	// Close releases the store.
	Close() error
}

// BlobInfo describes one stored blob.
type BlobInfo struct {
	SHA256 string
	Size   int64
}

// BlobStore holds content-addressed blobs: media and evidence packages. The
// embedded default is the filesystem (central/blob); MinIO implements the
// same interface. Every implementation must pass central/blob/blobtest.
//
// Digests are lowercase hex SHA-256; any other string gets a plume EINVALID
// error and is never used to build a path or key.
type BlobStore interface {
	// Put stores size bytes from r under sha256, verifying the digest and
	// size while streaming; a mismatch returns ErrDigestMismatch or
	// ErrSizeMismatch and stores nothing. A blob already held is neither
	// rewritten nor read again (created=false).
	Put(ctx context.Context, sha256 string, r io.Reader, size int64) (created bool, err error)
	// Open returns the blob for reading, or ErrNotFound.
	Open(ctx context.Context, sha256 string) (io.ReadSeekCloser, BlobInfo, error)
	// Stat describes the blob, or returns ErrNotFound.
	Stat(ctx context.Context, sha256 string) (BlobInfo, error)
	// Exists reports whether the blob is held.
	Exists(ctx context.Context, sha256 string) (bool, error)
}
