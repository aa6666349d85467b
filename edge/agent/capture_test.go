package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	firmwareconfig "github.com/plume-emissions/plume/firmware-config"
)

// memOutbox keeps what Capture stores.
type memOutbox struct {
	evidence []*plume.Manifest
	records  []plume.Record
}

func (o *memOutbox) PutMedia(_ context.Context, r io.Reader) (string, int64, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return "", 0, err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), int64(len(b)), nil
}

func (o *memOutbox) AddEvidence(_ context.Context, m *plume.Manifest, _, _ []byte) error {
	o.evidence = append(o.evidence, m)
	return nil
}

func (o *memOutbox) AddRecord(_ context.Context, rec plume.Record) error {
	o.records = append(o.records, rec)
	return nil
}

// smokeCamera reports black smoke of one grade for every pass.
type smokeCamera struct{ grade int }

func (c smokeCamera) Fuse(_ context.Context, p *plume.Pass) MediaFunc {
	p.SmokeSeen = &plume.Smoke{Smoky: true, Grade: c.grade, Confidence: 0.9}
	p.Plate = &plume.Plate{Text: "豫A12345", Colour: plume.PlateYellow, Confidence: 0.95}
	return nil
}

// TestCaptureCameraSmokeVerdict: a clean analyser reading of a vehicle the
// camera graded at Ringelmann 4 is stored, in both its record and its
// signed manifest, with a verdict that exceeds (result code 0) and a
// Ringelmann check of 4 from the camera: the views built from them cannot
// say "pass".
func TestCaptureCameraSmokeVerdict(t *testing.T) {
	y, err := os.ReadFile(filepath.Join("..", "..", "firmware-config", "profiles", "hj845-2017-diesel.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	prof, err := firmwareconfig.DecodeProfile(y)
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	out := &memOutbox{}
	now := time.Date(2026, 12, 4, 14, 6, 5, 680e6, time.UTC)
	c := &Capture{
		Station: "DEMO-0001", Profiles: plume.ProfileSet{plume.FuelDiesel: prof}, Key: key, Outbox: out,
		Now: func() time.Time { return now }, Cameras: smokeCamera{grade: 4},
	}
	r := plume.Reading{
		Time: now.Add(-200 * time.Millisecond), Lane: 1, Fuel: plume.FuelDiesel,
		Gases: plume.Gases{CO2: 12, CO: 0.1, HC: 50, NO: 400}, PlumeCO2: 40, Opacity: 5, Ringelmann: 0,
		SpeedKmh: 50, AccelMS2: 0.3, SlopePct: 0,
		Ambient: plume.Ambient{TempC: 15, HumidityPct: 50, WindMS: 1, PressureKPa: 101},
		Flag:    plume.FlagNormal,
	}
	if plume.Assess(&r, prof).Outcome != plume.OutcomePass {
		t.Fatal("test reading should pass the analyser's limits")
	}
	if _, err := c.Pass(context.Background(), &r, []byte("raw")); err != nil {
		t.Fatal(err)
	}
	if len(out.evidence) != 1 || len(out.records) != 1 {
		t.Fatalf("%d manifests, %d records; want 1 and 1", len(out.evidence), len(out.records))
	}
	for what, v := range map[string]plume.Verdict{"manifest": out.evidence[0].Pass.Verdict, "record": out.records[0].Pass.Verdict} {
		if v.Outcome != plume.OutcomeExceed || v.ResultCode != 0 {
			t.Errorf("%s: outcome %s, result code %d; want exceed, 0", what, v.Outcome, v.ResultCode)
		}
		found := false
		for _, ck := range v.Checks {
			if ck.Pollutant == plume.PollutantRingelmann {
				found = true
				if ck.Value != 4 || !ck.Exceeded || ck.Source != plume.SourceCamera {
					t.Errorf("%s: Ringelmann check %+v, want the camera's grade 4, exceeded", what, ck)
				}
			}
		}
		if !found {
			t.Errorf("%s: no Ringelmann check in %+v", what, v.Checks)
		}
	}
	if !bytes.Contains([]byte(out.evidence[0].Pass.Verdict.Summary), []byte("RINGELMANN 4 grade")) {
		t.Errorf("summary %q", out.evidence[0].Pass.Verdict.Summary)
	}
	if got := c.Stats().Exceed.Load(); got != 1 {
		t.Errorf("exceed count %d, want 1", got)
	}
}
