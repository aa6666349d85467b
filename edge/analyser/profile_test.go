package analyser

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
)

const devicesDir = "../../firmware-config/devices"

// mustProfile loads a profile from firmware-config/devices.
func mustProfile(tb testing.TB, name string) *Profile {
	tb.Helper()
	p, err := LoadProfile(filepath.Join(devicesDir, name))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// samplePassFrame is a diesel pass as the generic profile sends it.
var samplePassFrame = string(goodFrame("QN=20261128101530123;ST=22;CN=2011;PW=123456;MN=RSD0001;Flag=5;CP=&&" +
	"DataTime=20261128101530123;x10004-Rtd=2,x10004-Flag=N;x10006-Rtd=77,x10006-Flag=N;x10005-Rtd=2,x10005-Flag=N;" +
	"a05001-Rtd=12.1,a05001-Flag=N;a21005-Rtd=0.02,a21005-Flag=N;x20002-Rtd=20,x20002-Flag=N;a21003-Rtd=1650,a21003-Flag=N;" +
	"x20001-Rtd=33.5,x20001-Flag=N;a01010-Rtd=2,a01010-Flag=N;x20003-Rtd=38,x20003-Flag=N;x10001-Rtd=42.5,x10001-Flag=N;" +
	"x10002-Rtd=0.4,x10002-Flag=N;x10003-Rtd=1.5,x10003-Flag=N;a01001-Rtd=18.2,a01001-Flag=N;a01002-Rtd=61,a01002-Flag=N;" +
	"a01007-Rtd=2.1,a01007-Flag=N;a01006-Rtd=101.3,a01006-Flag=N;x30001-Rtd=0,x30001-Flag=N&&"))

// TestDeviceProfiles decodes every file in firmware-config/devices, so the
// shipped profiles never drift from the code.
func TestDeviceProfiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(devicesDir, "*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("want at least 2 device profiles, got %v (%v)", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := LoadProfile(f)
			if err != nil {
				t.Fatal(err)
			}
			if p.Name+".yaml" != filepath.Base(f) {
				t.Fatalf("profile name %q does not match its file name", p.Name)
			}
		})
	}
}

func TestDecodeProfileErrors(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(devicesDir, "generic-rsd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, old, new string
		want           string
	}{
		{"ErrUnknownField", "name: generic-rsd", "name: generic-rsd\ncolour: red", "field colour not found"},
		{"ErrBadName", "name: generic-rsd", "name: Generic RSD", "name must be"},
		{"ErrBadOffset", `utc_offset: "+08:00"`, `utc_offset: "Asia/Shanghai"`, "utc_offset"},
		{"ErrNoPassCN", `pass_cn: ["2011"]`, `pass_cn: []`, "pass_cn"},
		{"ErrCNTwice", `status_cn: ["2021"]`, `status_cn: ["2011"]`, "listed in both"},
		{"ErrUnknownTargetField", "{field: co2_pct,", "{field: co3_pct,", "unknown field"},
		{"ErrZeroScale", "{field: temp_c,", "{field: temp_c, scale: 0,", "scale"},
		{"ErrTwoCodesOneField", "{field: humidity_pct,", "{field: temp_c,", "both map to"},
		{"ErrBadPlumeFlag", `{device: "T", plume: "T"}`, `{device: "T", plume: "X"}`, "not a Plume status flag"},
		{"ErrNoNormalFlag", `{device: "N", plume: "N"}`, `{device: "OK", plume: "N"}`, "normal flag"},
		{"ErrBadFuel", "2: diesel", "2: hydrogen", "unknown fuel"},
		{"ErrBadRequired", "required: [lane,", "required: [plate,", "not a pass field"},
		{"ErrTwoDocuments", "required:", "---\nname: x\n---\nrequired:", "YAML"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(string(base), tt.old) {
				t.Fatalf("fixture text %q not in generic-rsd.yaml", tt.old)
			}
			_, err := DecodeProfile([]byte(strings.Replace(string(base), tt.old, tt.new, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if plume.ErrorCode(err) != plume.EINVALID {
				t.Fatalf("code = %s, want %s", plume.ErrorCode(err), plume.EINVALID)
			}
		})
	}
}

func TestFromHJ212(t *testing.T) {
	p := mustProfile(t, "generic-rsd.yaml")
	beijing := time.FixedZone("+08:00", 8*3600)
	passData := func(items string) []byte {
		return goodFrame("QN=20261128101530123;ST=22;CN=2011;PW=1;MN=RSD0001;Flag=5;CP=&&DataTime=20261128101530123;" +
			"x10004-Rtd=1;a05001-Rtd=14;a21003-Rtd=100;x10001-Rtd=40;x10002-Rtd=0.3;x20003-Rtd=30" + items + "&&")
	}
	for _, tt := range []struct {
		name    string
		frame   []byte
		wantErr error
		check   func(t *testing.T, m Message)
	}{
		{"OKPass", []byte(samplePassFrame), nil, func(t *testing.T, m Message) {
			r := m.Reading
			want := plume.Reading{
				Time: time.Date(2026, 11, 28, 10, 15, 30, 123e6, beijing), Lane: 2, Seq: 77, Fuel: plume.FuelDiesel,
				Gases: plume.Gases{CO2: 12.1, CO: 0.02, HC: 20, NO: 1650}, PlumeCO2: 38, Opacity: 33.5, Ringelmann: 2,
				SpeedKmh: 42.5, AccelMS2: 0.4, SlopePct: 1.5, Flag: plume.FlagNormal,
				Ambient: plume.Ambient{TempC: 18.2, HumidityPct: 61, WindMS: 2.1, PressureKPa: 101.3},
			}
			if m.Kind != plume.RecordPass || m.Device != "RSD0001" || m.ID != "20261128101530123" {
				t.Fatalf("message = %+v", m)
			}
			if !r.Time.Equal(want.Time) {
				t.Fatalf("time %v, want %v", r.Time, want.Time)
			}
			r.Time = want.Time
			if *r != want {
				t.Fatalf("reading:\n got %+v\nwant %+v", *r, want)
			}
			if id := plume.NewPassID("GD-SZ-0001", r.Time, r.Lane); id != "GD-SZ-0001-20261128T021530123Z-L2" {
				t.Fatalf("pass ID %s", id)
			}
		}},
		{"OKWorstFlagWins", passData(";a01001-Rtd=10,a01001-Flag=N;a01002-Rtd=50,a01002-Flag=M;a01007-Rtd=1,a01007-Flag=C"), nil, func(t *testing.T, m Message) {
			if m.Reading.Flag != plume.FlagMaintenance {
				t.Fatalf("flag %s, want M (M is listed after C)", m.Reading.Flag)
			}
		}},
		{"OKRingelmannNotMeasured", passData(""), nil, func(t *testing.T, m Message) {
			if m.Reading.Ringelmann != -1 || m.Reading.Flag != plume.FlagNormal {
				t.Fatalf("reading %+v", m.Reading)
			}
		}},
		{"OKSecondsOnlyTime", goodFrame("ST=22;CN=2011;MN=R;CP=&&DataTime=20261128101530;x10004-Rtd=1;a05001-Rtd=14;a21003-Rtd=1;x10001-Rtd=4;x10002-Rtd=0;x20003-Rtd=3&&"), nil, func(t *testing.T, m Message) {
			if !m.Reading.Time.Equal(time.Date(2026, 11, 28, 2, 15, 30, 0, time.UTC)) {
				t.Fatalf("time %v", m.Reading.Time)
			}
		}},
		{"OKStatus", goodFrame("ST=22;CN=2021;MN=R;Flag=5;CP=&&DataTime=20261128101530123;x50001-Rtd=0.97,x50001-Flag=N;x50002-Rtd=35.5,x50002-Flag=D;SB1-RS=1&&"), nil, func(t *testing.T, m Message) {
			s := m.Status
			if m.Kind != plume.RecordStatus || s.Flag != plume.FlagFault || s.Values["laser_power"] != 0.97 || s.Values["detector_temp_c"] != 35.5 || s.Values["SB1-RS"] != 1 {
				t.Fatalf("status %+v", s)
			}
		}},
		{"OKAudit", goodFrame("ST=22;CN=3020;MN=R;Flag=5;CP=&&DataTime=20261128101530123;a21005-Rtd=3.96,a21005-Ref=4,a21005-Flag=C;x40001-Rtd=2;x40002-Rtd=1&&"), nil, func(t *testing.T, m Message) {
			a := m.Audit
			if a.Kind != plume.AuditStandardGas || a.Gas != "co" || a.Unit != "%" || a.Reference != 4 || a.Measured != 3.96 || !a.Passed {
				t.Fatalf("audit %+v", a)
			}
		}},
		{"ErrUnknownKind", goodFrame("ST=22;CN=1011;MN=R;CP=&&&&"), ErrUnknownKind, nil},
		{"ErrMalformedNoDataTime", goodFrame("ST=22;CN=2011;MN=R;CP=&&x10004-Rtd=1&&"), ErrMalformed, nil},
		{"ErrMalformedBadDataTime", goodFrame("ST=22;CN=2011;MN=R;CP=&&DataTime=2026112810&&"), ErrMalformed, nil},
		{"ErrMalformedUnknownCode", passData(";z99999-Rtd=1"), ErrMalformed, nil},
		{"ErrMalformedUnknownFlag", passData(";a01001-Rtd=1,a01001-Flag=Q"), ErrMalformed, nil},
		{"ErrMalformedNotANumber", passData(";a01001-Rtd=warm"), ErrMalformed, nil},
		{"ErrMalformedNaN", passData(";a01001-Rtd=NaN"), ErrMalformed, nil},
		{"ErrMalformedFractionalLane", goodFrame("ST=22;CN=2011;MN=R;CP=&&DataTime=20261128101530;x10004-Rtd=1.5&&"), ErrMalformed, nil},
		{"ErrMalformedUnknownFuelCode", passData(";x10005-Rtd=7"), ErrMalformed, nil},
		{"ErrMalformedRequiredMissing", goodFrame("ST=22;CN=2011;MN=R;CP=&&DataTime=20261128101530;x10004-Rtd=1&&"), ErrMalformed, nil},
		{"ErrMalformedSplitPacket", goodFrame("ST=22;CN=2011;MN=R;Flag=7;PNUM=2;PNO=1;CP=&&DataTime=20261128101530&&"), ErrMalformed, nil},
		{"ErrMalformedAuditTwoGases", goodFrame("ST=22;CN=3020;MN=R;CP=&&DataTime=20261128101530;a21005-Rtd=4,a21005-Ref=4;a21003-Rtd=1;x40001-Rtd=2;x40002-Rtd=1&&"), ErrMalformed, nil},
		{"ErrMalformedAuditIncomplete", goodFrame("ST=22;CN=3020;MN=R;CP=&&DataTime=20261128101530;a21005-Rtd=4;x40001-Rtd=2;x40002-Rtd=1&&"), ErrMalformed, nil},
		{"ErrInvalidLaneZero", goodFrame("ST=22;CN=2011;MN=R;CP=&&DataTime=20261128101530;x10004-Rtd=0;a05001-Rtd=14;a21003-Rtd=1;x10001-Rtd=4;x10002-Rtd=0;x20003-Rtd=3&&"), ErrInvalid, nil},
		{"ErrInvalidOpacity", passData(";x20001-Rtd=140"), ErrInvalid, nil},
		{"ErrInvalidNegativeGas", passData(";a21005-Rtd=-1"), ErrInvalid, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Decode(tt.frame)
			if err != nil {
				t.Fatalf("fixture does not decode: %v", err)
			}
			m, err := p.FromHJ212(&f)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("FromHJ212 error = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, ErrInvalid) && plume.ErrorCode(err) != plume.EINVALID {
				t.Fatalf("invalid record error should carry the plume code: %v", err)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

// TestProfileScales encodes with the vendor profile (scaled units, its own
// codes) and decodes back, through both protocols.
func TestProfileScales(t *testing.T) {
	p := mustProfile(t, "example-vendor-rsd.yaml")
	r := &plume.Reading{
		Time: time.Date(2026, 11, 28, 2, 15, 30, 456e6, time.UTC), Lane: 3, Seq: 9, Fuel: plume.FuelPetrol,
		Gases: plume.Gases{CO2: 14.25, CO: 0.5, HC: 120, NO: 300}, PlumeCO2: 25, Opacity: 1, Ringelmann: -1,
		SpeedKmh: 50, AccelMS2: 0.5, SlopePct: 2, Flag: plume.FlagCalibration,
		Ambient: plume.Ambient{TempC: 21.5, HumidityPct: 55, WindMS: 3.5, PressureKPa: 100.5, Rain: true},
	}
	in := Message{Kind: plume.RecordPass, Reading: r}
	f, err := p.HJ212Frame(&in, Frame{QN: "1", ST: "22", MN: "V1", Flag: 5})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Get("a05001-Rtd"); v != "1425" {
		t.Fatalf("CO2 sent as %q, want 1425 (0.01 %% steps)", v)
	}
	if v, _ := f.Get("a01006-Rtd"); v != "1005" {
		t.Fatalf("pressure sent as %q, want 1005 hPa", v)
	}
	raw, err := Encode(&f)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	m, err := p.FromHJ212(&g)
	if err != nil {
		t.Fatal(err)
	}
	assertReadingNear(t, "hj212", m.Reading, r)

	line, err := p.EncodeNDJSON(&in, "", "GD-SZ-0001")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(line), `"CO2":1425`) || !strings.Contains(string(line), `"type":"vehicle"`) {
		t.Fatalf("vendor NDJSON = %s", line)
	}
	m, err = p.DecodeNDJSON(line)
	if err != nil {
		t.Fatal(err)
	}
	assertReadingNear(t, "ndjson", m.Reading, r)
}

func assertReadingNear(t *testing.T, what string, got, want *plume.Reading) {
	t.Helper()
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	g, w := *got, *want
	if !g.Time.Equal(w.Time) || g.Lane != w.Lane || g.Seq != w.Seq || g.Fuel != w.Fuel || g.Flag != w.Flag ||
		g.Ambient.Rain != w.Ambient.Rain || g.Ringelmann != w.Ringelmann {
		t.Fatalf("%s: got %+v\nwant %+v", what, g, w)
	}
	for _, pair := range [][2]float64{
		{g.Gases.CO2, w.Gases.CO2}, {g.Gases.CO, w.Gases.CO}, {g.Gases.HC, w.Gases.HC}, {g.Gases.NO, w.Gases.NO},
		{g.PlumeCO2, w.PlumeCO2}, {g.Opacity, w.Opacity}, {g.SpeedKmh, w.SpeedKmh}, {g.AccelMS2, w.AccelMS2},
		{g.SlopePct, w.SlopePct}, {g.Ambient.TempC, w.Ambient.TempC}, {g.Ambient.HumidityPct, w.Ambient.HumidityPct},
		{g.Ambient.WindMS, w.Ambient.WindMS}, {g.Ambient.PressureKPa, w.Ambient.PressureKPa},
	} {
		if !near(pair[0], pair[1]) {
			t.Fatalf("%s: got %+v\nwant %+v", what, g, w)
		}
	}
}
