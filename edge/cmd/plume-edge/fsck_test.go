package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/spool"
	"github.com/plume-emissions/plume/edge/spool/spooltest"
)

func TestFsckCommand(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	s, err := spool.Open(ctx, filepath.Join(data, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	m := spooltest.AddEvidence(t, s, spooltest.Key(), t0, []byte("scene"))
	if err := s.AddRecord(ctx, spooltest.Record(t0, plume.OutcomePass)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"fsck", data}, &out, &errOut); err != nil || !strings.Contains(out.String(), "ok: no problems") {
		t.Fatalf("sound spool: %v\n%s%s", err, out.String(), errOut.String())
	}
	sha := m.Media[0].SHA256
	if err := os.WriteFile(filepath.Join(data, "spool", "media", sha[:2], sha), []byte("sceNe"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = run(ctx, []string{"fsck", filepath.Join(data, "spool")}, &out, &errOut)
	if err == nil || !strings.Contains(out.String(), "PROBLEM media "+sha) {
		t.Fatalf("damaged media: %v\n%s", err, out.String())
	}
}
