// Package review is the officers' side of a case: plate corrections,
// approvals and rejections, the optional second review by a supervisor,
// bulk rejections, manual export retries, and the police disposition that
// closes the case. Every change is one store transaction that carries the
// case, its custody entries, the audit event (before and after) and the
// jobs it sets off (a package rebuild, an export), so a crash can never
// leave a decision without its record or its export.
//
// It also holds the repeat-exceedance rule (Classify) that ingest applies
// when it opens a case.
package review

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Reason is a rejection reason code.
type Reason struct {
	Code  string
	Label string
}

// Reasons lists the rejection reason codes.
var Reasons = []Reason{
	{"plate_unreadable", "号牌无法辨认 Plate unreadable"},
	{"plate_mismatch", "号牌与车辆不符 Plate does not match the vehicle"},
	{"wrong_vehicle", "测量车辆不符 Measurement belongs to another vehicle"},
	{"invalid_measurement", "测量无效 Measurement not valid"},
	{"calibration", "设备校准问题 Analyser calibration in doubt"},
	{"exempt_vehicle", "豁免车辆 Exempt vehicle (emergency, military…)"},
	{"duplicate", "重复案件 Duplicate case"},
	{"other", "其他 Other (explain in the comment)"},
}

// ReasonLabel returns a reason code's label.
func ReasonLabel(code string) string {
	for _, r := range Reasons {
		if r.Code == code {
			return r.Label
		}
	}
	return code
}

func validReason(code string) bool {
	for _, r := range Reasons {
		if r.Code == code {
			return true
		}
	}
	return false
}

// Config configures a Service.
type Config struct {
	Store central.Store
	// SecondReview makes every approval wait for a supervisor's
	// confirmation before export.
	SecondReview bool
	// Exporter names the export adapter recorded on queued exports.
	Exporter string
	Logger   *slog.Logger
	Now      func() time.Time
	// OnJobs is called after a change queued jobs (to wake the workers).
	OnJobs func()
	// Enforceable, when set, is asked before a case is approved or
	// confirmed; its error (a clock outside GA/T 832-2014, a failed audit)
	// refuses the decision with the reason.
	Enforceable func(ctx context.Context, c *central.Case) error
	// Profiles gives the repeat-exceedance rule of a case's profile, so a
	// plate correction re-applies the rule to the right vehicle. Nil
	// leaves the case's classification as ingest made it.
	Profiles RepeatRules
}

// RepeatRules looks up the repeat-exceedance rule of a profile
// ("name@version"); known is false when the default rule was used.
type RepeatRules interface {
	Repeat(ref string) (rule plume.Repeat, known bool)
}

// Service changes cases on officers' behalf.
type Service struct {
	cfg    Config
	logger *slog.Logger
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnJobs == nil {
		cfg.OnJobs = func() {}
	}
	return &Service{cfg: cfg, logger: cfg.Logger.With("component", "review")}
}

// SecondReview reports whether approvals need a supervisor.
func (s *Service) SecondReview() bool { return s.cfg.SecondReview }

// Actor is who asks for a change, and from where.
type Actor struct {
	Officer *central.Officer
	IP      string
	Token   string // the API token's ID (central.Session.TokenID), "" for a browser session
}

func (a Actor) custodyName() string { return "officer:" + a.Officer.Username }

// Case returns a case the officer may see. A case of another station is
// reported as not found, so its existence does not leak.
func (s *Service) Case(ctx context.Context, o *central.Officer, id plume.CaseID) (*central.Case, error) {
	if len(id) == 0 || len(id) > 64 {
		return nil, plume.Errorf(plume.ENOTFOUND, "no case %q", id)
	}
	c, err := s.cfg.Store.Case(ctx, id)
	if errors.Is(err, central.ErrNotFound) || (err == nil && !o.Sees(c.Station)) {
		return nil, plume.Errorf(plume.ENOTFOUND, "no case %s", id)
	}
	return c, err
}

func snapshot(c *central.Case) string {
	v := map[string]any{"status": c.Status, "plate": c.Plate, "kind": c.Kind, "revision": c.Revision}
	if c.Export != nil {
		v["export"] = c.Export.Status
	}
	if c.Disposition != nil {
		v["disposition"] = c.Disposition.Outcome
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// change runs one audited case update for an officer: it checks scope and
// permission, lets fn edit the case and fill the change, and records the
// audit event with the case's state before and after.
func (s *Service) change(ctx context.Context, a Actor, id plume.CaseID, perm central.Permission, action string, fn func(c *central.Case, ch *central.CaseChange) error) (*central.Case, error) {
	if !a.Officer.Can(perm) {
		return nil, plume.Errorf(plume.EFORBIDDEN, "your role (%s) may not do this", a.Officer.Role)
	}
	now := s.cfg.Now().UTC()
	queued := false
	c, err := s.cfg.Store.UpdateCase(ctx, id, func(c *central.Case) (*central.CaseChange, error) {
		if !a.Officer.Sees(c.Station) {
			return nil, plume.Errorf(plume.ENOTFOUND, "no case %s", id)
		}
		before := snapshot(c)
		ch := &central.CaseChange{At: now}
		if err := fn(c, ch); err != nil {
			return nil, err
		}
		ev := central.AuditEvent{Time: now, Actor: a.Officer.Username, Role: a.Officer.Role, IP: a.IP, Action: action,
			Target: string(c.ID), Station: c.Station, Before: before, After: snapshot(c), Token: a.Token}
		if len(ch.Custody) > 0 {
			ev.Detail = ch.Custody[0].Detail
		}
		ch.Audit = append(ch.Audit, ev)
		queued = len(ch.Jobs) > 0
		return ch, nil
	})
	if errors.Is(err, central.ErrNotFound) {
		return nil, plume.Errorf(plume.ENOTFOUND, "no case %s", id)
	} else if err != nil {
		return nil, err
	}
	if queued {
		s.cfg.OnJobs()
	}
	s.logger.Info("case changed", "case", c.ID, "action", action, "officer", a.Officer.Username, "status", c.Status)
	return c, nil
}

func comment(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || len(s) > 2000 {
		return "", plume.Errorf(plume.EINVALID, "comment must be UTF-8 text of at most 2000 bytes")
	}
	return s, nil
}

// CorrectPlate replaces a misread plate. The station's reading stays in
// PlateRead and in the signed manifest; the correction is audited, logged
// in custody and shown in the rebuilt package.
func (s *Service) CorrectPlate(ctx context.Context, a Actor, id plume.CaseID, plate string, colour plume.PlateColour, note string) (*central.Case, error) {
	plate = strings.ToUpper(strings.TrimSpace(plate))
	if err := checkPlate(plate); err != nil {
		return nil, err
	}
	note, err := comment(note)
	if err != nil {
		return nil, err
	}
	// The corrected plate's vehicle file, read before the change: the
	// repeat rule is re-applied against it.
	var history []central.VehicleEntry
	if s.cfg.Profiles != nil {
		if history, err = s.cfg.Store.VehicleHistory(ctx, plate, 200); err != nil {
			return nil, fmt.Errorf("vehicle file of %s: %w", plate, err)
		}
	}
	return s.change(ctx, a, id, central.PermReview, "case.plate", func(c *central.Case, ch *central.CaseChange) error {
		if c.Status != central.CaseOpen {
			return plume.Errorf(plume.ECONFLICT, "case %s is %s; only open cases can be corrected", c.Number, c.Status)
		}
		if plate == c.Plate && (colour == "" || colour == c.PlateColour) {
			return plume.Errorf(plume.EINVALID, "the plate is already %s", plate)
		}
		old := c.Plate
		if c.PlateRead == "" {
			c.PlateRead = old
		}
		c.Plate = plate
		if colour != "" {
			c.PlateColour = colour
		}
		c.Revision++
		c.Reviews = append(c.Reviews, central.Review{Time: ch.At, Officer: a.Officer.Username, Name: a.Officer.Name, Role: a.Officer.Role, Decision: central.DecisionPlate, Comment: note})
		detail := fmt.Sprintf("plate %q corrected to %q (station read %q)", old, plate, c.PlateRead)
		if note != "" {
			detail += ": " + note
		}
		if s.cfg.Profiles != nil {
			// The case now belongs to another vehicle: its earlier passes
			// decide warning or enforcement.
			rule, known := s.cfg.Profiles.Repeat(c.Profile)
			pass := &plume.Pass{ID: c.PassID, Reading: plume.Reading{Time: c.CapturedAt}}
			kind, why := Classify(c, pass, history, rule, known)
			if kind != c.Kind {
				detail += fmt.Sprintf("; repeat rule re-applied: %s → %s", c.Kind, kind)
			}
			c.Kind, c.RepeatNote = kind, why
		}
		ch.Custody = append(ch.Custody, central.CustodyEntry{Time: ch.At, Actor: a.custodyName(), Action: central.ActionPlateCorrect, Detail: detail})
		return nil
	})
}

// Approve approves an open case. With second review on, it waits for a
// supervisor; otherwise the package is rebuilt and the export queued.
func (s *Service) Approve(ctx context.Context, a Actor, id plume.CaseID, note string) (*central.Case, error) {
	note, err := comment(note)
	if err != nil {
		return nil, err
	}
	if err := s.enforceable(ctx, a, id); err != nil {
		return nil, err
	}
	return s.change(ctx, a, id, central.PermReview, "case.approve", func(c *central.Case, ch *central.CaseChange) error {
		if c.Status != central.CaseOpen {
			return plume.Errorf(plume.ECONFLICT, "case %s is %s, not open", c.Number, c.Status)
		}
		if c.Plate == "" {
			return plume.Errorf(plume.EINVALID, "case %s has no plate; correct the plate or reject the case", c.Number)
		}
		c.Reviews = append(c.Reviews, central.Review{Time: ch.At, Officer: a.Officer.Username, Name: a.Officer.Name, Role: a.Officer.Role, Decision: central.DecisionApprove, Comment: note})
		c.Revision++
		detail := "approved by " + a.Officer.Username
		if note != "" {
			detail += ": " + note
		}
		if s.cfg.SecondReview {
			c.Status = central.CaseSecondReview
			ch.Custody = append(ch.Custody, central.CustodyEntry{Time: ch.At, Actor: a.custodyName(), Action: central.ActionApproved, Detail: detail + "; awaiting second review"})
			return nil
		}
		ch.Custody = append(ch.Custody, central.CustodyEntry{Time: ch.At, Actor: a.custodyName(), Action: central.ActionApproved, Detail: detail})
		s.queueExport(c, ch)
		return nil
	})
}

// enforceable refuses a case whose station verdict central did not
// confirm (central.FlagVerdictMismatch), then runs Config.Enforceable on
// a case the officer may see.
func (s *Service) enforceable(ctx context.Context, a Actor, id plume.CaseID) error {
	c, err := s.Case(ctx, a.Officer, id)
	if err != nil {
		return err
	}
	for _, f := range c.Flags {
		if f.Code == central.FlagVerdictMismatch {
			return plume.Errorf(plume.ECONFLICT, "case %s cannot be enforced: %s", c.Number, f.Message)
		}
	}
	if s.cfg.Enforceable == nil {
		return nil
	}
	return s.cfg.Enforceable(ctx, c)
}

// queueExport moves an approved case to the export queue: the package is
// rebuilt to show the decisions, then sent.
func (s *Service) queueExport(c *central.Case, ch *central.CaseChange) {
	c.Status = central.CaseApproved
	c.Export = &central.Export{Status: central.ExportQueued, Adapter: s.cfg.Exporter, Key: ExportKey(c), QueuedAt: ch.At}
	ch.Jobs = append(ch.Jobs,
		central.Job{Kind: central.JobBuildPackage, CaseID: c.ID},
		central.Job{Kind: central.JobExport, CaseID: c.ID})
}

// ExportKey is the idempotency key of a case's export: one per case,
// forever, so the police system can recognise a resend.
func ExportKey(c *central.Case) string { return "plume-" + c.Number }

// Confirm is a supervisor's second review agreeing with the approval. The
// supervisor must not be the officer who approved.
func (s *Service) Confirm(ctx context.Context, a Actor, id plume.CaseID, note string) (*central.Case, error) {
	note, err := comment(note)
	if err != nil {
		return nil, err
	}
	if err := s.enforceable(ctx, a, id); err != nil {
		return nil, err
	}
	return s.change(ctx, a, id, central.PermSecondReview, "case.confirm", func(c *central.Case, ch *central.CaseChange) error {
		if c.Status != central.CaseSecondReview {
			return plume.Errorf(plume.ECONFLICT, "case %s is %s, not awaiting second review", c.Number, c.Status)
		}
		for _, r := range c.Reviews {
			if r.Decision == central.DecisionApprove && r.Officer == a.Officer.Username {
				return plume.Errorf(plume.EFORBIDDEN, "the second review must be done by another officer")
			}
		}
		c.Reviews = append(c.Reviews, central.Review{Time: ch.At, Officer: a.Officer.Username, Name: a.Officer.Name, Role: a.Officer.Role, Decision: central.DecisionConfirm, Comment: note})
		c.Revision++
		ch.Custody = append(ch.Custody, central.CustodyEntry{Time: ch.At, Actor: a.custodyName(), Action: central.ActionConfirmed, Detail: strings.TrimSpace("confirmed by " + a.Officer.Username + " " + note)})
		s.queueExport(c, ch)
		return nil
	})
}

// Return is a supervisor's second review sending the case back to open.
func (s *Service) Return(ctx context.Context, a Actor, id plume.CaseID, note string) (*central.Case, error) {
	note, err := comment(note)
	if err != nil {
		return nil, err
	}
	if note == "" {
		return nil, plume.Errorf(plume.EINVALID, "say why the case goes back")
	}
	return s.change(ctx, a, id, central.PermSecondReview, "case.return", func(c *central.Case, ch *central.CaseChange) error {
		if c.Status != central.CaseSecondReview {
			return plume.Errorf(plume.ECONFLICT, "case %s is %s, not awaiting second review", c.Number, c.Status)
		}
		c.Status = central.CaseOpen
		c.Revision++
		c.Reviews = append(c.Reviews, central.Review{Time: ch.At, Officer: a.Officer.Username, Name: a.Officer.Name, Role: a.Officer.Role, Decision: central.DecisionReturn, Comment: note})
		ch.Custody = append(ch.Custody, central.CustodyEntry{Time: ch.At, Actor: a.custodyName(), Action: central.ActionReturned, Detail: note})
		return nil
	})
}

// Reject rejects an open case (or one awaiting second review, for a
// supervisor) with a reason code.
func (s *Service) Reject(ctx context.Context, a Actor, id plume.CaseID, reason, note string) (*central.Case, error) {
	if !validReason(reason) {
		return nil, plume.Errorf(plume.EINVALID, "choose a reason code")
	}
	note, err := comment(note)
	if err != nil {
		return nil, err
	}
	if reason == "other" && note == "" {
		return nil, plume.Errorf(plume.EINVALID, "reason \"other\" needs a comment")
	}
	return s.change(ctx, a, id, central.PermReview, "case.reject", func(c *central.Case, ch *central.CaseChange) error {
		ok := c.Status == central.CaseOpen || (c.Status == central.CaseSecondReview && a.Officer.Can(central.PermSecondReview))
		if !ok {
			return plume.Errorf(plume.ECONFLICT, "case %s is %s and cannot be rejected", c.Number, c.Status)
		}
		c.Status = central.CaseRejected
		c.Revision++
		c.Reviews = append(c.Reviews, central.Review{Time: ch.At, Officer: a.Officer.Username, Name: a.Officer.Name, Role: a.Officer.Role, Decision: central.DecisionReject, Reason: reason, Comment: note})
		ch.Custody = append(ch.Custody, central.CustodyEntry{Time: ch.At, Actor: a.custodyName(), Action: central.ActionRejected, Detail: strings.TrimSpace(reason + " " + note)})
		ch.Jobs = append(ch.Jobs, central.Job{Kind: central.JobBuildPackage, CaseID: c.ID})
		return nil
	})
}

// BulkResult is one case's outcome in a bulk action.
type BulkResult struct {
	ID  plume.CaseID
	Err error
}

// BulkReject rejects several open cases with one reason. It is the only
// bulk decision: approving needs each case's evidence looked at. Each case
// is its own transaction and audit event; failures are reported per case.
func (s *Service) BulkReject(ctx context.Context, a Actor, ids []plume.CaseID, reason, note string) []BulkResult {
	if len(ids) > 200 {
		ids = ids[:200]
	}
	out := make([]BulkResult, 0, len(ids))
	for _, id := range ids {
		_, err := s.Reject(ctx, a, id, reason, strings.TrimSpace("bulk: "+note))
		out = append(out, BulkResult{ID: id, Err: err})
	}
	return out
}

// RetryExport queues a failed export again.
func (s *Service) RetryExport(ctx context.Context, a Actor, id plume.CaseID) (*central.Case, error) {
	return s.change(ctx, a, id, central.PermRetryExport, "case.export-retry", func(c *central.Case, ch *central.CaseChange) error {
		if c.Status != central.CaseApproved || c.Export == nil || (c.Export.Status != central.ExportFailed && c.Export.Status != central.ExportFailing) {
			return plume.Errorf(plume.ECONFLICT, "case %s has no failed export to retry", c.Number)
		}
		// A failing export still has its job waiting out a backoff; the new
		// job runs now, and whichever comes second finds the case exported.
		c.Export.Status, c.Export.LastError = central.ExportQueued, ""
		ch.Jobs = append(ch.Jobs, central.Job{Kind: central.JobExport, CaseID: c.ID})
		return nil
	})
}

// Dispose records the police's disposition of an exported case and
// closes it. The same disposition again is accepted (the police may
// resend); a different one is a conflict.
func (s *Service) Dispose(ctx context.Context, id plume.CaseID, d central.Disposition, ip string) (*central.Case, bool, error) {
	if !d.Outcome.Valid() {
		return nil, false, plume.Errorf(plume.EINVALID, "outcome must be penalty_issued, not_processed or vehicle_not_found")
	}
	if d.Outcome == central.DispositionNotProcessed && strings.TrimSpace(d.Reason) == "" {
		return nil, false, plume.Errorf(plume.EINVALID, "not_processed needs a reason")
	}
	if len(d.Reason) > 2000 || len(d.Reference) > 128 || !utf8.ValidString(d.Reason+d.Reference) {
		return nil, false, plume.Errorf(plume.EINVALID, "reason or reference too long or not UTF-8")
	}
	now := s.cfg.Now().UTC()
	c, err := s.cfg.Store.UpdateCase(ctx, id, func(c *central.Case) (*central.CaseChange, error) {
		if c.Status == central.CaseClosed && c.Disposition != nil {
			if c.Disposition.Outcome == d.Outcome && c.Disposition.Reference == d.Reference {
				return nil, errReplay
			}
			return nil, plume.Errorf(plume.ECONFLICT, "case %s is already closed with %s", c.Number, c.Disposition.Outcome)
		}
		if c.Status != central.CaseExported {
			return nil, plume.Errorf(plume.ECONFLICT, "case %s is %s; only exported cases take a disposition", c.Number, c.Status)
		}
		before := snapshot(c)
		d.ReceivedAt = now
		c.Disposition = &d
		c.Status = central.CaseClosed
		detail := string(d.Outcome)
		if d.Reference != "" {
			detail += " ref " + d.Reference
		}
		if d.Reason != "" {
			detail += ": " + d.Reason
		}
		return &central.CaseChange{At: now,
			Custody: []central.CustodyEntry{{Time: now, Actor: "police", Action: central.ActionDisposition, Detail: detail}},
			Audit: []central.AuditEvent{{Time: now, Actor: "police", IP: ip, Action: "case.disposition", Target: string(c.ID), Station: c.Station,
				Before: before, After: snapshot(c), Detail: detail}},
		}, nil
	})
	if errors.Is(err, errReplay) {
		c, err = s.cfg.Store.Case(ctx, id)
		return c, false, err
	}
	if errors.Is(err, central.ErrNotFound) {
		return nil, false, plume.Errorf(plume.ENOTFOUND, "no case %s", id)
	}
	if err != nil {
		return nil, false, err
	}
	s.logger.Info("case closed by the police", "case", c.ID, "outcome", d.Outcome)
	return c, true, nil
}

var errReplay = errors.New("disposition already recorded")
