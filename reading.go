package plume

import (
	"math"
	"time"
)

// Fuel is a vehicle's fuel type, which selects its limit profile.
type Fuel string

const (
	FuelUnknown Fuel = ""
	FuelPetrol  Fuel = "petrol"
	FuelDiesel  Fuel = "diesel"
)

// StatusFlag is an HJ 212-2017 data flag describing the analyser's state
// when a value was measured.
type StatusFlag string

const (
	FlagNormal      StatusFlag = "N" // normal operation
	FlagStopped     StatusFlag = "F" // device stopped
	FlagMaintenance StatusFlag = "M" // under maintenance
	FlagManual      StatusFlag = "S" // manually entered value
	FlagFault       StatusFlag = "D" // device fault
	FlagCalibration StatusFlag = "C" // calibrating
	FlagOverRange   StatusFlag = "T" // over range
	FlagCommsFault  StatusFlag = "B" // communication fault
)

// Valid reports whether f is one of the HJ 212-2017 data flags.
func (f StatusFlag) Valid() bool {
	switch f {
	case FlagNormal, FlagStopped, FlagMaintenance, FlagManual, FlagFault, FlagCalibration, FlagOverRange, FlagCommsFault:
		return true
	}
	return false
}

// Describe returns the meaning of the flag in words.
func (f StatusFlag) Describe() string {
	switch f {
	case FlagNormal:
		return "normal"
	case FlagStopped:
		return "stopped"
	case FlagMaintenance:
		return "maintenance"
	case FlagManual:
		return "manual entry"
	case FlagFault:
		return "device fault"
	case FlagCalibration:
		return "calibration"
	case FlagOverRange:
		return "over range"
	case FlagCommsFault:
		return "communication fault"
	}
	return "unknown flag " + string(f)
}

// Gases are the exhaust concentrations a remote-sensing analyser derives
// from the plume, corrected to tailpipe concentrations.
type Gases struct {
	CO2 float64 `json:"co2_pct"` // carbon dioxide, %
	CO  float64 `json:"co_pct"`  // carbon monoxide, %
	HC  float64 `json:"hc_ppm"`  // hydrocarbons, ppm (propane equivalent)
	NO  float64 `json:"no_ppm"`  // nitric oxide, ppm
}

// Ambient holds the weather at the station during a measurement.
type Ambient struct {
	TempC       float64 `json:"temp_c"`
	HumidityPct float64 `json:"humidity_pct"`
	WindMS      float64 `json:"wind_ms"`
	PressureKPa float64 `json:"pressure_kpa"`
	Rain        bool    `json:"rain"`
}

// Reading is what the analyser measured for one vehicle pass.
type Reading struct {
	Time       time.Time  `json:"time"`       // analyser's measurement time
	Lane       int        `json:"lane"`       // 1-based lane number
	Seq        int64      `json:"seq"`        // analyser's own pass counter, informational
	Fuel       Fuel       `json:"fuel"`       // as classified by the analyser or a plate lookup
	Gases      Gases      `json:"gases"`      // corrected concentrations
	PlumeCO2   float64    `json:"plume_co2"`  // path-integrated CO2 plume strength, %·cm
	Opacity    float64    `json:"opacity"`    // smoke opacity, %
	Ringelmann float64    `json:"ringelmann"` // analyser's blackness grade 0–5; -1 when not measured
	SpeedKmh   float64    `json:"speed_kmh"`
	AccelMS2   float64    `json:"accel_ms2"`
	SlopePct   float64    `json:"slope_pct"` // road grade, %
	Ambient    Ambient    `json:"ambient"`
	Flag       StatusFlag `json:"flag"` // device state during the measurement
}

// Validate checks that a reading is physically possible and complete enough
// to be judged. It does not apply limits or validity windows.
func (r *Reading) Validate() error {
	finite := func(name string, v float64) error {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Errorf(EINVALID, "reading: %s is not a finite number", name)
		}
		return nil
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"co2_pct", r.Gases.CO2}, {"co_pct", r.Gases.CO}, {"hc_ppm", r.Gases.HC}, {"no_ppm", r.Gases.NO},
		{"plume_co2", r.PlumeCO2}, {"opacity", r.Opacity}, {"ringelmann", r.Ringelmann},
		{"speed_kmh", r.SpeedKmh}, {"accel_ms2", r.AccelMS2}, {"slope_pct", r.SlopePct},
		{"temp_c", r.Ambient.TempC}, {"humidity_pct", r.Ambient.HumidityPct},
		{"wind_ms", r.Ambient.WindMS}, {"pressure_kpa", r.Ambient.PressureKPa},
	} {
		if err := finite(f.name, f.v); err != nil {
			return err
		}
	}
	switch {
	case r.Time.IsZero():
		return Errorf(EINVALID, "reading: time is missing")
	case r.Lane < 1 || r.Lane > 16:
		return Errorf(EINVALID, "reading: lane %d out of range 1–16", r.Lane)
	case r.Fuel != FuelUnknown && r.Fuel != FuelPetrol && r.Fuel != FuelDiesel:
		return Errorf(EINVALID, "reading: unknown fuel %q", r.Fuel)
	case r.Gases.CO2 < 0 || r.Gases.CO < 0 || r.Gases.HC < 0 || r.Gases.NO < 0:
		return Errorf(EINVALID, "reading: negative gas concentration")
	case r.Opacity < 0 || r.Opacity > 100:
		return Errorf(EINVALID, "reading: opacity %.1f%% out of range 0–100", r.Opacity)
	case r.Ringelmann != -1 && (r.Ringelmann < 0 || r.Ringelmann > 5):
		return Errorf(EINVALID, "reading: Ringelmann grade %.1f out of range 0–5", r.Ringelmann)
	case r.SpeedKmh < 0 || r.SpeedKmh > 300:
		return Errorf(EINVALID, "reading: speed %.1f km/h out of range", r.SpeedKmh)
	case r.Flag != "" && !r.Flag.Valid():
		return Errorf(EINVALID, "reading: unknown status flag %q", r.Flag)
	}
	return nil
}

// DeviceStatus is a periodic status report from the analyser.
type DeviceStatus struct {
	Time    time.Time          `json:"time"`
	Flag    StatusFlag         `json:"flag"`
	Values  map[string]float64 `json:"values,omitempty"` // e.g. laser_power, detector_temp_c
	Message string             `json:"message,omitempty"`
}

// AuditKind distinguishes a routine calibration from a standard-gas audit.
type AuditKind string

const (
	AuditCalibration AuditKind = "calibration"
	AuditStandardGas AuditKind = "audit"
)

// Audit is one calibration or standard-gas audit result for one gas.
type Audit struct {
	Time      time.Time `json:"time"`
	Kind      AuditKind `json:"kind"`
	Gas       string    `json:"gas"`       // "co2", "co", "hc", "no", "opacity"
	Reference float64   `json:"reference"` // certified value of the reference gas
	Measured  float64   `json:"measured"`
	Unit      string    `json:"unit"`
	Passed    bool      `json:"passed"`
}
