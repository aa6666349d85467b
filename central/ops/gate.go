package ops

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// AuditStatus is the state of a station's analyser audits at one capture.
type AuditStatus struct {
	Last    *plume.Audit // the last audit before the capture, nil if none
	Failed  []plume.Audit
	Overdue bool
	Note    string
}

// Audits judges the station's audits before a capture against the
// profile's audit policy: the last audit of each gas must have passed, and
// the latest audit must be within the policy's interval.
func (s *Service) Audits(ctx context.Context, station plume.StationID, at time.Time, pol plume.AuditPolicy) (AuditStatus, error) {
	audits, err := s.cfg.Store.StationAudits(ctx, station, at, 20)
	if err != nil {
		return AuditStatus{}, err
	}
	var st AuditStatus
	if len(audits) == 0 {
		st.Overdue, st.Note = true, "no calibration or audit record before the capture"
		return st, nil
	}
	st.Last = &audits[0]
	seen := map[string]bool{}
	for _, a := range audits {
		if seen[a.Gas] {
			continue
		}
		seen[a.Gas] = true
		if !a.Passed {
			st.Failed = append(st.Failed, a)
		}
	}
	if age := at.Sub(audits[0].Time); age > pol.Interval() {
		st.Overdue = true
		st.Note = fmt.Sprintf("the last audit was %.1f days before the capture; the profile allows %.0f", age.Hours()/24, pol.Interval().Hours()/24)
	}
	if len(st.Failed) > 0 {
		var gases []string
		for _, a := range st.Failed {
			gases = append(gases, fmt.Sprintf("%s %s at %s (measured %g against %g %s)", strings.ToUpper(a.Gas), a.Kind, a.Time.UTC().Format(time.RFC3339), a.Measured, a.Reference, a.Unit))
		}
		st.Note = "the last audit FAILED: " + strings.Join(gases, "; ")
	}
	return st, nil
}

func (s *Service) policy(m *plume.Manifest) plume.AuditPolicy {
	if v := m.Pass.Verdict; v.Profile != "" {
		if p := s.cfg.Profiles.Lookup(v.Profile + "@" + v.ProfileVersion); p != nil {
			return p.Audit
		}
	}
	return plume.AuditPolicy{}
}

// Flags marks a new evidence item: its clock offset at capture and the
// station's audits before it, per the limit profile's audit policy.
func (s *Service) Flags(ctx context.Context, m *plume.Manifest) ([]central.CaseFlag, error) {
	var flags []central.CaseFlag
	off := time.Duration(m.ClockOffsetMS) * time.Millisecond
	switch {
	case !plume.ClockOK(off):
		flags = append(flags, central.CaseFlag{Code: central.FlagClockOffset, Blocks: true,
			Message: fmt.Sprintf("时钟偏差 the station clock was %+.3f s off at capture; GA/T 832-2014 allows 1.0 s, so this evidence cannot be exported", off.Seconds())})
	case m.ClockSource == "":
		flags = append(flags, central.CaseFlag{Code: central.FlagClockUnknown,
			Message: "时钟未校验 the station had not yet measured its clock offset at capture"})
	}
	pol := s.policy(m)
	st, err := s.Audits(ctx, m.Station, m.Pass.Reading.Time, pol)
	if err != nil {
		return nil, err
	}
	if len(st.Failed) > 0 {
		flags = append(flags, central.CaseFlag{Code: central.FlagAuditFailed, Blocks: true, Message: "校准不合格 " + st.Note})
	} else if st.Overdue {
		flags = append(flags, central.CaseFlag{Code: central.FlagAuditOverdue, Blocks: pol.Overdue == plume.AuditBlock, Message: "校准超期 " + st.Note})
	}
	return flags, nil
}

// Enforceable says whether a case may be approved and exported: its
// flags are judged again with the audits central holds now (an audit
// record may arrive after the evidence it concerns). It returns a
// conflict error with the reason when a blocking flag applies.
func (s *Service) Enforceable(ctx context.Context, c *central.Case) error {
	ev, err := s.cfg.Store.Evidence(ctx, c.Station, c.EvidenceID)
	if err != nil {
		return fmt.Errorf("enforceable %s: %w", c.ID, err)
	}
	m, err := plume.DecodeManifest(ev.Manifest)
	if err != nil {
		return fmt.Errorf("enforceable %s: %w", c.ID, err)
	}
	flags, err := s.Flags(ctx, m)
	if err != nil {
		return err
	}
	for _, f := range flags {
		if f.Blocks {
			return plume.Errorf(plume.ECONFLICT, "case %s cannot be enforced: %s", c.Number, f.Message)
		}
	}
	return nil
}
