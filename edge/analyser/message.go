package analyser

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
)

// Protocols an analyser can speak.
const (
	ProtocolHJ212  = "hj212"
	ProtocolNDJSON = "ndjson"
)

// Message is one record received from an analyser, decoded and validated.
// Exactly one of Reading, Status and Audit is set, as Kind says.
type Message struct {
	Kind     plume.RecordKind
	Protocol string // ProtocolHJ212 or ProtocolNDJSON
	// Raw is the exact bytes received: the whole HJ 212 frame from "##"
	// to "\r\n", or the NDJSON line including its newline. Keep it as the
	// analyser-raw evidence item.
	Raw []byte
	// ID identifies the record to its sender: the HJ 212 QN, or the NDJSON
	// ack ID (see the package documentation).
	ID string
	// Device is who the analyser says it is: the HJ 212 MN or the NDJSON
	// "station" field, unchecked. The agent may compare it with its
	// configuration.
	Device     string
	Remote     string    // peer address, or "serial:/dev/ttyS0"
	ReceivedAt time.Time // edge clock when the record was read
	Reading    *plume.Reading
	Status     *plume.DeviceStatus
	Audit      *plume.Audit
}

// Handler receives every valid message. It runs synchronously on the
// connection's goroutine and must return nil only once the message is
// durably stored: only then is the record acknowledged. On error nothing is
// acknowledged, so the analyser sends the record again. Handlers of a
// Server are called concurrently from several connections.
type Handler func(ctx context.Context, m Message) error

// kindOfCN returns the record kind the profile gives a CN.
func (p *Profile) kindOfCN(cn string) (plume.RecordKind, bool) {
	switch {
	case slices.Contains(p.HJ212.PassCN, cn):
		return plume.RecordPass, true
	case slices.Contains(p.HJ212.StatusCN, cn):
		return plume.RecordStatus, true
	case slices.Contains(p.HJ212.AuditCN, cn):
		return plume.RecordAudit, true
	}
	return "", false
}

func (p *Profile) ignoredHJ212(code, key string) bool {
	return slices.Contains(p.HJ212.Ignore, code) || slices.Contains(p.HJ212.Ignore, key)
}

// parseNumber parses a finite decimal number.
func parseNumber(key, s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s=%q is not a finite number: %w", clip(key), clip(s), ErrMalformed)
	}
	return v, nil
}

// parseDataTime parses an HJ 212 DataTime, yyyyMMddHHmmss, or with
// milliseconds yyyyMMddHHmmssSSS (a common vendor extension that remote
// sensing needs: pass IDs are per millisecond).
func (p *Profile) parseDataTime(s string) (time.Time, error) {
	var t time.Time
	var err error
	switch len(s) {
	case 14:
		t, err = time.ParseInLocation("20060102150405", s, p.loc)
	case 17:
		t, err = time.ParseInLocation("20060102150405.000", s[:14]+"."+s[14:], p.loc)
	default:
		err = fmt.Errorf("want 14 or 17 digits")
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("DataTime %q: %v: %w", clip(s), err, ErrMalformed)
	}
	return t, nil
}

// formatDataTime formats t as a 17-digit DataTime in the device zone.
func (p *Profile) formatDataTime(t time.Time) string {
	t = t.In(p.loc)
	return t.Format("20060102150405") + fmt.Sprintf("%03d", t.Nanosecond()/1e6)
}

// FromHJ212 turns a decoded frame into a validated message. Errors wrap
// ErrUnknownKind (the CN is not mapped), ErrMalformed (unmapped codes,
// unparsable values, a missing required field) or ErrInvalid (the record
// fails validation). Raw, Remote and ReceivedAt are left for the caller.
func (p *Profile) FromHJ212(f *Frame) (Message, error) {
	m := Message{Protocol: ProtocolHJ212, ID: f.QN, Device: f.MN}
	kind, ok := p.kindOfCN(f.CN)
	if !ok {
		return m, fmt.Errorf("CN %s is not mapped by device profile %s: %w", clip(f.CN), p.Name, ErrUnknownKind)
	}
	m.Kind = kind
	if f.Flag&FlagSplit != 0 || f.PNUM != "" {
		return m, fmt.Errorf("split packets are not supported: %w", ErrMalformed)
	}
	dt, ok := f.Get("DataTime")
	if !ok {
		return m, fmt.Errorf("DataTime is missing: %w", ErrMalformed)
	}
	t, err := p.parseDataTime(dt)
	if err != nil {
		return m, err
	}
	switch kind {
	case plume.RecordPass:
		m.Reading, err = p.hj212Pass(f, t)
	case plume.RecordStatus:
		m.Status, err = p.hj212Status(f, t)
	case plume.RecordAudit:
		m.Audit, err = p.hj212Audit(f, t)
	}
	return m, err
}

// items calls fn for every CP item except DataTime, split into the factor
// code and the sub-key ("a05001", "Rtd"); sub is "" for keys without '-'.
func (f *Frame) items(fn func(code, sub, key, value string) error) error {
	for _, g := range f.CP {
		for _, kv := range g {
			if kv.Key == "DataTime" {
				continue
			}
			code, sub, _ := strings.Cut(kv.Key, "-")
			if err := fn(code, sub, kv.Key, kv.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *Profile) hj212Pass(f *Frame, t time.Time) (*plume.Reading, error) {
	r := &plume.Reading{Time: t, Ringelmann: -1}
	w := worstFlag{p: p}
	seen := map[string]bool{}
	err := f.items(func(code, sub, key, value string) error {
		if p.ignoredHJ212(code, key) {
			return nil
		}
		fm, ok := p.HJ212.Codes[code]
		if !ok {
			return fmt.Errorf("factor code %q is not in device profile %s: %w", clip(code), p.Name, ErrMalformed)
		}
		switch sub {
		case "Rtd":
			v, err := parseNumber(key, value)
			if err != nil {
				return err
			}
			seen[fm.Field] = true
			return p.setField(r, fm.Field, fm.apply(v))
		case "Flag":
			return w.add(value)
		}
		return fmt.Errorf("item %q: only -Rtd and -Flag are understood in a pass: %w", clip(key), ErrMalformed)
	})
	if err != nil {
		return nil, err
	}
	for _, field := range p.Required {
		if !seen[field] {
			return nil, fmt.Errorf("required field %s is missing: %w", field, ErrMalformed)
		}
	}
	r.Flag = w.result()
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return r, nil
}

func (p *Profile) hj212Status(f *Frame, t time.Time) (*plume.DeviceStatus, error) {
	s := &plume.DeviceStatus{Time: t, Values: map[string]float64{}}
	w := worstFlag{p: p}
	err := f.items(func(code, sub, key, value string) error {
		if p.ignoredHJ212(code, key) {
			return nil
		}
		if sub == "Flag" {
			return w.add(value)
		}
		v, err := parseNumber(key, value)
		if err != nil {
			return err
		}
		name := key
		if fm, ok := p.HJ212.Codes[code]; ok && (sub == "Rtd" || sub == "Info") {
			name = strings.TrimPrefix(fm.Field, StatusFieldPrefix)
			v = fm.apply(v)
		}
		s.Values[name] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.Flag = w.result()
	if len(s.Values) == 0 {
		s.Values = nil
	}
	return s, validateStatus(s)
}

func (p *Profile) hj212Audit(f *Frame, t time.Time) (*plume.Audit, error) {
	a := &plume.Audit{Time: t}
	var gasCode string
	var haveRef, haveMeasured, haveKind, haveResult bool
	err := f.items(func(code, sub, key, value string) error {
		if p.ignoredHJ212(code, key) {
			return nil
		}
		fm, ok := p.HJ212.Codes[code]
		if !ok {
			return fmt.Errorf("factor code %q is not in device profile %s: %w", clip(code), p.Name, ErrMalformed)
		}
		if sub == "Flag" {
			_, _, err := p.mapFlag(value)
			return err
		}
		v, err := parseNumber(key, value)
		if err != nil {
			return err
		}
		switch {
		case fm.Field == FieldAuditKind && sub == "Rtd":
			haveKind = true
			switch v {
			case 1:
				a.Kind = plume.AuditCalibration
			case 2:
				a.Kind = plume.AuditStandardGas
			default:
				return fmt.Errorf("audit kind %v is neither 1 (calibration) nor 2 (audit): %w", v, ErrMalformed)
			}
		case fm.Field == FieldAuditResult && sub == "Rtd":
			haveResult = true
			a.Passed = v == 1
		case auditGases[fm.Field].gas != "" && (sub == "Rtd" || sub == "Ref"):
			if gasCode != "" && gasCode != code {
				return fmt.Errorf("audit frame carries two gases (%s, %s): %w", gasCode, clip(code), ErrMalformed)
			}
			gasCode = code
			a.Gas, a.Unit = auditGases[fm.Field].gas, auditGases[fm.Field].unit
			if sub == "Rtd" {
				a.Measured, haveMeasured = fm.apply(v), true
			} else {
				a.Reference, haveRef = fm.apply(v), true
			}
		default:
			return fmt.Errorf("item %q has no meaning in an audit record: %w", clip(key), ErrMalformed)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !haveRef || !haveMeasured || !haveKind || !haveResult {
		return nil, fmt.Errorf("audit needs the gas -Rtd and -Ref, the kind and the result: %w", ErrMalformed)
	}
	return a, validateAudit(a)
}

// validateStatus checks a status record; the root package has no such
// check of its own.
func validateStatus(s *plume.DeviceStatus) error {
	switch {
	case s.Time.IsZero():
		return fmt.Errorf("%w: %w", ErrInvalid, plume.Errorf(plume.EINVALID, "status: time is missing"))
	case !s.Flag.Valid():
		return fmt.Errorf("%w: %w", ErrInvalid, plume.Errorf(plume.EINVALID, "status: bad flag %q", s.Flag))
	}
	for k, v := range s.Values {
		if k == "" || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: %w", ErrInvalid, plume.Errorf(plume.EINVALID, "status: bad value %q", clip(k)))
		}
	}
	return nil
}

// validateAudit checks an audit record.
func validateAudit(a *plume.Audit) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrInvalid, plume.Errorf(plume.EINVALID, "audit: "+format, args...))
	}
	switch {
	case a.Time.IsZero():
		return bad("time is missing")
	case a.Kind != plume.AuditCalibration && a.Kind != plume.AuditStandardGas:
		return bad("kind %q is neither calibration nor audit", clip(string(a.Kind)))
	case a.Gas == "":
		return bad("gas is missing")
	case math.IsNaN(a.Reference) || math.IsInf(a.Reference, 0) || math.IsNaN(a.Measured) || math.IsInf(a.Measured, 0):
		return bad("values must be finite numbers")
	case a.Reference < 0 || a.Measured < 0:
		return bad("negative concentration")
	}
	for _, g := range auditGases {
		if g.gas == a.Gas {
			if a.Unit != "" && a.Unit != g.unit {
				return bad("%s is measured in %s, not %q", a.Gas, g.unit, clip(a.Unit))
			}
			return nil
		}
	}
	return bad("unknown gas %q", clip(a.Gas))
}

// HJ212Frame builds the HJ 212 frame that carries m's record the way this
// device would send it. The simulator uses it; the header fields (QN, ST,
// PW, MN, Flag) come from hdr, and CN is the profile's first CN for the
// record kind.
func (p *Profile) HJ212Frame(m *Message, hdr Frame) (Frame, error) {
	f := hdr
	var cns []string
	var cp [][]KV
	var err error
	switch m.Kind {
	case plume.RecordPass:
		cns = p.HJ212.PassCN
		cp, err = p.passCP(m.Reading)
	case plume.RecordStatus:
		cns = p.HJ212.StatusCN
		cp, err = p.statusCP(m.Status)
	case plume.RecordAudit:
		cns = p.HJ212.AuditCN
		cp, err = p.auditCP(m.Audit)
	}
	if err == nil && len(cns) == 0 {
		err = fmt.Errorf("device profile %s has no CN for %q records", p.Name, m.Kind)
	}
	if err != nil {
		return Frame{}, fmt.Errorf("build hj212 frame: %w", err)
	}
	f.CN, f.CP = cns[0], cp
	return f, nil
}

func formatNumber(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func (p *Profile) passCP(r *plume.Reading) ([][]KV, error) {
	if r == nil {
		return nil, fmt.Errorf("pass without a reading")
	}
	cp := [][]KV{{{"DataTime", p.formatDataTime(r.Time)}}}
	flag := p.deviceFlag(r.Flag)
	for _, field := range passFields {
		code, ok := p.byField[field]
		if !ok || (field == FieldRingelmann && r.Ringelmann < 0) {
			continue
		}
		fm := p.HJ212.Codes[code]
		cp = append(cp, []KV{{code + "-Rtd", formatNumber(fm.unapply(p.getField(r, field)))}, {code + "-Flag", flag}})
	}
	return cp, nil
}

func (p *Profile) statusCP(s *plume.DeviceStatus) ([][]KV, error) {
	if s == nil {
		return nil, fmt.Errorf("status without a record")
	}
	cp := [][]KV{{{"DataTime", p.formatDataTime(s.Time)}}}
	names := make([]string, 0, len(s.Values))
	for k := range s.Values {
		names = append(names, k)
	}
	sort.Strings(names)
	flag := p.deviceFlag(s.Flag)
	for _, name := range names {
		code, ok := p.byField[StatusFieldPrefix+name]
		v := s.Values[name]
		if ok {
			v = p.HJ212.Codes[code].unapply(v)
		} else if codePattern.MatchString(name) {
			code = name
		} else {
			return nil, fmt.Errorf("status value %q has no code in device profile %s", name, p.Name)
		}
		cp = append(cp, []KV{{code + "-Rtd", formatNumber(v)}, {code + "-Flag", flag}})
	}
	return cp, nil
}

func (p *Profile) auditCP(a *plume.Audit) ([][]KV, error) {
	if a == nil {
		return nil, fmt.Errorf("audit without a record")
	}
	var gasField string
	for f, g := range auditGases {
		if g.gas == a.Gas {
			gasField = f
		}
	}
	gasCode, ok := p.byField[gasField]
	kindCode, ok2 := p.byField[FieldAuditKind]
	resCode, ok3 := p.byField[FieldAuditResult]
	if !ok || !ok2 || !ok3 {
		return nil, fmt.Errorf("device profile %s cannot carry a %q audit", p.Name, a.Gas)
	}
	fm := p.HJ212.Codes[gasCode]
	kind, result := "1", "0"
	if a.Kind == plume.AuditStandardGas {
		kind = "2"
	}
	if a.Passed {
		result = "1"
	}
	return [][]KV{
		{{"DataTime", p.formatDataTime(a.Time)}},
		{{gasCode + "-Rtd", formatNumber(fm.unapply(a.Measured))}, {gasCode + "-Ref", formatNumber(fm.unapply(a.Reference))}, {gasCode + "-Flag", p.deviceFlag(plume.FlagCalibration)}},
		{{kindCode + "-Rtd", kind}},
		{{resCode + "-Rtd", result}},
	}, nil
}
