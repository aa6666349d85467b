package analyser

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// publishedExample is the data segment of the HJ 212-2017 example frame
// that circulates in vendor documents and forums, with its CRC 1C80.
const publishedExample = "QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&"

func TestCRC(t *testing.T) {
	// "A" (0x41) by hand:
	//   crc = 0xFFFF>>8 ^ 0x41 = 0x00FF ^ 0x41 = 0x00BE
	//   0x00BE even -> 0x005F
	//   0x005F odd  -> 0x002F ^ 0xA001 = 0xA02E
	//   0xA02E even -> 0x5017
	//   0x5017 odd  -> 0x280B ^ 0xA001 = 0x880A
	//   0x880A even -> 0x4405
	//   0x4405 odd  -> 0x2202 ^ 0xA001 = 0x8203
	//   0x8203 odd  -> 0x4101 ^ 0xA001 = 0xE100
	//   0xE100 even -> 0x7080
	// (CRC-16/MODBUS of "A" would be 0x807E: the algorithms differ.)
	for _, tt := range []struct {
		name string
		data string
		want uint16
	}{
		{"Empty", "", 0xFFFF},
		{"HandComputedA", "A", 0x7080},
		{"PublishedExample", publishedExample, 0x1C80},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := CRC([]byte(tt.data)); got != tt.want {
				t.Fatalf("CRC(%q) = %04X, want %04X", tt.data, got, tt.want)
			}
		})
	}
}

// frame wraps a data segment with the given length text and CRC text.
func frame(lenText, data, crcText string) []byte {
	return []byte("##" + lenText + data + crcText + "\r\n")
}

func goodFrame(data string) []byte {
	return frame(fmt.Sprintf("%04d", len(data)), data, fmt.Sprintf("%04X", CRC([]byte(data))))
}

func TestDecode(t *testing.T) {
	const pass = "QN=20261128101530123;ST=22;CN=2011;PW=123456;MN=RSD0001;Flag=5;CP=&&DataTime=20261128101530123;a05001-Rtd=13.9,a05001-Flag=N;x10004-Rtd=1&&"
	for _, tt := range []struct {
		name    string
		in      []byte
		wantErr error
		check   func(t *testing.T, f Frame)
	}{
		{"OK", goodFrame(publishedExample), nil, func(t *testing.T, f Frame) {
			if f.QN != "20160801085857223" || f.ST != "32" || f.CN != "1062" || f.PW != "100000" || f.MN != "010000A8900016F000169DC0" || f.Flag != 5 {
				t.Fatalf("header = %+v", f)
			}
			if v, _ := f.Get("RtdInterval"); v != "30" || !f.WantsAck() {
				t.Fatalf("RtdInterval = %q, ack %v", v, f.WantsAck())
			}
		}},
		{"OKPublishedBytes", []byte("##0101" + publishedExample + "1C80\r\n"), nil, nil},
		{"OKGroups", goodFrame(pass), nil, func(t *testing.T, f Frame) {
			want := [][]KV{{{"DataTime", "20261128101530123"}}, {{"a05001-Rtd", "13.9"}, {"a05001-Flag", "N"}}, {{"x10004-Rtd", "1"}}}
			if fmt.Sprint(f.CP) != fmt.Sprint(want) {
				t.Fatalf("CP = %v, want %v", f.CP, want)
			}
		}},
		{"OKLowercaseCRC", frame("0101", publishedExample, "1c80"), nil, nil},
		{"OKEmptyCP", goodFrame("ST=91;CN=9014;MN=X;CP=&&&&"), nil, nil},
		{"ErrBadCRC", frame("0101", publishedExample, "1C81"), ErrBadCRC, func(t *testing.T, f Frame) {
			if f.QN != "20160801085857223" {
				t.Fatalf("bad-CRC frame should still give its QN, got %q", f.QN)
			}
		}},
		{"ErrBadLengthShort", frame("0100", publishedExample, "1C80"), ErrBadLength, nil},
		{"ErrBadLengthDigits", frame("01x1", publishedExample, "1C80"), ErrBadLength, nil},
		{"ErrMalformedNoHashes", []byte("#!0101" + publishedExample + "1C80\r\n"), ErrMalformed, nil},
		{"ErrMalformedNoCRLF", []byte("##0101" + publishedExample + "1C80\n\n"), ErrMalformed, nil},
		{"ErrMalformedCRCDigits", frame("0101", publishedExample, "1CZ0"), ErrMalformed, nil},
		{"ErrMalformedTooShort", []byte("##"), ErrMalformed, nil},
		{"ErrMalformedNoCP", goodFrame("QN=1;ST=22;CN=2011;MN=X;Flag=5"), ErrMalformed, nil},
		{"ErrMalformedNoCN", goodFrame("QN=1;ST=22;MN=X;CP=&&&&"), ErrMalformed, nil},
		{"ErrMalformedNoMN", goodFrame("QN=1;ST=22;CN=2011;CP=&&&&"), ErrMalformed, nil},
		{"ErrMalformedBadFlag", goodFrame("ST=22;CN=2011;MN=X;Flag=x;CP=&&&&"), ErrMalformed, nil},
		{"ErrMalformedCPUnterminated", goodFrame("ST=22;CN=2011;MN=X;CP=&&a=1"), ErrMalformed, nil},
		{"ErrMalformedCPItem", goodFrame("ST=22;CN=2011;MN=X;CP=&&a01001-Rtd&&"), ErrMalformed, nil},
		{"ErrMalformedDuplicateKey", goodFrame("ST=22;CN=2011;MN=X;CP=&&a=1;a=2&&"), ErrMalformed, nil},
		{"ErrMalformedUnknownHeader", goodFrame("ST=22;CN=2011;MN=X;XX=1;CP=&&&&"), ErrMalformed, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Decode(tt.in)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Decode(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	in := Frame{QN: "20261128101530123", ST: "22", CN: "2011", PW: "123456", MN: "RSD0001", Flag: 5,
		CP: [][]KV{{{"DataTime", "20261128101530123"}}, {{"a05001-Rtd", "13.9"}, {"a05001-Flag", "N"}}}}
	b, err := Encode(&in)
	if err != nil {
		t.Fatal(err)
	}
	want := goodFrame("QN=20261128101530123;ST=22;CN=2011;PW=123456;MN=RSD0001;Flag=5;CP=&&DataTime=20261128101530123;a05001-Rtd=13.9,a05001-Flag=N&&")
	if !bytes.Equal(b, want) || !bytes.HasPrefix(b, []byte("##0126QN=")) {
		t.Fatalf("Encode = %q, want %q", b, want)
	}
	out, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", out) != fmt.Sprintf("%+v", in) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}

	t.Run("ErrMalformedSeparator", func(t *testing.T) {
		bad := in
		bad.CP = [][]KV{{{"a", "1;2"}}}
		if _, err := Encode(&bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ErrBadLengthTooLong", func(t *testing.T) {
		big := in
		big.CP = [][]KV{{{"a", strings.Repeat("9", MaxDataLen)}}}
		if _, err := Encode(&big); !errors.Is(err, ErrBadLength) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestReplies(t *testing.T) {
	f, _ := Decode(goodFrame(publishedExample))
	for _, tt := range []struct {
		name string
		got  []byte
		want string
	}{
		{"DataReply", DataReply(&f), "QN=20160801085857223;ST=91;CN=9014;PW=100000;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&"},
		{"RequestReplyBadCRC", RequestReply(&f, QnRtnBadCRC), "QN=20160801085857223;ST=91;CN=9011;PW=100000;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=9&&"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if want := goodFrame(tt.want); !bytes.Equal(tt.got, want) {
				t.Fatalf("got %q, want %q", tt.got, want)
			}
			if _, err := Decode(tt.got); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// splitAll runs a split function over chunks fed one at a time, the way a
// reader delivers them, and returns the tokens.
func splitAll(t testing.TB, split bufio.SplitFunc, chunks ...string) []string {
	t.Helper()
	var toks []string
	fr := newFrameReader(&chunkReader{chunks: append([]string(nil), chunks...)}, split, MaxFrameLen)
	for {
		tok, err := fr.next()
		if tok != nil {
			toks = append(toks, string(tok))
		}
		if err != nil {
			return toks
		}
	}
}

type chunkReader struct{ chunks []string }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, errEOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	if r.chunks[0] == "" {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

var errEOF = errors.New("EOF")

func TestSplitHJ212(t *testing.T) {
	a := string(goodFrame(publishedExample))
	b := string(goodFrame("QN=2;ST=22;CN=2011;MN=X;Flag=5;CP=&&DataTime=20261128101530&&"))
	for _, tt := range []struct {
		name   string
		chunks []string
		want   []string
	}{
		{"OKOne", []string{a}, []string{a}},
		{"OKTwoInOneRead", []string{a + b}, []string{a, b}},
		{"OKSplitAcrossReads", []string{a[:3], a[3:10], a[10:50], a[50:] + b[:7], b[7:]}, []string{a, b}},
		{"OKByteByByte", strings.Split(a, ""), []string{a}},
		{"GarbageBefore", []string{"hello\r\n" + a}, []string{"hello\r\n", a}},
		{"GarbageBetween", []string{a + "xx#x", "y" + b}, []string{a, "xx#xy", b}},
		{"GarbageAfterAtEOF", []string{a + "tail"}, []string{a, "tail"}},
		{"BadLengthDigitsResync", []string{"##00x1junk\r\n" + a}, []string{"##00x1junk\r\n", a}},
		{"BadLengthTooShortResync", []string{"##0005" + a[6:] + b}, []string{"##0005" + a[6:], b}},
		{"BadLengthTooLongResync", []string{"##0500" + a[6:], b}, []string{"##0500" + a[6:], b}},
		{"HashesInsideGarbage", []string{"####" + a}, []string{"##", "##", a}},
		{"TruncatedAtEOF", []string{a[:40]}, []string{a[:40]}},
		{"ShortHeaderAtEOF", []string{"##01"}, []string{"##01"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := splitAll(t, SplitHJ212(0), tt.chunks...)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("tokens:\n got %q\nwant %q", got, tt.want)
			}
			// Nothing is lost: the tokens put back together are the input.
			if strings.Join(got, "") != strings.Join(tt.chunks, "") {
				t.Fatalf("tokens do not cover the input")
			}
		})
	}

	t.Run("GarbageCappedAtMaxFrame", func(t *testing.T) {
		got := splitAll(t, SplitHJ212(100), strings.Repeat("z", 250))
		if len(got) != 3 || len(got[0]) != 100 || len(got[2]) != 50 {
			t.Fatalf("got %d tokens %v", len(got), got)
		}
	})
}

func FuzzDecodeHJ212(f *testing.F) {
	f.Add(goodFrame(publishedExample))
	f.Add([]byte("##0101" + publishedExample + "1C81\r\n"))
	f.Add(goodFrame("QN=20261128101530123;ST=22;CN=2011;PW=123456;MN=RSD0001;Flag=5;CP=&&DataTime=20261128101530123;a05001-Rtd=13.9,a05001-Flag=N;x10004-Rtd=1&&"))
	f.Add(goodFrame("ST=22;CN=2011;MN=X;CP=&&a=1;;b=2,c=&&"))
	f.Add([]byte("##9999"))
	p := mustProfile(f, "generic-rsd.yaml")
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Decode(b)
		if err != nil {
			return
		}
		// A decoded frame must encode back to a frame that decodes the same.
		if enc, err := Encode(&fr); err == nil {
			again, err := Decode(enc)
			if err != nil || fmt.Sprintf("%+v", again) != fmt.Sprintf("%+v", fr) {
				t.Fatalf("re-encode of %q: %v", b, err)
			}
		}
		if m, err := p.FromHJ212(&fr); err == nil && m.Kind == "pass" {
			if err := m.Reading.Validate(); err != nil {
				t.Fatalf("accepted invalid reading: %v", err)
			}
		}
		_ = DataReply(&fr)
		_ = RequestReply(&fr, QnRtnBadCRC)
	})
}

func FuzzSplitHJ212(f *testing.F) {
	a := goodFrame(publishedExample)
	f.Add(a, 3)
	f.Add(append([]byte("junk##00x1\r\n"), a...), 5)
	f.Add(append(append([]byte{}, a[:20]...), a...), 1)
	f.Fuzz(func(t *testing.T, in []byte, chunk int) {
		if chunk <= 0 || chunk > 64 {
			chunk = 7
		}
		var chunks []string
		for i := 0; i < len(in); i += chunk {
			chunks = append(chunks, string(in[i:min(i+chunk, len(in))]))
		}
		got := splitAll(t, SplitHJ212(256), chunks...)
		if strings.Join(got, "") != string(in) {
			t.Fatalf("tokens do not cover the input %q: %q", in, got)
		}
		for _, tok := range got {
			if len(tok) == 0 || len(tok) > 256 {
				t.Fatalf("token of %d bytes", len(tok))
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	p := mustProfile(b, "generic-rsd.yaml")
	raw := []byte(samplePassFrame)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.FromHJ212(&f); err != nil {
			b.Fatal(err)
		}
	}
}
