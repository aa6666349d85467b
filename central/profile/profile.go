// Package profile gives central the limit profiles the stations judge by:
// the shipped ones embedded from firmware-config/profiles, looked up by
// "name@version" as verdicts cite them. Central needs them for the
// repeat-exceedance rule (plume.Repeat), to show limits, and to judge every
// violation candidate again (Rejudge). Profiles are decoded by firmwareconfig.DecodeProfile, as
// on the edge.
package profile

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	firmwareconfig "github.com/plume-emissions/plume/firmware-config"
)

// DefaultRepeat is the HJ 845-2017 rule (twice in a row within 6 months),
// used when a case cites a profile central does not hold.
var DefaultRepeat = plume.Repeat{Count: 2, Window: 4380 * time.Hour}

// Set holds profiles by reference.
type Set struct {
	byRef map[string]*plume.LimitProfile
}

// Load reads every profiles/*.yaml of fsys.
func Load(fsys fs.FS) (*Set, error) {
	names, err := fs.Glob(fsys, "profiles/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("load profiles: %w", err)
	}
	s := &Set{byRef: map[string]*plume.LimitProfile{}}
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("load profiles: %w", err)
		}
		p, err := firmwareconfig.DecodeProfile(b)
		if err != nil {
			return nil, fmt.Errorf("load profile %s: %w", path.Base(n), err)
		}
		s.byRef[p.Ref()] = p
	}
	return s, nil
}

// Embedded returns the shipped profiles.
func Embedded() (*Set, error) { return Load(firmwareconfig.FS) }

// Lookup returns the profile a verdict cites ("name@version"), or nil.
func (s *Set) Lookup(ref string) *plume.LimitProfile {
	if s == nil {
		return nil
	}
	return s.byRef[ref]
}

// Repeat returns the repeat rule of the cited profile, and whether the
// profile is known (DefaultRepeat otherwise).
func (s *Set) Repeat(ref string) (plume.Repeat, bool) {
	if p := s.Lookup(ref); p != nil {
		return p.Repeat, true
	}
	return DefaultRepeat, false
}

// Rejudge judges a pass again (plume.Judge) with central's own copy of the
// profile its verdict cites, and returns "" when central agrees that it
// exceeds, or else why not. A station is not trusted: its verdict could
// cite a profile with a lower limit (its remote configuration replaced,
// say) or claim an exceedance its reading does not show. Passes whose
// verdict claims no exceedance are not checked (a case opened on camera
// smoke does not rest on the analyser's verdict). A nil Set checks
// nothing (central always loads the shipped set; see Embedded).
func (s *Set) Rejudge(p *plume.Pass) string {
	v := p.Verdict
	if s == nil || v.Outcome != plume.OutcomeExceed {
		return ""
	}
	ref := v.Profile + "@" + v.ProfileVersion
	prof := s.Lookup(ref)
	if prof == nil {
		return fmt.Sprintf("central holds no limit profile %s, so the station's verdict cannot be checked", ref)
	}
	if p.Reading.Fuel != "" && prof.Fuel != p.Reading.Fuel {
		return fmt.Sprintf("profile %s is for %s vehicles, the reading is of a %s vehicle", ref, prof.Fuel, p.Reading.Fuel)
	}
	// The same judgement as the edge's: the reading, and the camera's
	// smoke grade (which central takes as the station reports it; the
	// images it was graded from are in the evidence for the reviewer).
	own := plume.Judge(&p.Reading, p.SmokeSeen, prof)
	if own.Outcome != plume.OutcomeExceed {
		checks := make([]string, len(own.Checks))
		for i, c := range own.Checks {
			checks[i] = c.String()
		}
		return fmt.Sprintf("the station says %q; central's copy of %s judges the reading %s (%s)", v.Summary, ref, own.Outcome, strings.Join(checks, "; "))
	}
	for _, c := range v.Exceedances() {
		var mine *plume.Check
		for i := range own.Checks {
			if own.Checks[i].Pollutant == c.Pollutant && own.Checks[i].Source == c.Source {
				mine = &own.Checks[i]
			}
		}
		switch {
		case mine == nil:
			return fmt.Sprintf("the station cites a %s limit that central's copy of %s does not have", c.Pollutant, ref)
		case mine.Limit != c.Limit || mine.Value != c.Value:
			return fmt.Sprintf("the station cites %s; central's copy of %s gives %s", c, ref, mine)
		case !mine.Exceeded:
			return fmt.Sprintf("central's copy of %s finds %s", ref, mine)
		}
	}
	return ""
}
