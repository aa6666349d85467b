package analyser

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
)

const samplePassLine = `{"type":"pass","station":"GD-SZ-0001","time":"2026-11-28T10:15:30.123+08:00","lane":1,"seq":12,"fuel":"diesel","co2_pct":12.1,"co_pct":0.02,"hc_ppm":20,"no_ppm":480,"opacity":6.5,"ringelmann":0,"speed_kmh":42.5,"accel_ms2":0.4,"slope_pct":1.5,"plume_co2":38,"temp_c":18.2,"humidity_pct":61,"wind_ms":2.1,"pressure_kpa":101.3,"rain":false,"flag":"N"}` + "\n"

func TestDecodeNDJSON(t *testing.T) {
	p := mustProfile(t, "generic-rsd.yaml")
	minimal := func(extra string) string {
		return `{"type":"pass","time":"2026-11-28T02:15:30.5Z","lane":2,"co2_pct":14,"no_ppm":100,"speed_kmh":40,"accel_ms2":0.3,"plume_co2":30` + extra + "}\n"
	}
	for _, tt := range []struct {
		name    string
		line    string
		wantErr error
		wantID  string
		check   func(t *testing.T, m Message)
	}{
		{"OKPass", samplePassLine, nil, "2026-11-28T10:15:30.123+08:00/L1", func(t *testing.T, m Message) {
			r := m.Reading
			want := plume.Reading{
				Time: time.Date(2026, 11, 28, 2, 15, 30, 123e6, time.UTC), Lane: 1, Seq: 12, Fuel: plume.FuelDiesel,
				Gases: plume.Gases{CO2: 12.1, CO: 0.02, HC: 20, NO: 480}, PlumeCO2: 38, Opacity: 6.5, Ringelmann: 0,
				SpeedKmh: 42.5, AccelMS2: 0.4, SlopePct: 1.5, Flag: plume.FlagNormal,
				Ambient: plume.Ambient{TempC: 18.2, HumidityPct: 61, WindMS: 2.1, PressureKPa: 101.3},
			}
			if !r.Time.Equal(want.Time) {
				t.Fatalf("time %v", r.Time)
			}
			r.Time = want.Time
			if *r != want || m.Device != "GD-SZ-0001" || m.Kind != plume.RecordPass {
				t.Fatalf("got %+v\nwant %+v", *r, want)
			}
		}},
		{"OKSenderID", minimal(`,"id":"p-42"`), nil, "p-42", nil},
		{"OKCRLF", strings.TrimSuffix(minimal(""), "\n") + "\r\n", nil, "2026-11-28T02:15:30.5Z/L2", func(t *testing.T, m Message) {
			if m.Reading.Ringelmann != -1 || m.Reading.Fuel != "" {
				t.Fatalf("reading %+v", m.Reading)
			}
		}},
		{"OKFuelCodeRainNumber", minimal(`,"fuel":1,"rain":1`), nil, "", func(t *testing.T, m Message) {
			if m.Reading.Fuel != plume.FuelPetrol || !m.Reading.Ambient.Rain {
				t.Fatalf("reading %+v", m.Reading)
			}
		}},
		{"OKStatus", `{"type":"status","time":"2026-11-28T10:00:00+08:00","flag":"M","values":{"laser_power":0.9},"message":"lens cleaning"}`, nil, "2026-11-28T10:00:00+08:00", func(t *testing.T, m Message) {
			if m.Status.Flag != plume.FlagMaintenance || m.Status.Values["laser_power"] != 0.9 || m.Status.Message != "lens cleaning" {
				t.Fatalf("status %+v", m.Status)
			}
		}},
		{"OKAudit", `{"type":"audit","time":"2026-11-28T10:00:00+08:00","kind":"calibration","gas":"no","reference":1000,"measured":990,"passed":true}`, nil, "2026-11-28T10:00:00+08:00/no", func(t *testing.T, m Message) {
			if a := m.Audit; a.Kind != plume.AuditCalibration || a.Unit != "ppm" || a.Measured != 990 || !a.Passed {
				t.Fatalf("audit %+v", a)
			}
		}},
		{"ErrMalformedNotJSON", "hello\n", ErrMalformed, "", nil},
		{"ErrMalformedArray", "[1,2]\n", ErrMalformed, "", nil},
		{"ErrMalformedTrailing", `{"type":"pass"} {}`, ErrMalformed, "", nil},
		{"ErrMalformedNoType", `{"time":"2026-11-28T02:15:30Z"}`, ErrMalformed, "", nil},
		{"ErrMalformedNoTime", `{"type":"pass","id":"x"}`, ErrMalformed, "x", nil},
		{"ErrMalformedBadTime", `{"type":"pass","id":"x","time":"2026-11-28 02:15:30"}`, ErrMalformed, "x", nil},
		{"ErrMalformedTimeWithoutZone", `{"type":"pass","time":"2026-11-28T02:15:30"}`, ErrMalformed, "", nil},
		{"ErrMalformedUnknownKey", minimal(`,"colour":"red"`), ErrMalformed, "", nil},
		{"ErrMalformedNull", minimal(`,"opacity":null`), ErrMalformed, "", nil},
		{"ErrMalformedStringNumber", minimal(`,"opacity":"5"`), ErrMalformed, "", nil},
		{"ErrMalformedFuel", minimal(`,"fuel":"hydrogen"`), ErrMalformed, "", nil},
		{"ErrMalformedFlag", minimal(`,"flag":"Z"`), ErrMalformed, "", nil},
		{"ErrMalformedRequired", `{"type":"pass","time":"2026-11-28T02:15:30Z","lane":1}`, ErrMalformed, "", nil},
		{"ErrMalformedLongID", minimal(`,"id":"` + strings.Repeat("x", 97) + `"`), ErrMalformed, "", nil},
		{"ErrMalformedStatusUnknownKey", `{"type":"status","time":"2026-11-28T10:00:00Z","colour":1}`, ErrMalformed, "2026-11-28T10:00:00Z", nil},
		{"ErrMalformedAuditMissing", `{"type":"audit","time":"2026-11-28T10:00:00Z","kind":"audit","gas":"co"}`, ErrMalformed, "", nil},
		{"ErrUnknownKind", `{"type":"heartbeat","time":"2026-11-28T10:00:00Z"}`, ErrUnknownKind, "", nil},
		{"ErrInvalidLane", strings.Replace(minimal(""), `"lane":2`, `"lane":17`, 1), ErrInvalid, "", nil},
		{"ErrInvalidSpeed", minimal(`,"speed_kmh":400`), ErrInvalid, "", nil},
		{"ErrInvalidAuditGas", `{"type":"audit","time":"2026-11-28T10:00:00Z","kind":"audit","gas":"so2","reference":1,"measured":1,"passed":true}`, ErrInvalid, "", nil},
		{"ErrInvalidAuditKind", `{"type":"audit","time":"2026-11-28T10:00:00Z","kind":"zero","gas":"co","reference":1,"measured":1,"passed":true}`, ErrInvalid, "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := p.DecodeNDJSON([]byte(tt.line))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("DecodeNDJSON error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantID != "" && m.ID != tt.wantID {
				t.Fatalf("ID = %q, want %q", m.ID, tt.wantID)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func TestNDJSONRoundTrip(t *testing.T) {
	p := mustProfile(t, "generic-rsd.yaml")
	at := time.Date(2026, 11, 28, 2, 15, 30, 7e6, time.UTC)
	for _, m := range []Message{
		{Kind: plume.RecordPass, Reading: &plume.Reading{Time: at, Lane: 1, Fuel: plume.FuelPetrol, Gases: plume.Gases{CO2: 14, CO: 0.3, HC: 90, NO: 200}, PlumeCO2: 40, Ringelmann: -1, SpeedKmh: 50, AccelMS2: 0.2, Flag: plume.FlagOverRange}},
		{Kind: plume.RecordStatus, Status: &plume.DeviceStatus{Time: at, Flag: plume.FlagNormal, Values: map[string]float64{"laser_power": 0.95}}},
		{Kind: plume.RecordAudit, Audit: &plume.Audit{Time: at, Kind: plume.AuditStandardGas, Gas: "hc", Reference: 500, Measured: 480, Unit: "ppm"}},
	} {
		t.Run(string(m.Kind), func(t *testing.T) {
			line, err := p.EncodeNDJSON(&m, "id-1", "GD-SZ-0001")
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.DecodeNDJSON(line)
			if err != nil {
				t.Fatalf("decode %s: %v", line, err)
			}
			if got.ID != "id-1" || got.Kind != m.Kind {
				t.Fatalf("got %+v", got)
			}
			switch m.Kind {
			case plume.RecordPass:
				assertReadingNear(t, "ndjson", got.Reading, m.Reading)
			case plume.RecordStatus:
				if got.Status.Values["laser_power"] != 0.95 || !got.Status.Time.Equal(at) {
					t.Fatalf("status %+v", got.Status)
				}
			case plume.RecordAudit:
				a := *got.Audit
				if !a.Time.Equal(at) {
					t.Fatalf("audit time %v", a.Time)
				}
				a.Time = at
				if a != *m.Audit {
					t.Fatalf("audit %+v", got.Audit)
				}
			}
		})
	}
}

func TestNDJSONReplies(t *testing.T) {
	r, err := ParseNDJSONReply(NDJSONAck(`a"b`))
	if err != nil || r.Ack == nil || *r.Ack != `a"b` {
		t.Fatalf("ack: %+v %v", r, err)
	}
	r, err = ParseNDJSONReply(NDJSONNak("x", ReasonInvalid))
	if err != nil || r.Nak == nil || *r.Nak != "x" || r.Reason != ReasonInvalid {
		t.Fatalf("nak: %+v %v", r, err)
	}
	if _, err := ParseNDJSONReply([]byte("{}\n")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty reply: %v", err)
	}
}

func TestSplitNDJSON(t *testing.T) {
	got := splitAll(t, SplitNDJSON(10), "ab\ncd", "e\n", "0123456789abc\n", "tail")
	want := []string{"ab\n", "cde\n", "0123456789", "abc\n", "tail"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func FuzzDecodeNDJSON(f *testing.F) {
	f.Add([]byte(samplePassLine))
	f.Add([]byte(`{"type":"status","time":"2026-11-28T10:00:00+08:00","flag":"M","values":{"laser_power":0.9}}`))
	f.Add([]byte(`{"type":"audit","time":"2026-11-28T10:00:00+08:00","kind":"calibration","gas":"no","reference":1000,"measured":990,"passed":true}`))
	f.Add([]byte(`{"type":"pass","time":"2026-11-28T02:15:30Z","lane":1,"fuel":2,"rain":true}`))
	f.Add([]byte(`{"type":"pass","lane":1e400}`))
	generic := mustProfile(f, "generic-rsd.yaml")
	vendor := mustProfile(f, "example-vendor-rsd.yaml")
	f.Fuzz(func(t *testing.T, line []byte) {
		for _, p := range []*Profile{generic, vendor} {
			m, err := p.DecodeNDJSON(line)
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnknownKind) {
					t.Fatalf("error without a sentinel: %v", err)
				}
				continue
			}
			if len(m.ID) == 0 {
				t.Fatalf("accepted record without an ack ID: %q", line)
			}
			if m.Reading != nil {
				if err := m.Reading.Validate(); err != nil {
					t.Fatalf("accepted invalid reading: %v", err)
				}
			}
		}
	})
}

func BenchmarkDecodeNDJSON(b *testing.B) {
	p := mustProfile(b, "generic-rsd.yaml")
	line := []byte(samplePassLine)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.DecodeNDJSON(line); err != nil {
			b.Fatal(err)
		}
	}
}
