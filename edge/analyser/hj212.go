package analyser

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// HJ 212-2017 framing constants.
const (
	// MaxDataLen is the largest data segment a 4-digit length field can
	// declare.
	MaxDataLen = 9999
	// frameOverhead is "##" + 4 length digits + 4 CRC digits + "\r\n".
	frameOverhead = 2 + 4 + 4 + 2
	// MaxFrameLen is the largest complete HJ 212 frame.
	MaxFrameLen = MaxDataLen + frameOverhead
)

// Flag bits of the HJ 212-2017 Flag field: V5..V0 D A, where A asks for an
// acknowledgement, D marks a split packet and V is the protocol version
// (1 for HJ 212-2017).
const (
	FlagAck     = 1 << 0 // A: the sender wants an acknowledgement
	FlagSplit   = 1 << 1 // D: the frame is one packet of a split message
	FlagVersion = 1 << 2 // V = 1: HJ 212-2017
)

// Command numbers (CN) used in replies.
const (
	CNRequestReply = "9011" // 请求应答: carries QnRtn
	CNDataReply    = "9014" // 数据应答: acknowledges an upload
)

// QnRtn values of a 9011 reply (HJ 212-2017 table 7).
const (
	QnRtnReady    = 1 // ready to execute the request
	QnRtnRefused  = 2 // request refused
	QnRtnBadCN    = 8 // unknown command (CN)
	QnRtnBadCRC   = 9 // CRC check failed
	QnRtnUnknown  = 100
	stReplySystem = "91" // ST of system interaction (replies)
)

// Sentinel errors returned by Decode and by the ingest loop. Check them with
// errors.Is; the wrapping error says what exactly was wrong.
var (
	// ErrBadCRC is returned when a frame is well-formed but its CRC does
	// not match its data segment. Decode still returns the header fields
	// it could read so a QnRtn=9 reply can quote the QN.
	ErrBadCRC = errors.New("bad crc")
	// ErrBadLength is returned when a frame's length field is not four
	// decimal digits, exceeds MaxDataLen, or does not match the data
	// segment actually received (including a frame cut short by the end of
	// the stream).
	ErrBadLength = errors.New("bad length")
	// ErrMalformed is returned when a frame or record cannot be parsed:
	// missing "##" or "\r\n", bad CRC digits, a data segment without the
	// required fields, an unparsable value, bad JSON, or bytes between
	// frames that are not a frame at all.
	ErrMalformed = errors.New("malformed")
	// ErrUnknownKind is returned when a well-formed HJ 212 frame has a CN,
	// or an NDJSON record has a type, that the device profile does not map
	// to a pass, status or audit record.
	ErrUnknownKind = errors.New("unknown record kind")
	// ErrInvalid is returned when a record decodes but its content fails
	// validation (plume.Reading.Validate or the status/audit checks). The
	// error also wraps the *plume.Error from validation.
	ErrInvalid = errors.New("invalid record")
)

// KV is one key=value pair of an HJ 212 data segment.
type KV struct {
	Key   string
	Value string
}

// Frame is one decoded HJ 212-2017 frame. CP holds the command parameters
// as groups (separated by ';') of key=value pairs (separated by ','),
// for example {{DataTime 20261128101530}} {{a01010-Rtd 1.0} {a01010-Flag N}}.
type Frame struct {
	QN   string // request number yyyyMMddHHmmssSSS; optional in uploads
	ST   string // system code
	CN   string // command number
	PW   string // access password
	MN   string // device identifier
	Flag int    // see FlagAck, FlagSplit, FlagVersion
	PNUM string // total packets of a split message; empty when not split
	PNO  string // this packet's number; empty when not split
	CP   [][]KV
}

// Get returns the value of the first CP item with key.
func (f *Frame) Get(key string) (string, bool) {
	for _, g := range f.CP {
		for _, kv := range g {
			if kv.Key == key {
				return kv.Value, true
			}
		}
	}
	return "", false
}

// WantsAck reports whether the sender asked for an acknowledgement.
func (f *Frame) WantsAck() bool { return f.Flag&FlagAck != 0 }

// CRC returns the HJ 212-2017 CRC of a data segment. It starts at 0xFFFF;
// for each byte crc = (crc>>8) ^ b, then eight times crc is shifted right
// and XORed with 0xA001 when the bit shifted out was 1. (This is not
// CRC-16/MODBUS, which XORs the byte into the low half instead.)
func CRC(data []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, b := range data {
		crc = (crc >> 8) ^ uint16(b)
		for range 8 {
			if crc&1 != 0 {
				crc = (crc >> 1) ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// Encode returns the complete frame for f: "##", the 4-digit length, the
// data segment, the 4-digit uppercase hex CRC and "\r\n". Keys and values
// must not contain the separators ';', ',', '=' or '&', nor CR or LF.
func Encode(f *Frame) ([]byte, error) {
	data, err := encodeData(f)
	if err != nil {
		return nil, err
	}
	return frameData(data), nil
}

// frameData wraps an already encoded data segment in a frame.
func frameData(data []byte) []byte {
	out := make([]byte, 0, len(data)+frameOverhead)
	out = append(out, '#', '#')
	out = append(out, fmt.Sprintf("%04d", len(data))...)
	out = append(out, data...)
	out = append(out, fmt.Sprintf("%04X", CRC(data))...)
	return append(out, '\r', '\n')
}

func encodeData(f *Frame) ([]byte, error) {
	var b bytes.Buffer
	field := func(k, v string, sep byte) error {
		if strings.ContainsAny(k, ";,=&\r\n") || strings.ContainsAny(v, ";,=&\r\n") {
			return fmt.Errorf("encode hj212: %q=%q contains a separator: %w", k, v, ErrMalformed)
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
		b.WriteByte(sep)
		return nil
	}
	if f.CN == "" || f.ST == "" || f.MN == "" {
		return nil, fmt.Errorf("encode hj212: ST, CN and MN are required: %w", ErrMalformed)
	}
	head := []KV{{"QN", f.QN}, {"ST", f.ST}, {"CN", f.CN}, {"PW", f.PW}, {"MN", f.MN}, {"Flag", strconv.Itoa(f.Flag)}, {"PNUM", f.PNUM}, {"PNO", f.PNO}}
	for _, kv := range head {
		if kv.Value == "" && kv.Key != "PW" {
			continue
		}
		if err := field(kv.Key, kv.Value, ';'); err != nil {
			return nil, err
		}
	}
	b.WriteString("CP=&&")
	for i, g := range f.CP {
		if i > 0 {
			b.WriteByte(';')
		}
		for j, kv := range g {
			sep := byte(',')
			if j == len(g)-1 {
				sep = 0
			}
			if err := field(kv.Key, kv.Value, sep); err != nil {
				return nil, err
			}
			if sep == 0 {
				b.Truncate(b.Len() - 1)
			}
		}
	}
	b.WriteString("&&")
	if b.Len() > MaxDataLen {
		return nil, fmt.Errorf("encode hj212: data segment of %d bytes exceeds %d: %w", b.Len(), MaxDataLen, ErrBadLength)
	}
	return b.Bytes(), nil
}

// Decode parses one complete frame, as returned by SplitHJ212. It checks the
// framing, the length and the CRC, then parses the data segment.
//
// On ErrBadCRC the returned Frame holds whatever header fields (QN, MN, ...)
// could be read from the data segment, so the caller can reply QnRtn=9;
// they must not be trusted for anything else.
func Decode(b []byte) (Frame, error) {
	if len(b) < frameOverhead || b[0] != '#' || b[1] != '#' {
		return Frame{}, fmt.Errorf("decode hj212: does not start with \"##\": %w", ErrMalformed)
	}
	n, ok := parseLen(b[2:6])
	if !ok {
		return Frame{}, fmt.Errorf("decode hj212: length field %q is not 4 digits: %w", b[2:6], ErrBadLength)
	}
	if len(b) != n+frameOverhead {
		return Frame{}, fmt.Errorf("decode hj212: length field says %d, frame carries %d: %w", n, len(b)-frameOverhead, ErrBadLength)
	}
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		return Frame{}, fmt.Errorf("decode hj212: does not end with CRLF: %w", ErrMalformed)
	}
	data := b[6 : 6+n]
	crcText := b[6+n : 6+n+4]
	got, err := strconv.ParseUint(string(crcText), 16, 16)
	if err != nil {
		return Frame{}, fmt.Errorf("decode hj212: CRC field %q is not 4 hex digits: %w", crcText, ErrMalformed)
	}
	if want := CRC(data); uint16(got) != want {
		f, _ := parseData(data)
		return f, fmt.Errorf("decode hj212: CRC %s, computed %04X: %w", crcText, want, ErrBadCRC)
	}
	f, err := parseData(data)
	if err != nil {
		return f, fmt.Errorf("decode hj212: %w", err)
	}
	return f, nil
}

// parseLen parses exactly four ASCII digits.
func parseLen(b []byte) (int, bool) {
	if len(b) != 4 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// parseData parses "QN=…;ST=…;CN=…;PW=…;MN=…;Flag=…;CP=&&…&&". The header
// fields come first in any order; CP comes last.
func parseData(data []byte) (Frame, error) {
	var f Frame
	s := string(data)
	i := strings.Index(s, "CP=&&")
	if i < 0 {
		return f, fmt.Errorf("no \"CP=&&\": %w", ErrMalformed)
	}
	head, cp := s[:i], s[i+len("CP=&&"):]
	seen := map[string]bool{}
	for _, item := range strings.Split(head, ";") {
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return f, fmt.Errorf("header item %q has no '=': %w", clip(item), ErrMalformed)
		}
		if seen[k] {
			return f, fmt.Errorf("header field %s twice: %w", k, ErrMalformed)
		}
		seen[k] = true
		switch k {
		case "QN":
			f.QN = v
		case "ST":
			f.ST = v
		case "CN":
			f.CN = v
		case "PW":
			f.PW = v
		case "MN":
			f.MN = v
		case "PNUM":
			f.PNUM = v
		case "PNO":
			f.PNO = v
		case "Flag":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 255 {
				return f, fmt.Errorf("the Flag field %q is not a number 0–255: %w", clip(v), ErrMalformed)
			}
			f.Flag = n
		default:
			return f, fmt.Errorf("unknown header field %q: %w", clip(k), ErrMalformed)
		}
	}
	// Flag is optional (HJ 212-2005 style uploads); absent means 0, no ack.
	switch {
	case f.ST == "":
		return f, fmt.Errorf("ST is missing: %w", ErrMalformed)
	case f.CN == "":
		return f, fmt.Errorf("CN is missing: %w", ErrMalformed)
	case f.MN == "":
		return f, fmt.Errorf("MN is missing: %w", ErrMalformed)
	case !strings.HasSuffix(cp, "&&"):
		return f, fmt.Errorf("CP does not end with \"&&\": %w", ErrMalformed)
	}
	cp = strings.TrimSuffix(cp, "&&")
	if cp == "" {
		return f, nil
	}
	if strings.Contains(cp, "&") {
		return f, fmt.Errorf("stray '&' in CP: %w", ErrMalformed)
	}
	keys := map[string]bool{}
	for _, group := range strings.Split(cp, ";") {
		if group == "" {
			continue
		}
		var g []KV
		for _, item := range strings.Split(group, ",") {
			k, v, ok := strings.Cut(item, "=")
			if !ok || k == "" {
				return f, fmt.Errorf("CP item %q is not key=value: %w", clip(item), ErrMalformed)
			}
			if keys[k] {
				return f, fmt.Errorf("CP key %q twice: %w", clip(k), ErrMalformed)
			}
			keys[k] = true
			g = append(g, KV{k, v})
		}
		f.CP = append(f.CP, g)
	}
	return f, nil
}

// clip shortens s for error messages.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// DataReply returns the 9014 data acknowledgement for f: it quotes f's QN,
// PW and MN and carries an empty CP.
func DataReply(f *Frame) []byte {
	return reply(f, CNDataReply, nil)
}

// RequestReply returns a 9011 reply for f with the given QnRtn, for example
// QnRtnBadCRC for a frame whose CRC did not match.
func RequestReply(f *Frame, qnRtn int) []byte {
	return reply(f, CNRequestReply, [][]KV{{{"QnRtn", strconv.Itoa(qnRtn)}}})
}

func reply(f *Frame, cn string, cp [][]KV) []byte {
	r := Frame{QN: f.QN, ST: stReplySystem, CN: cn, PW: f.PW, MN: f.MN, Flag: FlagVersion, CP: cp}
	data, err := encodeData(&r)
	if err != nil {
		// The fields came from a decoded frame, so they hold no
		// separators; a failure here is a bug. Reply without them.
		r.PW, r.MN = "", "-"
		data, _ = encodeData(&r)
	}
	return frameData(data)
}

// SplitHJ212 returns a bufio.SplitFunc that cuts a byte stream into HJ 212
// frames. It never drops bytes: whatever is not a frame (garbage before a
// "##", a frame with an impossible length field, the tail of a stream cut
// mid-frame) comes back as its own token, which Decode then rejects with a
// reason, so the caller can quarantine it. Tokens are at most maxFrame
// bytes (MaxFrameLen when maxFrame <= 0 or larger than MaxFrameLen).
//
// Resynchronisation: garbage is cut at the next "##"; a frame whose length
// field is unreadable or too large, or whose data segment contains CRLF
// before the declared end, is cut after that CRLF or before the next "##",
// whichever comes first.
func SplitHJ212(maxFrame int) func(data []byte, atEOF bool) (int, []byte, error) {
	if maxFrame <= 0 || maxFrame > MaxFrameLen {
		maxFrame = MaxFrameLen
	}
	return func(data []byte, atEOF bool) (int, []byte, error) {
		if len(data) == 0 {
			return 0, nil, nil
		}
		if !bytes.HasPrefix(data, []byte("##")) {
			// Garbage: cut at the next "##".
			if i := bytes.Index(data, []byte("##")); i > 0 {
				return cutAt(i, data, maxFrame)
			}
			if atEOF || len(data) >= maxFrame {
				return cutAt(len(data), data, maxFrame)
			}
			return 0, nil, nil // wait: the "##" may be on its way
		}
		if len(data) < 6 {
			if atEOF {
				return len(data), data, nil
			}
			return 0, nil, nil
		}
		n, ok := parseLen(data[2:6])
		if ok && n <= maxFrame-frameOverhead {
			total := n + frameOverhead
			// A data segment never contains CRLF: one before the
			// declared end means the length field lies.
			end := min(total-2, len(data))
			if i := bytes.Index(data[6:end], []byte("\r\n")); i >= 0 {
				return 6 + i + 2, data[:6+i+2], nil
			}
			if len(data) >= total {
				if data[total-2] == '\r' && data[total-1] == '\n' {
					return total, data[:total], nil
				}
				return resync(data, true, maxFrame)
			}
			if atEOF {
				return len(data), data, nil
			}
			return 0, nil, nil
		}
		return resync(data, atEOF, maxFrame)
	}
}

// resync cuts a bad frame starting with "##" after the first CRLF or before
// the next "##", whichever comes first.
func resync(data []byte, atEOF bool, maxFrame int) (int, []byte, error) {
	rest := data[2:]
	cut := -1
	if i := bytes.Index(rest, []byte("\r\n")); i >= 0 {
		cut = 2 + i + 2
	}
	if i := bytes.Index(rest, []byte("##")); i >= 0 && (cut < 0 || 2+i < cut) {
		cut = 2 + i
	}
	if cut > 0 {
		return cutAt(cut, data, maxFrame)
	}
	if atEOF || len(data) >= maxFrame {
		return cutAt(len(data), data, maxFrame)
	}
	return 0, nil, nil
}

func cutAt(i int, data []byte, maxFrame int) (int, []byte, error) {
	i = min(i, maxFrame)
	return i, data[:i], nil
}
