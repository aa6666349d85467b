package main

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/central/sqlstore"
)

// TestMigrate moves an embedded central with cases, packages, records,
// officers and an audit log into PostgreSQL and MinIO, checks that the
// tool verified it, then runs central on the copy: the cases are there,
// and the next case continues the numbering.
func TestMigrate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and MinIO")
	}
	so := startScaleOut(t)
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "central")

	cfg := server.NewConfig()
	cfg.Addr, cfg.DataDir, cfg.SheetFont = "127.0.0.1:0", data, "none"
	s, err := server.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	enr, err := s.Enroll(ctx, "GD-SZ-0001", "gantry", nil)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := enr.PrivateKey()
	if err := s.CreateOfficer(ctx, &central.Officer{Username: "li.wei", Name: "李伟", Role: central.RoleReviewer}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	cl := &fixture.Client{BaseURL: s.URL(), Station: "GD-SZ-0001", Key: key}
	for i := range 5 {
		ev := fixture.NewEvidence(t, key, "GD-SZ-0001", fixture.Epoch.Add(time.Duration(i)*time.Minute), 1, true, 2)
		if resp, err := cl.PutEvidence(ev); err != nil || resp.Status != http.StatusCreated {
			t.Fatal(resp, err)
		}
	}
	if resp, err := cl.PutRecords("batch-1", fixture.Records("GD-SZ-0001", fixture.Epoch, 30)); err != nil || resp.Status/100 != 2 {
		t.Fatal(resp, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := s.WaitIdle(wctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store().AppendAudit(ctx, central.AuditEvent{Time: fixture.Epoch, Actor: "li.wei", Action: "case.view", Target: "C00000000001"}); err != nil {
		t.Fatal(err)
	}
	alert := &central.Alert{ID: "test-alert", Source: "test", Station: "GD-SZ-0001", Raised: fixture.Epoch}
	if _, err := s.Store().(central.OpsStore).PutAlert(ctx, alert); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Stats(ctx)
	s.Close()

	var out strings.Builder
	if err := runMigrate(ctx, []string{"-data", data}, so.getenv, &out, &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	t.Logf("migrate printed:\n%s", out.String())
	// 25 blobs: the evidence's 15 media blobs and 10 ownership records
	// (which station uploaded which blob, central/ingest/owner.go), which
	// travel to the object store like any blob.
	for _, want := range []string{"blobs: 25/25", "verify: blobs re-hashed from the object store: 25/25", "verify: 5 cases with their custody logs", "migrated and verified"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("migrate output lacks %q", want)
		}
	}
	// A second run refuses the filled database.
	if err := runMigrate(ctx, []string{"-data", data}, so.getenv, &out, &out); !errors.Is(err, sqlstore.ErrNotEmpty) {
		t.Fatalf("second migrate: %v", err)
	}

	// Central on the copy.
	st, bs := so.open(t)
	k, err := server.LoadOrCreateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	cfg = server.NewConfig()
	cfg.Addr, cfg.DataDir, cfg.SheetFont = "127.0.0.1:0", t.TempDir(), "none"
	cfg.Store, cfg.Blobs, cfg.Key = st, bs, k
	s2, err := server.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	after, _ := s2.Stats(ctx)
	if after != before {
		t.Fatalf("stats after the move %+v, before %+v", after, before)
	}
	cl.BaseURL = s2.URL()
	ev := fixture.NewEvidence(t, key, "GD-SZ-0001", fixture.Epoch.Add(time.Hour), 1, true, 2)
	resp, err := cl.PutEvidence(ev)
	if err != nil || resp.Status != http.StatusCreated {
		t.Fatal(resp, err)
	}
	cs, _, _ := st.Cases(ctx, central.CaseFilter{Limit: 1})
	if len(cs) != 1 || cs[0].ID != plume.CaseID("C00000000006") {
		t.Fatalf("the next case after the move is %v, want C00000000006", cs)
	}
	if _, err := st.Officer(ctx, "li.wei"); err != nil {
		t.Fatalf("officer not moved: %v", err)
	}
	if a, err := st.Alert(ctx, "test-alert"); err != nil || a.State != central.AlertOpen {
		t.Fatalf("alert not moved: %+v %v", a, err)
	}
}
