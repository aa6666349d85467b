package review_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/profile"
	"github.com/plume-emissions/plume/central/review"
	"github.com/plume-emissions/plume/central/store"
)

var (
	reviewer   = review.Actor{Officer: &central.Officer{Username: "li.wei", Role: central.RoleReviewer}, IP: "10.0.0.7"}
	supervisor = review.Actor{Officer: &central.Officer{Username: "wang.fang", Role: central.RoleSupervisor}, IP: "10.0.0.8"}
	auditor    = review.Actor{Officer: &central.Officer{Username: "zhao.min", Role: central.RoleAuditor}}
	scoped     = review.Actor{Officer: &central.Officer{Username: "chen.jie", Role: central.RoleReviewer, Stations: []plume.StationID{"GD-SZ-0009"}}}
)

// newCase stores one open case of an exceedance with plate 粤B12345.
func newCase(tb testing.TB, s central.Store) plume.CaseID {
	tb.Helper()
	st := plume.StationID("GD-SZ-0001")
	fx := fixture.NewEvidence(tb, fixture.Key(string(st)), st, fixture.Epoch, 1, true, 2)
	ev := &central.StoredEvidence{ID: fx.Manifest.ID, Station: st, Manifest: fx.Body, StationSig: fx.Sig,
		StationKey: fixture.Key(string(st)).Public().(ed25519.PublicKey), ReceivedAt: fixture.Epoch.Add(time.Minute)}
	c := central.NewCase(fx.Manifest)
	if _, _, err := s.PutEvidence(context.Background(), ev, c, nil); err != nil {
		tb.Fatal(err)
	}
	return c.ID
}

func newService(tb testing.TB, second bool) (*review.Service, central.Store) {
	tb.Helper()
	s, err := store.Open(filepath.Join(tb.TempDir(), store.FileName), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return review.New(review.Config{Store: s, SecondReview: second, Exporter: "test",
		Now: func() time.Time { return fixture.Epoch.Add(time.Hour) }}), s
}

func code(err error) string {
	if err == nil {
		return ""
	}
	return plume.ErrorCode(err)
}

func TestTransitions(t *testing.T) {
	ctx := context.Background()
	t.Run("ApproveQueuesExport", func(t *testing.T) {
		svc, s := newService(t, false)
		id := newCase(t, s)
		c, err := svc.Approve(ctx, reviewer, id, "clear plume")
		if err != nil || c.Status != central.CaseApproved || c.Export == nil || c.Export.Key != review.ExportKey(c) {
			t.Fatalf("approve: %+v %v", c, err)
		}
		if _, err := svc.Approve(ctx, reviewer, id, ""); code(err) != plume.ECONFLICT {
			t.Fatalf("approve twice: %v", err)
		}
		if _, err := svc.Reject(ctx, reviewer, id, "plate_unreadable", ""); code(err) != plume.ECONFLICT {
			t.Fatalf("reject an approved case: %v", err)
		}
		jobs, _ := s.Jobs(ctx)
		exports := 0
		for _, j := range jobs {
			if j.Kind == central.JobExport && j.CaseID == id {
				exports++
			}
		}
		if exports != 1 {
			t.Fatalf("approval queued %d export jobs, want 1 (%+v)", exports, jobs)
		}
	})
	t.Run("SecondReview", func(t *testing.T) {
		svc, s := newService(t, true)
		id := newCase(t, s)
		c, err := svc.Approve(ctx, supervisor, id, "")
		if err != nil || c.Status != central.CaseSecondReview || c.Export != nil {
			t.Fatalf("approve with second review: %+v %v", c, err)
		}
		if _, err := svc.Confirm(ctx, reviewer, id, ""); code(err) != plume.EFORBIDDEN {
			t.Fatalf("a reviewer confirms: %v", err)
		}
		if _, err := svc.Confirm(ctx, supervisor, id, ""); code(err) != plume.EFORBIDDEN {
			t.Fatalf("the approver confirms their own approval: %v", err)
		}
		if _, err := svc.Return(ctx, review.Actor{Officer: &central.Officer{Username: "sun.li", Role: central.RoleSupervisor}}, id, ""); code(err) != plume.EINVALID {
			t.Fatalf("return without a reason: %v", err)
		}
		other := review.Actor{Officer: &central.Officer{Username: "sun.li", Role: central.RoleSupervisor}}
		if c, err = svc.Return(ctx, other, id, "check the plate"); err != nil || c.Status != central.CaseOpen {
			t.Fatalf("return: %+v %v", c, err)
		}
		if _, err := svc.Approve(ctx, supervisor, id, ""); err != nil {
			t.Fatal(err)
		}
		if c, err = svc.Confirm(ctx, other, id, "agreed"); err != nil || c.Status != central.CaseApproved || len(c.Reviews) != 4 {
			t.Fatalf("confirm: %+v %v", c, err)
		}
	})
	t.Run("RejectReasons", func(t *testing.T) {
		svc, s := newService(t, false)
		id := newCase(t, s)
		for _, tc := range []struct{ reason, note, want string }{
			{"", "", plume.EINVALID},
			{"no-such-reason", "", plume.EINVALID},
			{"other", "", plume.EINVALID},
		} {
			if _, err := svc.Reject(ctx, reviewer, id, tc.reason, tc.note); code(err) != tc.want {
				t.Errorf("reject %q %q: %v, want %s", tc.reason, tc.note, err, tc.want)
			}
		}
		c, err := svc.Reject(ctx, reviewer, id, "other", "wrong lane")
		if err != nil || c.Status != central.CaseRejected || c.Reviews[0].Reason != "other" {
			t.Fatalf("reject: %+v %v", c, err)
		}
		if _, err := svc.Approve(ctx, reviewer, id, ""); code(err) != plume.ECONFLICT {
			t.Fatalf("approve a rejected case: %v", err)
		}
	})
	t.Run("PlateRequired", func(t *testing.T) {
		svc, s := newService(t, false)
		id := newCase(t, s)
		if _, err := s.UpdateCase(ctx, id, func(c *central.Case) (*central.CaseChange, error) { c.Plate = ""; return nil, nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Approve(ctx, reviewer, id, ""); code(err) != plume.EINVALID {
			t.Fatalf("approve without a plate: %v", err)
		}
		c, err := svc.CorrectPlate(ctx, reviewer, id, "粤B54321", "", "read from the close-up")
		if err != nil || c.Plate != "粤B54321" {
			t.Fatalf("correct plate: %+v %v", c, err)
		}
		if _, err := svc.Approve(ctx, reviewer, id, ""); err != nil {
			t.Fatalf("approve after the correction: %v", err)
		}
	})
	t.Run("Permissions", func(t *testing.T) {
		svc, s := newService(t, false)
		id := newCase(t, s)
		if _, err := svc.Approve(ctx, auditor, id, ""); code(err) != plume.EFORBIDDEN {
			t.Fatalf("an auditor approves: %v", err)
		}
		if _, err := svc.Approve(ctx, scoped, id, ""); code(err) != plume.ENOTFOUND {
			t.Fatalf("another station's reviewer approves: %v", err)
		}
	})
	t.Run("EnforceableGate", func(t *testing.T) {
		_, s := newService(t, false)
		gate := errors.New("clock off by 3 s")
		svc := review.New(review.Config{Store: s, Exporter: "test", Enforceable: func(context.Context, *central.Case) error {
			return plume.Errorf(plume.ECONFLICT, "%v", gate)
		}})
		id := newCase(t, s)
		if _, err := svc.Approve(ctx, reviewer, id, ""); code(err) != plume.ECONFLICT {
			t.Fatalf("approve past the gate: %v", err)
		}
		if c, _ := s.Case(ctx, id); c.Status != central.CaseOpen {
			t.Fatalf("status after a refused approval: %s", c.Status)
		}
	})
}

// A misread plate put a vehicle's second exceedance on another plate, so
// ingest made it a warning; correcting the plate re-applies the repeat
// rule against the right vehicle's file and makes it an enforcement case.
func TestPlateCorrectionReappliesRepeatRule(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	profiles, err := profile.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	svc := review.New(review.Config{Store: s, Exporter: "test", Profiles: profiles,
		Now: func() time.Time { return fixture.Epoch.Add(48 * time.Hour) }})
	st := plume.StationID("GD-SZ-0001")
	key := fixture.Key(string(st))
	put := func(at time.Time, plate string) *central.Case {
		t.Helper()
		fx := fixture.NewEvidence(t, key, st, at, 1, true, 1)
		m := fx.Manifest
		m.Pass.Plate.Text = plate
		body, sig, err := plume.SignManifest(key, m)
		if err != nil {
			t.Fatal(err)
		}
		c := central.NewCase(m)
		c.Kind = central.KindWarning // as ingest judged it: no earlier exceedance on this plate
		ev := &central.StoredEvidence{ID: m.ID, Station: st, Manifest: body, StationSig: sig,
			StationKey: key.Public().(ed25519.PublicKey), ReceivedAt: at.Add(time.Minute)}
		if _, _, err := s.PutEvidence(ctx, ev, c, nil); err != nil {
			t.Fatal(err)
		}
		return c
	}
	put(fixture.Epoch, "粤B12345")
	second := put(fixture.Epoch.Add(24*time.Hour), "粤B12845")

	c, err := svc.CorrectPlate(ctx, reviewer, second.ID, "粤B12345", "", "read from scene-1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != central.KindEnforcement || !strings.Contains(c.RepeatNote, "2 times in a row") {
		t.Fatalf("after correction: kind %s, note %q; want enforcement", c.Kind, c.RepeatNote)
	}
	custody, err := s.Custody(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := custody[len(custody)-1]; !strings.Contains(last.Detail, "repeat rule re-applied: warning → enforcement") {
		t.Fatalf("custody does not record the reclassification: %+v", last)
	}
}
