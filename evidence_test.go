package plume_test

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
)

func testManifest(t testing.TB) *plume.Manifest {
	t.Helper()
	r := goodReading()
	r.Gases.NO = 1834
	station := plume.StationID("GD-SZ-0001")
	pass := plume.Pass{ID: plume.NewPassID(station, r.Time, r.Lane), Station: station, Reading: r, ReceivedAt: r.Time.Add(40 * time.Millisecond)}
	pass.Verdict = plume.Assess(&pass.Reading, dieselProfile())
	return &plume.Manifest{
		Schema: plume.ManifestSchema, ID: plume.EvidenceID(pass.ID), Station: station,
		CapturedAt: pass.ReceivedAt, Software: "plume-edge test", Pass: pass,
		Media: []plume.MediaRef{{
			Name: "analyser-raw.txt", Kind: plume.MediaAnalyserRaw, Size: 42, ContentType: "text/plain",
			SHA256: strings.Repeat("ab", 32), CapturedAt: pass.ReceivedAt,
		}},
	}
}

func TestNewPassID(t *testing.T) {
	at := time.Date(2026, 11, 28, 17, 30, 5, 7e6, time.FixedZone("CST", 8*3600))
	id := plume.NewPassID("GD-SZ-0001", at, 2)
	if id != "GD-SZ-0001-20261128T093005007Z-L2" {
		t.Fatalf("got %s", id)
	}
	if err := id.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := plume.PassID("../etc/passwd").Validate(); err == nil {
		t.Fatal("path-like pass ID accepted")
	}
}

func TestManifestSignRoundTrip(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	m := testManifest(t)
	body, sig, err := plume.SignManifest(key, m)
	if err != nil {
		t.Fatal(err)
	}
	if !plume.VerifyManifest(pub, body, sig) {
		t.Fatal("signature does not verify")
	}
	got, err := plume.DecodeManifest(body)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := plume.EncodeManifest(got)
	if !bytes.Equal(again, body) {
		t.Fatalf("re-encoding changed the bytes:\n%s\n%s", body, again)
	}
	tampered := bytes.Replace(body, []byte(`"no_ppm":1834`), []byte(`"no_ppm":1234`), 1)
	if bytes.Equal(tampered, body) {
		t.Fatal("tamper did not apply")
	}
	if plume.VerifyManifest(pub, tampered, sig) {
		t.Fatal("tampered manifest verified")
	}
}

func TestDecodeManifest(t *testing.T) {
	good := testManifest(t)
	for _, tc := range []struct {
		name   string
		mutate func(m *plume.Manifest)
	}{
		{"ErrSchema", func(m *plume.Manifest) { m.Schema = "v0" }},
		{"ErrStationMismatch", func(m *plume.Manifest) { m.Station = "GD-SZ-0002" }},
		{"ErrIDMismatch", func(m *plume.Manifest) { m.ID = "GD-SZ-0001-20261128T093000999Z-L1" }},
		{"ErrMediaName", func(m *plume.Manifest) { m.Media[0].Name = "../x" }},
		{"ErrMediaSHA", func(m *plume.Manifest) { m.Media[0].SHA256 = "XYZ" }},
		{"ErrDuplicateMedia", func(m *plume.Manifest) { m.Media = append(m.Media, m.Media[0]) }},
		{"ErrPassID", func(m *plume.Manifest) { m.Pass.Reading.Lane = 3 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := *good
			m.Media = append([]plume.MediaRef(nil), good.Media...)
			tc.mutate(&m)
			b, err := plume.EncodeManifest(&m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := plume.DecodeManifest(b); plume.ErrorCode(err) != plume.EINVALID {
				t.Fatalf("got %v, want invalid", err)
			}
		})
	}
	t.Run("ErrUnknownField", func(t *testing.T) {
		b, _ := plume.EncodeManifest(good)
		b = bytes.Replace(b, []byte(`{"schema"`), []byte(`{"x":1,"schema"`), 1)
		if _, err := plume.DecodeManifest(b); err == nil {
			t.Fatal("unknown field accepted")
		}
	})
	t.Run("ErrTrailing", func(t *testing.T) {
		b, _ := plume.EncodeManifest(good)
		if _, err := plume.DecodeManifest(append(b, []byte("{}")...)); err == nil {
			t.Fatal("trailing data accepted")
		}
	})
}

func FuzzDecodeManifest(f *testing.F) {
	b, _ := plume.EncodeManifest(testManifest(f))
	f.Add(b)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"schema":"plume.evidence/v1","media":[{"name":"../../x"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := plume.DecodeManifest(b)
		if err != nil {
			if plume.ErrorCode(err) == plume.EINTERNAL {
				t.Fatalf("decode error without a code: %v", err)
			}
			return
		}
		// Whatever decodes must validate and re-encode.
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded manifest does not validate: %v", err)
		}
		if _, err := plume.EncodeManifest(m); err != nil {
			t.Fatal(err)
		}
	})
}
