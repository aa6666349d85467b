package ingest_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/blob"
	"github.com/plume-emissions/plume/central/ingest"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/store"
)

const stationID = plume.StationID("GD-SZ-0001")

func newService(tb testing.TB) (*ingest.Service, *central.Station, central.Store) {
	tb.Helper()
	dir := tb.TempDir()
	st, err := store.Open(filepath.Join(dir, store.FileName), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	bs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		tb.Fatal(err)
	}
	station := &central.Station{ID: stationID, PublicKey: fixture.Key(string(stationID)).Public().(ed25519.PublicKey)}
	if err := st.PutStation(context.Background(), station); err != nil {
		tb.Fatal(err)
	}
	return ingest.New(ingest.Config{Store: st, Blobs: bs}), station, st
}

func TestPutEvidenceSmokeGrade(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		minGrade int
		wantCase bool
	}{
		{"NoCaseWhenSmokeGradeOff", 0, false},
		{"CaseAtProfileGrade", 2, true},
		{"NoCaseBelowGrade", 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st, s := newService(t)
			svc := ingest.New(ingest.Config{Store: s, Blobs: mustBlobs(t), MinSmokeGrade: tc.minGrade})
			p := fixture.Pass(stationID, fixture.Epoch, 1, false)
			p.SmokeSeen = &plume.Smoke{Smoky: true, Grade: 3, Confidence: 0.9}
			m := &plume.Manifest{Schema: plume.ManifestSchema, ID: plume.EvidenceID(p.ID), Station: stationID, CapturedAt: p.ReceivedAt, Pass: p}
			body, sig, _ := plume.SignManifest(fixture.Key(string(stationID)), m)
			ev, created, err := svc.PutEvidence(ctx, st, m.ID, body, sig)
			if err != nil || !created {
				t.Fatalf("%v %v", created, err)
			}
			if (ev.CaseID != "") != tc.wantCase {
				t.Fatalf("case %q, want a case: %v", ev.CaseID, tc.wantCase)
			}
			if tc.wantCase {
				c, _ := s.Case(ctx, ev.CaseID)
				if c.SmokeGrade != 3 {
					t.Fatalf("case smoke grade %d", c.SmokeGrade)
				}
			}
		})
	}
}

func mustBlobs(tb testing.TB) *blob.Store {
	bs, err := blob.Open(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	return bs
}

func TestPutBlobLimits(t *testing.T) {
	svc, st, _ := newService(t)
	ctx := context.Background()
	sum := strings.Repeat("0", 64)
	if _, err := svc.PutBlob(ctx, st, sum, strings.NewReader(""), plume.MaxMediaSize+1); plume.ErrorCode(err) != plume.ETOOLARGE {
		t.Fatalf("oversize: %v", err)
	}
	if _, err := svc.PutBlob(ctx, st, sum, strings.NewReader(""), -1); plume.ErrorCode(err) != plume.EINVALID {
		t.Fatalf("unknown size: %v", err)
	}
	if _, err := svc.PutBlob(ctx, st, "../x", strings.NewReader(""), 0); plume.ErrorCode(err) != plume.EINVALID {
		t.Fatalf("bad digest: %v", err)
	}
	if _, err := svc.PutBlob(ctx, st, sum, strings.NewReader("x"), 1); !errors.Is(err, central.ErrDigestMismatch) {
		t.Fatalf("digest mismatch: %v", err)
	}
}

// FuzzIngestManifest feeds arbitrary manifest bytes, validly signed by the
// station, through the ingest path: it must never crash or fail with an
// internal error, and whatever it accepts must decode and be stored
// byte for byte.
func FuzzIngestManifest(f *testing.F) {
	key := fixture.Key(string(stationID))
	ev := fixture.NewEvidence(f, key, stationID, fixture.Epoch, 1, true, 0)
	f.Add(ev.Body)
	f.Add(fixture.NewEvidence(f, key, stationID, fixture.Epoch, 1, false, 0).Body)
	f.Add(fixture.NewEvidence(f, key, stationID, fixture.Epoch, 2, true, 2).Body) // media missing
	f.Add([]byte(`{"schema":"plume.evidence/v1"}`))
	f.Add([]byte(`{}`))
	svc, st, s := newService(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, body []byte) {
		var probe struct {
			ID plume.EvidenceID `json:"id"`
		}
		json.Unmarshal(body, &probe)
		id := probe.ID
		if id == "" {
			id = ev.Manifest.ID
		}
		stored, _, err := svc.PutEvidence(ctx, st, id, body, ed25519.Sign(key, body))
		if err != nil {
			switch code := plume.ErrorCode(err); code {
			case plume.EINVALID, plume.EFORBIDDEN, plume.ETOOLARGE, plume.EMISSINGMEDIA, plume.ECONFLICT:
			default:
				t.Fatalf("code %s: %v", code, err)
			}
			return
		}
		if _, err := plume.DecodeManifest(stored.Manifest); err != nil {
			t.Fatalf("accepted a manifest that does not decode: %v", err)
		}
		got, err := s.Evidence(ctx, stationID, stored.ID)
		if err != nil || !bytes.Equal(got.Manifest, body) {
			t.Fatalf("stored evidence differs from the accepted bytes: %v", err)
		}
	})
}

// FuzzDecodeRecordsBatch: the batch decoder never crashes, and what it
// accepts is a valid batch of the station's own records.
func FuzzDecodeRecordsBatch(f *testing.F) {
	good, _ := json.Marshal(ingest.Batch{Records: fixture.Records(stationID, fixture.Epoch, 3)})
	f.Add(good)
	status, _ := json.Marshal(ingest.Batch{Records: []plume.Record{{Kind: plume.RecordStatus, ID: "s1", Station: stationID, Time: fixture.Epoch, Status: &plume.DeviceStatus{Time: fixture.Epoch, Flag: plume.FlagNormal}}}})
	f.Add(status)
	f.Add([]byte(`{"records":[]}`))
	f.Add([]byte(`{"records":[{"kind":"summary","id":"x","station":"GD-SZ-0001","time":"2026-11-28T00:00:00Z","summary":{"count":-1}}]}`))
	f.Add([]byte(`{"records":null} trailing`))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := ingest.DecodeRecordsBatch(b, stationID)
		if err != nil {
			if plume.ErrorCode(err) == plume.EINTERNAL {
				t.Fatalf("uncoded error: %v", err)
			}
			return
		}
		if len(recs) > ingest.MaxBatchRecords {
			t.Fatalf("%d records accepted", len(recs))
		}
		for _, r := range recs {
			if r.Station != stationID || r.Validate() != nil {
				t.Fatalf("accepted an invalid or foreign record: %+v", r)
			}
		}
	})
}

func TestDecodeRecordsBatch(t *testing.T) {
	good, _ := json.Marshal(ingest.Batch{Records: fixture.Records(stationID, fixture.Epoch, 2)})
	dup, _ := json.Marshal(ingest.Batch{Records: append(fixture.Records(stationID, fixture.Epoch, 1), fixture.Records(stationID, fixture.Epoch, 1)...)})
	for _, tc := range []struct {
		name string
		body []byte
		code string
	}{
		{"OK", good, ""},
		{"ErrUnknownField", []byte(`{"records":[],"extra":1}`), plume.EINVALID},
		{"ErrTrailingData", append(append([]byte{}, good...), []byte(`{}`)...), plume.EINVALID},
		{"ErrNotJSON", []byte(`records`), plume.EINVALID},
		{"ErrDuplicateID", dup, plume.EINVALID},
		{"ErrTooLarge", bytes.Repeat([]byte(" "), ingest.MaxBatchSize+1), plume.ETOOLARGE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ingest.DecodeRecordsBatch(tc.body, stationID)
			if plume.ErrorCode(err) != tc.code {
				t.Fatalf("got %v, want code %q", err, tc.code)
			}
		})
	}
}
