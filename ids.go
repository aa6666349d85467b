package plume

import (
	"fmt"
	"regexp"
	"time"
)

// StationID names one roadside station, for example "GD-SZ-0001".
type StationID string

// PassID identifies one vehicle pass through a station's analyser. It is
// derived from the station, the analyser's measurement time (to the
// millisecond, UTC) and the lane, so a pass that the analyser resends after a
// lost acknowledgement gets the same ID and is stored once.
type PassID string

// EvidenceID identifies one evidence item (a signed manifest and its media).
// There is at most one evidence item per pass, so it equals the pass ID.
type EvidenceID string

// CaseID identifies a case at central.
type CaseID string

var (
	stationIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$`)
	passIDPattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,47}-[0-9]{8}T[0-9]{9}Z-L[0-9]{1,2}$`)
	sha256Pattern    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Validate reports whether id is a well-formed station ID: 1–48 characters
// of letters, digits, '-' and '_', starting with a letter or digit.
func (id StationID) Validate() error {
	if !stationIDPattern.MatchString(string(id)) {
		return Errorf(EINVALID, "invalid station ID %q", string(id))
	}
	return nil
}

// NewPassID returns the pass ID for a measurement at t in lane on station.
func NewPassID(station StationID, t time.Time, lane int) PassID {
	t = t.UTC()
	return PassID(fmt.Sprintf("%s-%sT%s%03dZ-L%d", station, t.Format("20060102"), t.Format("150405"), t.Nanosecond()/1e6, lane))
}

// Validate reports whether id is a well-formed pass ID.
func (id PassID) Validate() error {
	if !passIDPattern.MatchString(string(id)) {
		return Errorf(EINVALID, "invalid pass ID %q", string(id))
	}
	return nil
}

// Validate reports whether id is a well-formed evidence ID.
func (id EvidenceID) Validate() error {
	if err := PassID(id).Validate(); err != nil {
		return Errorf(EINVALID, "invalid evidence ID %q", string(id))
	}
	return nil
}

// ValidSHA256 reports whether s is a lowercase hex SHA-256 digest.
func ValidSHA256(s string) bool { return sha256Pattern.MatchString(s) }
