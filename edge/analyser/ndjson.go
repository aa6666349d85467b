package analyser

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/plume-emissions/plume"
)

// MaxNDJSONLine is the default longest NDJSON line, newline included.
const MaxNDJSONLine = 64 << 10

// maxAckID is the longest record ID an NDJSON sender may use.
const maxAckID = 96

// ndjsonStatus is the strict shape of an NDJSON status record.
type ndjsonStatus struct {
	Type    string             `json:"type"`
	ID      string             `json:"id"`
	Station string             `json:"station"`
	Time    string             `json:"time"`
	Flag    *string            `json:"flag"`
	Values  map[string]float64 `json:"values"`
	Message string             `json:"message"`
}

// ndjsonAudit is the strict shape of an NDJSON audit record.
type ndjsonAudit struct {
	Type      string          `json:"type"`
	ID        string          `json:"id"`
	Station   string          `json:"station"`
	Time      string          `json:"time"`
	Kind      plume.AuditKind `json:"kind"`
	Gas       string          `json:"gas"`
	Reference *float64        `json:"reference"`
	Measured  *float64        `json:"measured"`
	Unit      string          `json:"unit"`
	Passed    *bool           `json:"passed"`
}

func (p *Profile) ndjsonKind(typ string) (plume.RecordKind, bool) {
	in := func(list []string, def string) bool {
		if len(list) == 0 {
			return typ == def
		}
		return slices.Contains(list, typ)
	}
	switch {
	case in(p.NDJSON.PassTypes, "pass"):
		return plume.RecordPass, true
	case in(p.NDJSON.StatusTypes, "status"):
		return plume.RecordStatus, true
	case in(p.NDJSON.AuditTypes, "audit"):
		return plume.RecordAudit, true
	}
	return "", false
}

// DecodeNDJSON decodes one NDJSON line (with or without its newline) into a
// validated message. Errors wrap ErrMalformed, ErrUnknownKind or ErrInvalid.
// The returned message carries the ack ID whenever it could be worked out,
// even with an error, so a rejection can name the record. Raw, Remote and
// ReceivedAt are left for the caller.
func (p *Profile) DecodeNDJSON(line []byte) (Message, error) {
	m := Message{Protocol: ProtocolNDJSON}
	b := bytes.TrimRight(line, "\r\n")
	if !utf8.Valid(b) {
		return m, fmt.Errorf("decode ndjson: not UTF-8: %w", ErrMalformed)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return m, fmt.Errorf("decode ndjson: not a JSON object: %w", ErrMalformed)
	}
	str := func(key string, required bool) (string, error) {
		raw, ok := obj[key]
		if !ok {
			if required {
				return "", fmt.Errorf("decode ndjson: %q is missing: %w", key, ErrMalformed)
			}
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("decode ndjson: %q is not a string: %w", key, ErrMalformed)
		}
		return s, nil
	}
	typ, err := str("type", true)
	if err != nil {
		return m, err
	}
	if m.ID, err = str("id", false); err != nil {
		return m, err
	}
	if len(m.ID) > maxAckID {
		return Message{Protocol: ProtocolNDJSON}, fmt.Errorf("decode ndjson: id longer than %d bytes: %w", maxAckID, ErrMalformed)
	}
	if m.Device, err = str("station", false); err != nil {
		return m, err
	}
	timeText, err := str("time", true)
	if err != nil {
		return m, err
	}
	kind, ok := p.ndjsonKind(typ)
	if !ok {
		return m, fmt.Errorf("decode ndjson: record type %q is not mapped by device profile %s: %w", clip(typ), p.Name, ErrUnknownKind)
	}
	m.Kind = kind
	t, err := time.Parse(time.RFC3339Nano, timeText)
	if err != nil {
		return m, fmt.Errorf("decode ndjson: time %q is not RFC 3339: %w", clip(timeText), ErrMalformed)
	}
	switch kind {
	case plume.RecordPass:
		m.Reading, err = p.ndjsonPass(obj, t)
		if m.ID == "" && m.Reading != nil {
			m.ID = timeText + "/L" + strconv.Itoa(m.Reading.Lane)
		}
	case plume.RecordStatus:
		if m.ID == "" {
			m.ID = timeText
		}
		m.Status, err = p.ndjsonStatus(b, t)
	case plume.RecordAudit:
		m.Audit, err = p.ndjsonAudit(b, t)
		if m.ID == "" && m.Audit != nil {
			m.ID = timeText + "/" + m.Audit.Gas
		}
	}
	if err != nil {
		return m, fmt.Errorf("decode ndjson %s: %w", kind, err)
	}
	return m, nil
}

func (p *Profile) ndjsonPass(obj map[string]json.RawMessage, t time.Time) (*plume.Reading, error) {
	r := &plume.Reading{Time: t, Ringelmann: -1}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	seen := map[string]bool{}
	flag := plume.FlagNormal
	for _, key := range keys {
		raw := obj[key]
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			return nil, fmt.Errorf("%q is null: %w", clip(key), ErrMalformed)
		}
		switch key {
		case "type", "id", "station", "time":
			continue
		case "flag":
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, fmt.Errorf("flag is not a string: %w", ErrMalformed)
			}
			f, _, err := p.mapFlag(s)
			if err != nil {
				return nil, err
			}
			flag = f
			continue
		}
		if slices.Contains(p.NDJSON.Ignore, key) {
			continue
		}
		fm, ok := p.NDJSON.Keys[key]
		if !ok {
			if !slices.Contains(passFields, key) {
				return nil, fmt.Errorf("key %q is not in device profile %s: %w", clip(key), p.Name, ErrMalformed)
			}
			fm = FieldMap{Field: key}
		}
		v, direct, err := p.ndjsonValue(fm.Field, key, raw, r)
		if err != nil {
			return nil, err
		}
		seen[fm.Field] = true
		if direct {
			continue // a fuel given by name is already set
		}
		if err := p.setField(r, fm.Field, fm.apply(v)); err != nil {
			return nil, err
		}
	}
	for _, field := range p.Required {
		if !seen[field] {
			return nil, fmt.Errorf("required field %s is missing: %w", field, ErrMalformed)
		}
	}
	r.Flag = flag
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return r, nil
}

// ndjsonValue reads a pass field's JSON value as a number. A fuel may be a
// name ("diesel"; set directly, direct is true) or a device code; rain
// may be a boolean.
func (p *Profile) ndjsonValue(field, key string, raw json.RawMessage, r *plume.Reading) (v float64, direct bool, err error) {
	switch field {
	case FieldFuel:
		var name string
		if json.Unmarshal(raw, &name) == nil {
			switch f := plume.Fuel(name); f {
			case plume.FuelUnknown, plume.FuelPetrol, plume.FuelDiesel:
				r.Fuel = f
				return 0, true, nil
			}
			return 0, false, fmt.Errorf("fuel %q is not petrol or diesel: %w", clip(name), ErrMalformed)
		}
	case FieldRain:
		var b bool
		if json.Unmarshal(raw, &b) == nil {
			if b {
				return 1, false, nil
			}
			return 0, false, nil
		}
	}
	if err := json.Unmarshal(raw, &v); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false, fmt.Errorf("%q is not a number: %w", clip(key), ErrMalformed)
	}
	return v, false, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	return nil
}

func (p *Profile) ndjsonStatus(b []byte, t time.Time) (*plume.DeviceStatus, error) {
	var in ndjsonStatus
	if err := strictUnmarshal(b, &in); err != nil {
		return nil, err
	}
	s := &plume.DeviceStatus{Time: t, Flag: plume.FlagNormal, Values: in.Values, Message: in.Message}
	if in.Flag != nil {
		f, _, err := p.mapFlag(*in.Flag)
		if err != nil {
			return nil, err
		}
		s.Flag = f
	}
	return s, validateStatus(s)
}

func (p *Profile) ndjsonAudit(b []byte, t time.Time) (*plume.Audit, error) {
	var in ndjsonAudit
	if err := strictUnmarshal(b, &in); err != nil {
		return nil, err
	}
	if in.Reference == nil || in.Measured == nil || in.Passed == nil {
		return nil, fmt.Errorf("reference, measured and passed are required: %w", ErrMalformed)
	}
	a := &plume.Audit{Time: t, Kind: in.Kind, Gas: in.Gas, Reference: *in.Reference, Measured: *in.Measured, Unit: in.Unit, Passed: *in.Passed}
	if a.Unit == "" {
		for _, g := range auditGases {
			if g.gas == a.Gas {
				a.Unit = g.unit
			}
		}
	}
	return a, validateAudit(a)
}

// EncodeNDJSON returns the NDJSON line (with its newline) that carries m's
// record the way this device would send it, with Plume's field names
// unless the profile renames them. id and station are written when set.
// The simulator uses it.
func (p *Profile) EncodeNDJSON(m *Message, id, station string) ([]byte, error) {
	obj := map[string]any{}
	if id != "" {
		obj["id"] = id
	}
	if station != "" {
		obj["station"] = station
	}
	typeOf := func(list []string, def string) string {
		if len(list) > 0 {
			return list[0]
		}
		return def
	}
	switch {
	case m.Kind == plume.RecordPass && m.Reading != nil:
		r := m.Reading
		obj["type"] = typeOf(p.NDJSON.PassTypes, "pass")
		obj["time"] = r.Time.Format(time.RFC3339Nano)
		obj["flag"] = p.deviceFlag(r.Flag)
		for _, field := range passFields {
			key := field
			if k, ok := p.ndKey[field]; ok {
				key = k
			}
			switch {
			case field == FieldFuel && p.ndKey[field] == "":
				obj[key] = string(r.Fuel)
			case field == FieldRain && p.ndKey[field] == "":
				obj[key] = r.Ambient.Rain
			case field == FieldRingelmann && r.Ringelmann < 0:
			case field == FieldLane || field == FieldSeq:
				obj[key] = int64(p.getField(r, field))
			default:
				fm := FieldMap{Field: field}
				if k, ok := p.ndKey[field]; ok {
					fm = p.NDJSON.Keys[k]
				}
				obj[key] = fm.unapply(p.getField(r, field))
			}
		}
	case m.Kind == plume.RecordStatus && m.Status != nil:
		s := m.Status
		obj["type"] = typeOf(p.NDJSON.StatusTypes, "status")
		obj["time"] = s.Time.Format(time.RFC3339Nano)
		obj["flag"] = p.deviceFlag(s.Flag)
		if len(s.Values) > 0 {
			obj["values"] = s.Values
		}
		if s.Message != "" {
			obj["message"] = s.Message
		}
	case m.Kind == plume.RecordAudit && m.Audit != nil:
		a := m.Audit
		obj["type"] = typeOf(p.NDJSON.AuditTypes, "audit")
		obj["time"] = a.Time.Format(time.RFC3339Nano)
		obj["kind"], obj["gas"], obj["reference"], obj["measured"], obj["unit"], obj["passed"] = a.Kind, a.Gas, a.Reference, a.Measured, a.Unit, a.Passed
	default:
		return nil, fmt.Errorf("encode ndjson: message of kind %q has no record", m.Kind)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode ndjson: %w", err)
	}
	return append(b, '\n'), nil
}

// NDJSONAck returns the acknowledgement line for a record ID.
func NDJSONAck(id string) []byte {
	b, _ := json.Marshal(struct {
		Ack string `json:"ack"`
	}{id})
	return append(b, '\n')
}

// NDJSONNak returns the rejection line for a record that was quarantined;
// id is empty when the record's ID could not be read.
func NDJSONNak(id string, reason Reason) []byte {
	b, _ := json.Marshal(struct {
		Nak    string `json:"nak"`
		Reason Reason `json:"reason"`
	}{id, reason})
	return append(b, '\n')
}

// NDJSONReply is an acknowledgement or rejection line sent back by the
// edge, as parsed by ParseNDJSONReply.
type NDJSONReply struct {
	Ack    *string `json:"ack"`
	Nak    *string `json:"nak"`
	Reason Reason  `json:"reason"`
}

// ParseNDJSONReply parses an edge reply line (for senders such as the
// simulator).
func ParseNDJSONReply(line []byte) (NDJSONReply, error) {
	var r NDJSONReply
	if err := json.Unmarshal(bytes.TrimRight(line, "\r\n"), &r); err != nil || (r.Ack == nil && r.Nak == nil) {
		return r, fmt.Errorf("parse ndjson reply: %w", ErrMalformed)
	}
	return r, nil
}

// SplitNDJSON returns a bufio.SplitFunc that cuts a stream into lines, the
// newline included. A line longer than maxLine (MaxNDJSONLine when <= 0)
// comes back in pieces of maxLine bytes, which then fail to decode and are
// quarantined rather than dropped.
func SplitNDJSON(maxLine int) func(data []byte, atEOF bool) (int, []byte, error) {
	if maxLine <= 0 {
		maxLine = MaxNDJSONLine
	}
	return func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 && i < maxLine {
			return i + 1, data[:i+1], nil
		}
		if len(data) >= maxLine {
			return maxLine, data[:maxLine], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	}
}
