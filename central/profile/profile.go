// Package profile gives central the limit profiles the stations judge by:
// the shipped ones embedded from firmware-config/profiles, looked up by
// "name@version" as verdicts cite them. Central needs them for the
// repeat-exceedance rule (plume.Repeat) and to show limits; it does not
// re-judge passes. Profiles are decoded by firmwareconfig.DecodeProfile, as
// on the edge.
package profile

import (
	"fmt"
	"io/fs"
	"path"
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
