package spool

import (
	"bytes"
	"testing"
)

func TestParseFrames(t *testing.T) {
	a, b, c := frame([]byte(`{"id":"a"}`)), frame([]byte(`{"id":"b"}`)), frame([]byte(`{"id":"c"}`))
	for _, tc := range []struct {
		name string
		data []byte
		want []string
		bad  int
	}{
		{"OK", bytes.Join([][]byte{a, b, c}, nil), []string{`{"id":"a"}`, `{"id":"b"}`, `{"id":"c"}`}, 0},
		{"TornTail", append(bytes.Join([][]byte{a, b}, nil), c[:len(c)-3]...), []string{`{"id":"a"}`, `{"id":"b"}`}, 1},
		{"FlippedMiddle", bytes.Join([][]byte{a, flip(b, len(b)-2), c}, nil), []string{`{"id":"a"}`, `{"id":"c"}`}, 1},
		{"FlippedLength", bytes.Join([][]byte{a, flip(b, 4), c}, nil), []string{`{"id":"a"}`, `{"id":"c"}`}, 1},
		{"LeadingJunk", append([]byte("junk"), a...), []string{`{"id":"a"}`}, 1},
		{"Empty", nil, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, bad := parseFrames(tc.data)
			if len(got) != len(tc.want) || bad != tc.bad {
				t.Fatalf("got %q (bad %d), want %q (bad %d)", got, bad, tc.want, tc.bad)
			}
			for i := range got {
				if string(got[i]) != tc.want[i] {
					t.Fatalf("frame %d: %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x08
	return b
}

// FuzzParseFrames: whatever a damaged disk hands back, parsing ends, never
// panics, and returns only frames whose checksum holds.
func FuzzParseFrames(f *testing.F) {
	f.Add(bytes.Join([][]byte{frame([]byte("x")), frame([]byte(`{"id":"b"}`))}, nil))
	f.Add([]byte(segFrameMagic + "\xff\xff\xff\xff\x00\x00\x00\x00"))
	f.Add([]byte(segFrameMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _ := parseFrames(data)
		for _, p := range got {
			if !bytes.Contains(data, frame(p)) {
				t.Fatalf("frame %q not in the input with its checksum", p)
			}
		}
	})
}

// FuzzDecodeValue: a stored value of any bytes decodes or fails with
// ErrCorruptValue; it never panics.
func FuzzDecodeValue(f *testing.F) {
	v, _ := encodeValue([]byte("k"), seenEntry{State: stateQueued, Seq: 3})
	f.Add([]byte("k"), v)
	f.Add([]byte("k"), []byte(`{"state":"queued"}`))
	f.Fuzz(func(t *testing.T, key, raw []byte) {
		var st seenEntry
		_ = decodeValue(key, raw, &st)
	})
}
