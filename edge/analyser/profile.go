package analyser

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	firmwareconfig "github.com/plume-emissions/plume/firmware-config"
)

// Plume measurement fields that a device profile maps device codes and keys
// to. The names are the NDJSON keys of a pass record.
const (
	FieldCO2         = "co2_pct"      // %
	FieldCO          = "co_pct"       // %
	FieldHC          = "hc_ppm"       // ppm
	FieldNO          = "no_ppm"       // ppm
	FieldOpacity     = "opacity"      // %
	FieldRingelmann  = "ringelmann"   // grade 0–5, -1 not measured
	FieldSpeed       = "speed_kmh"    // km/h
	FieldAccel       = "accel_ms2"    // m/s²
	FieldSlope       = "slope_pct"    // %
	FieldPlumeCO2    = "plume_co2"    // %·cm
	FieldTemp        = "temp_c"       // °C
	FieldHumidity    = "humidity_pct" // %
	FieldWind        = "wind_ms"      // m/s
	FieldPressure    = "pressure_kpa" // kPa
	FieldRain        = "rain"         // 0 dry, non-zero rain
	FieldLane        = "lane"         // 1-based integer
	FieldFuel        = "fuel"         // integer code, see Profile.FuelCodes
	FieldSeq         = "seq"          // analyser's pass counter, integer
	FieldAuditKind   = "audit_kind"   // audit records: 1 calibration, 2 standard-gas audit
	FieldAuditResult = "audit_result" // audit records: 1 passed, 0 failed

	// StatusFieldPrefix names a device status value: "status.laser_power"
	// puts the item into DeviceStatus.Values["laser_power"].
	StatusFieldPrefix = "status."
)

// passFields are the fields a pass record can carry, in encoding order.
var passFields = []string{
	FieldLane, FieldSeq, FieldFuel, FieldCO2, FieldCO, FieldHC, FieldNO, FieldOpacity,
	FieldRingelmann, FieldPlumeCO2, FieldSpeed, FieldAccel, FieldSlope,
	FieldTemp, FieldHumidity, FieldWind, FieldPressure, FieldRain,
}

// auditGases maps the gas fields an audit can check to plume.Audit's gas
// name and unit.
var auditGases = map[string]struct{ gas, unit string }{
	FieldCO2: {"co2", "%"}, FieldCO: {"co", "%"}, FieldHC: {"hc", "ppm"},
	FieldNO: {"no", "ppm"}, FieldOpacity: {"opacity", "%"},
}

func knownField(f string) bool {
	return slices.Contains(passFields, f) || f == FieldAuditKind || f == FieldAuditResult ||
		(strings.HasPrefix(f, StatusFieldPrefix) && len(f) > len(StatusFieldPrefix))
}

// FieldMap maps one device value to a Plume field:
// value = raw·Scale + Offset.
type FieldMap struct {
	Field  string   `yaml:"field"`
	Scale  *float64 `yaml:"scale"`  // default 1
	Offset float64  `yaml:"offset"` // default 0
	Note   string   `yaml:"note"`
}

func (m FieldMap) scale() float64 {
	if m.Scale == nil {
		return 1
	}
	return *m.Scale
}

// apply converts a raw device value to Plume units.
func (m FieldMap) apply(raw float64) float64 { return raw*m.scale() + m.Offset }

// unapply converts a Plume value to device units (used by the simulator),
// rounded to 6 decimals so that 14.25/0.01 is sent as 1425, not
// 1425.0000000000002.
func (m FieldMap) unapply(v float64) float64 {
	return math.Round((v-m.Offset)/m.scale()*1e6) / 1e6
}

// FlagMap maps one device data flag to a Plume status flag.
type FlagMap struct {
	Device string           `yaml:"device"`
	Plume  plume.StatusFlag `yaml:"plume"`
}

// HJ212Profile is the HJ 212 part of a device profile.
type HJ212Profile struct {
	// PassCN, StatusCN and AuditCN list the command numbers that carry
	// pass, device status and calibration/audit records.
	PassCN   []string `yaml:"pass_cn"`
	StatusCN []string `yaml:"status_cn"`
	AuditCN  []string `yaml:"audit_cn"`
	// Codes maps factor codes (the part before '-' in "a05001-Rtd") to
	// Plume fields.
	Codes map[string]FieldMap `yaml:"codes"`
	// Ignore lists factor codes, or full keys such as "a05001-ZsRtd", that
	// the device sends and Plume does not use. Anything else unmapped makes
	// a pass or audit frame malformed.
	Ignore []string `yaml:"ignore"`
}

// NDJSONProfile is the NDJSON part of a device profile.
type NDJSONProfile struct {
	// Keys maps the device's own key names to Plume fields. Plume's own
	// field names (FieldCO2, ...) are always understood and need no entry.
	Keys map[string]FieldMap `yaml:"keys"`
	// Ignore lists keys the device sends that Plume does not use.
	Ignore []string `yaml:"ignore"`
	// PassTypes, StatusTypes and AuditTypes list the "type" values of each
	// record kind; they default to "pass", "status" and "audit".
	PassTypes   []string `yaml:"pass_types"`
	StatusTypes []string `yaml:"status_types"`
	AuditTypes  []string `yaml:"audit_types"`
}

// Profile describes how one kind of analyser speaks: which HJ 212 factor
// codes and NDJSON keys carry which Plume field in which unit, which CNs
// carry which record, and how its data flags map to Plume's. Profiles are
// data: firmware-config/devices/*.yaml.
type Profile struct {
	Name   string `yaml:"name"`
	Vendor string `yaml:"vendor"`
	Model  string `yaml:"model"`
	Note   string `yaml:"note"`
	// UTCOffset is the offset of the device clock, "+08:00" for Beijing
	// time. HJ 212 DataTime values carry no zone and are read in it.
	UTCOffset string        `yaml:"utc_offset"`
	HJ212     HJ212Profile  `yaml:"hj212"`
	NDJSON    NDJSONProfile `yaml:"ndjson"`
	// Flags maps device data flags to Plume status flags, listed from the
	// least to the most severe: a reading takes the most severe flag of
	// its items. A flag that is not listed makes the record malformed.
	Flags []FlagMap `yaml:"flags"`
	// FuelCodes maps the device's numeric fuel codes to Plume fuels
	// ("" is unknown).
	FuelCodes map[int]plume.Fuel `yaml:"fuel_codes"`
	// Required lists the fields every pass record must carry.
	Required []string `yaml:"required"`

	loc      *time.Location
	severity map[string]int
	byField  map[string]string // field -> HJ 212 code, for encoding
	ndKey    map[string]string // field -> NDJSON key, for encoding
}

var (
	profileNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	cnPattern          = regexp.MustCompile(`^[0-9]{4}$`)
	codePattern        = regexp.MustCompile(`^[A-Za-z0-9]{1,24}$`)
	ignorePattern      = regexp.MustCompile(`^[A-Za-z0-9]{1,24}(-[A-Za-z0-9]{1,24})?$`)
)

// reservedNDJSONKeys are record keys with a fixed meaning.
var reservedNDJSONKeys = []string{"type", "id", "station", "time", "flag"}

// LoadProfile reads and validates a device profile file.
func LoadProfile(path string) (*Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load device profile: %w", err)
	}
	p, err := DecodeProfile(b)
	if err != nil {
		return nil, fmt.Errorf("load device profile %s: %w", path, err)
	}
	return p, nil
}

// DecodeProfile parses a device profile from YAML, rejecting unknown
// fields, and validates it.
func DecodeProfile(b []byte) (*Profile, error) {
	var p Profile
	if err := firmwareconfig.DecodeStrict(b, &p); err != nil {
		return nil, plume.Errorf(plume.EINVALID, "device profile: %s", plume.ErrorMessage(err))
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks the profile and prepares its lookup tables. Profiles
// built in Go must be validated before use.
func (p *Profile) Validate() error {
	bad := func(format string, args ...any) error {
		return plume.Errorf(plume.EINVALID, "device profile %q: %s", p.Name, fmt.Sprintf(format, args...))
	}
	if !profileNamePattern.MatchString(p.Name) {
		return bad("name must be 1–64 lowercase letters, digits, '.', '_' or '-'")
	}
	loc, err := parseOffset(p.UTCOffset)
	if err != nil {
		return bad("utc_offset: %v", err)
	}

	cns := map[string]string{}
	for kind, list := range map[string][]string{"pass_cn": p.HJ212.PassCN, "status_cn": p.HJ212.StatusCN, "audit_cn": p.HJ212.AuditCN} {
		for _, cn := range list {
			if !cnPattern.MatchString(cn) {
				return bad("hj212.%s: %q is not a 4-digit CN", kind, cn)
			}
			if prev, dup := cns[cn]; dup {
				return bad("hj212: CN %s listed in both %s and %s", cn, prev, kind)
			}
			cns[cn] = kind
		}
	}
	if len(p.HJ212.PassCN) == 0 {
		return bad("hj212.pass_cn must list at least one CN")
	}
	byField := map[string]string{}
	for code, m := range p.HJ212.Codes {
		if !codePattern.MatchString(code) {
			return bad("hj212.codes: %q is not a factor code", code)
		}
		if err := checkFieldMap(m); err != nil {
			return bad("hj212.codes.%s: %v", code, err)
		}
		if prev, dup := byField[m.Field]; dup {
			return bad("hj212.codes: %s and %s both map to %s", prev, code, m.Field)
		}
		byField[m.Field] = code
	}
	for _, k := range p.HJ212.Ignore {
		if !ignorePattern.MatchString(k) {
			return bad("hj212.ignore: %q is not a code or code-Key", k)
		}
		if _, mapped := p.HJ212.Codes[k]; mapped {
			return bad("hj212.ignore: %q is also mapped in codes", k)
		}
	}

	ndKey := map[string]string{}
	for key, m := range p.NDJSON.Keys {
		if key == "" || slices.Contains(reservedNDJSONKeys, key) {
			return bad("ndjson.keys: %q is not a usable key", key)
		}
		if knownField(key) && key != m.Field {
			return bad("ndjson.keys: %q is a Plume field name and cannot be renamed", key)
		}
		if err := checkFieldMap(m); err != nil {
			return bad("ndjson.keys.%s: %v", key, err)
		}
		if strings.HasPrefix(m.Field, StatusFieldPrefix) || m.Field == FieldAuditKind || m.Field == FieldAuditResult {
			return bad("ndjson.keys.%s: only pass fields can be mapped", key)
		}
		if prev, dup := ndKey[m.Field]; dup {
			return bad("ndjson.keys: %s and %s both map to %s", prev, key, m.Field)
		}
		ndKey[m.Field] = key
	}
	types := map[string]bool{}
	for _, list := range [][]string{p.NDJSON.PassTypes, p.NDJSON.StatusTypes, p.NDJSON.AuditTypes} {
		for _, t := range list {
			if t == "" || types[t] {
				return bad("ndjson: record type %q empty or listed twice", t)
			}
			types[t] = true
		}
	}

	if len(p.Flags) == 0 {
		return bad("flags must list at least one flag")
	}
	severity := map[string]int{}
	for i, f := range p.Flags {
		if f.Device == "" || strings.ContainsAny(f.Device, ";,=&\r\n") {
			return bad("flags[%d]: device flag %q is empty or has a separator", i, f.Device)
		}
		if !f.Plume.Valid() {
			return bad("flags[%d]: %q is not a Plume status flag", i, f.Plume)
		}
		if _, dup := severity[f.Device]; dup {
			return bad("flags: device flag %q listed twice", f.Device)
		}
		severity[f.Device] = i
	}
	if _, ok := severity[string(plume.FlagNormal)]; !ok {
		return bad("flags must map the normal flag N")
	}
	for code, fuel := range p.FuelCodes {
		if fuel != plume.FuelUnknown && fuel != plume.FuelPetrol && fuel != plume.FuelDiesel {
			return bad("fuel_codes.%d: unknown fuel %q", code, fuel)
		}
	}
	for _, f := range p.Required {
		if !slices.Contains(passFields, f) {
			return bad("required: %q is not a pass field", f)
		}
	}
	p.loc, p.severity, p.byField, p.ndKey = loc, severity, byField, ndKey
	return nil
}

func checkFieldMap(m FieldMap) error {
	if !knownField(m.Field) {
		return fmt.Errorf("unknown field %q", m.Field)
	}
	if s := m.scale(); s == 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return fmt.Errorf("scale must be a non-zero number")
	}
	if math.IsNaN(m.Offset) || math.IsInf(m.Offset, 0) {
		return fmt.Errorf("offset must be a number")
	}
	return nil
}

// parseOffset parses "+08:00", "-05:30" or "Z".
func parseOffset(s string) (*time.Location, error) {
	if s == "Z" || s == "+00:00" {
		return time.UTC, nil
	}
	t, err := time.Parse("-07:00", s)
	if err != nil {
		return nil, fmt.Errorf("%q is not an offset like +08:00", s)
	}
	_, off := t.Zone()
	return time.FixedZone(s, off), nil
}

// Location returns the zone of the device clock.
func (p *Profile) Location() *time.Location { return p.loc }

// mapFlag maps a device flag to a Plume flag and its severity.
func (p *Profile) mapFlag(device string) (plume.StatusFlag, int, error) {
	i, ok := p.severity[device]
	if !ok {
		return "", 0, fmt.Errorf("data flag %q is not in the device profile: %w", clip(device), ErrMalformed)
	}
	return p.Flags[i].Plume, i, nil
}

// deviceFlag returns the device's flag for a Plume flag (for encoding).
func (p *Profile) deviceFlag(f plume.StatusFlag) string {
	for _, m := range p.Flags {
		if m.Plume == f {
			return m.Device
		}
	}
	return p.Flags[0].Device
}

// worstFlag folds device flags into the most severe Plume flag.
type worstFlag struct {
	p    *Profile
	flag plume.StatusFlag
	sev  int
}

func (w *worstFlag) add(device string) error {
	f, sev, err := w.p.mapFlag(device)
	if err != nil {
		return err
	}
	if w.flag == "" || sev > w.sev {
		w.flag, w.sev = f, sev
	}
	return nil
}

func (w *worstFlag) result() plume.StatusFlag {
	if w.flag == "" {
		return plume.FlagNormal
	}
	return w.flag
}

// setField stores a Plume-unit value into the reading.
func (p *Profile) setField(r *plume.Reading, field string, v float64) error {
	integer := func() (int64, error) {
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return 0, fmt.Errorf("%s %v is not an integer: %w", field, v, ErrMalformed)
		}
		return int64(v), nil
	}
	switch field {
	case FieldCO2:
		r.Gases.CO2 = v
	case FieldCO:
		r.Gases.CO = v
	case FieldHC:
		r.Gases.HC = v
	case FieldNO:
		r.Gases.NO = v
	case FieldOpacity:
		r.Opacity = v
	case FieldRingelmann:
		r.Ringelmann = v
	case FieldSpeed:
		r.SpeedKmh = v
	case FieldAccel:
		r.AccelMS2 = v
	case FieldSlope:
		r.SlopePct = v
	case FieldPlumeCO2:
		r.PlumeCO2 = v
	case FieldTemp:
		r.Ambient.TempC = v
	case FieldHumidity:
		r.Ambient.HumidityPct = v
	case FieldWind:
		r.Ambient.WindMS = v
	case FieldPressure:
		r.Ambient.PressureKPa = v
	case FieldRain:
		r.Ambient.Rain = v != 0
	case FieldLane:
		n, err := integer()
		if err != nil {
			return err
		}
		if n < -1<<31 || n > 1<<31-1 {
			return fmt.Errorf("lane %d out of range: %w", n, ErrMalformed)
		}
		r.Lane = int(n)
	case FieldSeq:
		n, err := integer()
		if err != nil {
			return err
		}
		r.Seq = n
	case FieldFuel:
		n, err := integer()
		if err != nil {
			return err
		}
		fuel, ok := p.FuelCodes[int(n)]
		if !ok || n != int64(int(n)) {
			return fmt.Errorf("fuel code %d is not in the device profile: %w", n, ErrMalformed)
		}
		r.Fuel = fuel
	default:
		return fmt.Errorf("field %s cannot appear in a pass record: %w", field, ErrMalformed)
	}
	return nil
}

// getField returns a reading's value of a pass field in Plume units.
func (p *Profile) getField(r *plume.Reading, field string) float64 {
	switch field {
	case FieldCO2:
		return r.Gases.CO2
	case FieldCO:
		return r.Gases.CO
	case FieldHC:
		return r.Gases.HC
	case FieldNO:
		return r.Gases.NO
	case FieldOpacity:
		return r.Opacity
	case FieldRingelmann:
		return r.Ringelmann
	case FieldSpeed:
		return r.SpeedKmh
	case FieldAccel:
		return r.AccelMS2
	case FieldSlope:
		return r.SlopePct
	case FieldPlumeCO2:
		return r.PlumeCO2
	case FieldTemp:
		return r.Ambient.TempC
	case FieldHumidity:
		return r.Ambient.HumidityPct
	case FieldWind:
		return r.Ambient.WindMS
	case FieldPressure:
		return r.Ambient.PressureKPa
	case FieldRain:
		if r.Ambient.Rain {
			return 1
		}
		return 0
	case FieldLane:
		return float64(r.Lane)
	case FieldSeq:
		return float64(r.Seq)
	case FieldFuel:
		code, _ := p.fuelCode(r.Fuel)
		return float64(code)
	}
	return 0
}

// fuelCode returns the device code for a fuel, and whether it has one.
func (p *Profile) fuelCode(f plume.Fuel) (int, bool) {
	best, ok := 0, false
	for code, fuel := range p.FuelCodes {
		if fuel == f && (!ok || code < best) {
			best, ok = code, true
		}
	}
	return best, ok
}
