package plume

import (
	"time"
	"unicode/utf8"
)

// PlateColour is the background colour of a Chinese licence plate (GA 36).
type PlateColour string

const (
	PlateBlue   PlateColour = "blue"   // small cars, single row
	PlateYellow PlateColour = "yellow" // large vehicles; double row at the rear
	PlateGreen  PlateColour = "green"  // new energy, 8 characters
	PlateWhite  PlateColour = "white"  // police
	PlateBlack  PlateColour = "black"  // embassy, Hong Kong/Macau
)

// Plate is a licence plate as read by the edge (or corrected by an officer).
type Plate struct {
	Text       string      `json:"text"`
	Colour     PlateColour `json:"colour,omitempty"`
	DoubleRow  bool        `json:"double_row,omitempty"`
	Confidence float64     `json:"confidence"` // 0–1, whole plate
}

// Smoke is the camera's black-smoke verdict for one vehicle.
type Smoke struct {
	Smoky      bool    `json:"smoky"`
	Grade      int     `json:"grade"`      // Ringelmann 0–5
	Confidence float64 `json:"confidence"` // 0–1
}

// Pass is one vehicle through one station: what the analyser measured, what
// the cameras saw, and the verdict.
type Pass struct {
	ID         PassID    `json:"id"`
	Station    StationID `json:"station"`
	Reading    Reading   `json:"reading"`
	Plate      *Plate    `json:"plate,omitempty"`
	SmokeSeen  *Smoke    `json:"smoke,omitempty"`
	Verdict    Verdict   `json:"verdict"`
	ReceivedAt time.Time `json:"received_at"` // when the edge received the analyser record
}

// Violation reports whether the pass is a violation candidate: a valid
// remote-sensing exceedance, or camera smoke at or above the profile grade.
func (p *Pass) Violation(minSmokeGrade int) bool {
	if p.Verdict.Outcome == OutcomeExceed {
		return true
	}
	return p.SmokeSeen != nil && p.SmokeSeen.Smoky && minSmokeGrade > 0 && p.SmokeSeen.Grade >= minSmokeGrade
}

// Validate checks a pass received from outside.
func (p *Pass) Validate() error {
	if err := p.Station.Validate(); err != nil {
		return err
	}
	if err := p.ID.Validate(); err != nil {
		return err
	}
	if err := p.Reading.Validate(); err != nil {
		return err
	}
	if want := NewPassID(p.Station, p.Reading.Time, p.Reading.Lane); want != p.ID {
		return Errorf(EINVALID, "pass ID %q does not match station, time and lane (want %q)", p.ID, want)
	}
	switch p.Verdict.Outcome {
	case OutcomePass, OutcomeExceed, OutcomeInvalid:
	default:
		return Errorf(EINVALID, "pass %s: unknown outcome %q", p.ID, p.Verdict.Outcome)
	}
	if p.Plate != nil && (!utf8.ValidString(p.Plate.Text) || utf8.RuneCountInString(p.Plate.Text) > 10) {
		return Errorf(EINVALID, "pass %s: invalid plate text", p.ID)
	}
	return nil
}
