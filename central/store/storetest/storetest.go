// Package storetest is the contract every central.Store implementation must
// pass. An implementation's tests call Run with a function that returns a
// fresh, empty store:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(tb testing.TB) central.Store { return mustOpen(tb) })
//	}
package storetest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/internal/fixture"
)

// Run runs the contract tests against stores made by newStore. newStore
// must register its own cleanup (closing the store) with tb.Cleanup.
func Run(t *testing.T, newStore func(tb testing.TB) central.Store) {
	t.Run("Stations", func(t *testing.T) { testStations(t, newStore(t)) })
	t.Run("EvidenceIdempotent", func(t *testing.T) { testEvidenceIdempotent(t, newStore(t)) })
	t.Run("EvidenceConcurrent", func(t *testing.T) { testEvidenceConcurrent(t, newStore(t)) })
	t.Run("EvidenceBadManifest", func(t *testing.T) { testEvidenceBadManifest(t, newStore(t)) })
	t.Run("CaseCreated", func(t *testing.T) { testCaseCreated(t, newStore(t)) })
	t.Run("Custody", func(t *testing.T) { testCustody(t, newStore(t)) })
	t.Run("Records", func(t *testing.T) { testRecords(t, newStore(t)) })
	t.Run("PassPaging", func(t *testing.T) { testPassPaging(t, newStore(t)) })
	t.Run("CasePaging", func(t *testing.T) { testCasePaging(t, newStore(t)) })
	t.Run("Jobs", func(t *testing.T) { testJobs(t, newStore(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newStore(t)) })
	runCasework(t, newStore)
}

var ctx = context.Background()

func mustStation(t *testing.T, s central.Store, id plume.StationID) *central.Station {
	t.Helper()
	st := &central.Station{ID: id, Name: "gantry " + string(id), PublicKey: fixture.Key(string(id)).Public().(ed25519.PublicKey), EnrolledAt: fixture.Epoch}
	if err := s.PutStation(ctx, st); err != nil {
		t.Fatal(err)
	}
	return st
}

// putEvidence stores fixture evidence the way ingest does and returns it.
func putEvidence(t *testing.T, s central.Store, station plume.StationID, at time.Time, exceed bool) (*central.StoredEvidence, *central.Case, bool) {
	t.Helper()
	fx := fixture.NewEvidence(t, fixture.Key(string(station)), station, at, 1, exceed, 2)
	ev := &central.StoredEvidence{
		ID: fx.Manifest.ID, Station: station, Manifest: fx.Body, StationSig: fx.Sig,
		StationKey: fixture.Key(string(station)).Public().(ed25519.PublicKey), ReceivedAt: at.Add(time.Minute),
	}
	var c *central.Case
	var custody []central.CustodyEntry
	if exceed {
		c = central.NewCase(fx.Manifest)
		custody = []central.CustodyEntry{
			{Time: fx.Manifest.CapturedAt, Actor: "station:" + string(station), Action: central.ActionCaptured},
			{Time: ev.ReceivedAt, Actor: "central", Action: central.ActionReceived},
		}
	}
	stored, created, err := s.PutEvidence(ctx, ev, c, custody)
	if err != nil {
		t.Fatal(err)
	}
	return stored, c, created
}

func testStations(t *testing.T, s central.Store) {
	a := mustStation(t, s, "GD-SZ-0002")
	mustStation(t, s, "GD-SZ-0001")
	got, err := s.Station(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != a.Name || !got.PublicKey.Equal(a.PublicKey) || !got.EnrolledAt.Equal(a.EnrolledAt) {
		t.Fatalf("station round trip: got %+v, want %+v", got, a)
	}
	if err := s.PutStation(ctx, &central.Station{ID: a.ID, PublicKey: a.PublicKey}); !errors.Is(err, central.ErrConflict) {
		t.Fatalf("second enrollment: got %v, want ErrConflict", err)
	}
	all, err := s.Stations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != "GD-SZ-0001" || all[1].ID != "GD-SZ-0002" {
		t.Fatalf("stations not listed by ID: %v", all)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Stations != 2 {
		t.Fatalf("stats: %+v, %v", st, err)
	}
}

// testEvidenceBadManifest: a manifest that does not decode is refused with
// an error and nothing is stored (it used to be stored without its
// vehicle-file entry, silently).
func testEvidenceBadManifest(t *testing.T, s central.Store) {
	mustStation(t, s, "GD-SZ-0001")
	ev := &central.StoredEvidence{ID: "GD-SZ-0001-20261128T093000000Z-L1", Station: "GD-SZ-0001", Manifest: []byte("{not json"), ReceivedAt: fixture.Epoch}
	if _, _, err := s.PutEvidence(ctx, ev, nil, nil); err == nil {
		t.Fatal("a manifest that does not decode was stored")
	}
	if _, err := s.Evidence(ctx, "GD-SZ-0001", ev.ID); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("after the refusal: %v, want not found", err)
	}
}

func testEvidenceIdempotent(t *testing.T, s central.Store) {
	mustStation(t, s, "GD-SZ-0001")
	first, c, created := putEvidence(t, s, "GD-SZ-0001", fixture.Epoch, true)
	if !created || c == nil || first.CaseID == "" || first.CaseID != c.ID {
		t.Fatalf("first put: created=%v case=%+v evidence case %q", created, c, first.CaseID)
	}
	again, c2, created := putEvidence(t, s, "GD-SZ-0001", fixture.Epoch, true)
	if created {
		t.Fatal("identical manifest stored twice")
	}
	if again.CaseID != first.CaseID || c2.ID != "" {
		t.Fatalf("replay: case %q, want %q (and no new case, got %q)", again.CaseID, first.CaseID, c2.ID)
	}
	// A different manifest under the same ID is a conflict.
	fx := fixture.NewEvidence(t, fixture.Key("GD-SZ-0001"), "GD-SZ-0001", fixture.Epoch, 1, true, 3)
	_, _, err := s.PutEvidence(ctx, &central.StoredEvidence{ID: fx.Manifest.ID, Station: "GD-SZ-0001", Manifest: fx.Body, StationSig: fx.Sig, ReceivedAt: fixture.Epoch}, nil, nil)
	if !errors.Is(err, central.ErrConflict) || plume.ErrorCode(err) != plume.ECONFLICT {
		t.Fatalf("different manifest: got %v, want ErrConflict", err)
	}
	got, err := s.Evidence(ctx, "GD-SZ-0001", first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Manifest) != string(first.Manifest) || string(got.StationSig) != string(first.StationSig) || got.CaseID != first.CaseID {
		t.Fatal("evidence did not round-trip")
	}
	st, _ := s.Stats(ctx)
	if st.Evidence != 1 || st.Cases != 1 || st.PendingJobs != 1 {
		t.Fatalf("stats after replay: %+v", st)
	}
}

func testEvidenceConcurrent(t *testing.T, s central.Store) {
	mustStation(t, s, "GD-SZ-0001")
	var wg sync.WaitGroup
	var mu sync.Mutex
	createdN := 0
	for range 8 {
		wg.Go(func() {
			_, _, created := putEvidence(t, s, "GD-SZ-0001", fixture.Epoch, true)
			if created {
				mu.Lock()
				createdN++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st, _ := s.Stats(ctx)
	if createdN != 1 || st.Cases != 1 || st.PendingJobs != 1 {
		t.Fatalf("8 concurrent identical puts: created %d, stats %+v; want exactly one", createdN, st)
	}
}

func testCaseCreated(t *testing.T, s central.Store) {
	mustStation(t, s, "GD-SZ-0001")
	ev, c, _ := putEvidence(t, s, "GD-SZ-0001", fixture.Epoch, true)
	got, err := s.Case(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Number != central.FormatCaseNumber(ev.ReceivedAt, 1) || got.Number != "PLM-20261128-000001" {
		t.Fatalf("case number %q", got.Number)
	}
	if got.EvidenceID != ev.ID || got.Status != central.CaseOpen || got.Plate != "粤B12345" || len(got.Pollutants) != 1 || got.Pollutants[0] != plume.PollutantNO {
		t.Fatalf("case %+v", got)
	}
	if got.Profile != "hj845-2017-diesel@2026.11-1" || !got.CreatedAt.Equal(ev.ReceivedAt) {
		t.Fatalf("case profile %q created %v", got.Profile, got.CreatedAt)
	}
	// A pass within limits stores evidence without a case.
	ev2, _, created := putEvidence(t, s, "GD-SZ-0001", fixture.Epoch.Add(time.Second), false)
	if !created || ev2.CaseID != "" {
		t.Fatalf("non-violation evidence: created %v case %q", created, ev2.CaseID)
	}
	// The package job is queued with the case.
	j, err := s.ClaimJob(ctx, fixture.Epoch.Add(time.Hour), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if j.Kind != central.JobBuildPackage || j.CaseID != c.ID {
		t.Fatalf("job %+v", j)
	}
	built := fixture.Epoch.Add(2 * time.Hour)
	if err := s.SetCasePackage(ctx, c.ID, fmt.Sprintf("%064x", 7), 1234, built, 0); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Case(ctx, c.ID)
	if got.PackageSize != 1234 || !got.PackageBuiltAt.Equal(built) {
		t.Fatalf("package not recorded: %+v", got)
	}
	// Rebuilding does not count twice.
	if err := s.SetCasePackage(ctx, c.ID, fmt.Sprintf("%064x", 8), 1235, built, 0); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stats(ctx); st.PackagesBuilt != 1 {
		t.Fatalf("packages built %d, want 1", st.PackagesBuilt)
	}
}

func testCustody(t *testing.T, s central.Store) {
	mustStation(t, s, "GD-SZ-0001")
	_, c, _ := putEvidence(t, s, "GD-SZ-0001", fixture.Epoch, true)
	_, c2, _ := putEvidence(t, s, "GD-SZ-0001", fixture.Epoch.Add(time.Second), true)
	e, err := s.AppendCustody(ctx, c.ID, central.CustodyEntry{Time: fixture.Epoch.Add(time.Hour), Actor: "central", Action: central.ActionPackageBuilt})
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != 3 {
		t.Fatalf("appended seq %d, want 3", e.Seq)
	}
	log, err := s.Custody(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 3 || log[0].Action != central.ActionCaptured || log[2].Action != central.ActionPackageBuilt {
		t.Fatalf("custody log %+v", log)
	}
	prev := central.CustodyGenesis
	for i, e := range log {
		if e.Seq != int64(i+1) || e.PrevSHA256 != prev {
			t.Fatalf("entry %d breaks the chain: %+v (want prev %s)", i, e, prev)
		}
		prev = central.CustodyHash(central.EncodeCustody(e))
	}
	other, _ := s.Custody(ctx, c2.ID)
	if len(other) != 2 {
		t.Fatalf("other case's custody log has %d entries, want 2", len(other))
	}
	if _, err := s.AppendCustody(ctx, "C99999999999", central.CustodyEntry{Action: "x"}); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("append to unknown case: %v", err)
	}
}

func testRecords(t *testing.T, s central.Store) {
	recs := fixture.Records("GD-SZ-0001", fixture.Epoch, 10)
	recs = append(recs, plume.Record{Kind: plume.RecordStatus, ID: "status-1", Station: "GD-SZ-0001", Time: fixture.Epoch, Status: &plume.DeviceStatus{Time: fixture.Epoch, Flag: plume.FlagNormal}})
	acc, dup, err := s.PutRecords(ctx, "GD-SZ-0001", recs, fixture.Epoch)
	if err != nil || acc != 11 || dup != 0 {
		t.Fatalf("first batch: accepted %d duplicates %d err %v", acc, dup, err)
	}
	acc, dup, err = s.PutRecords(ctx, "GD-SZ-0001", recs[5:], fixture.Epoch)
	if err != nil || acc != 0 || dup != 6 {
		t.Fatalf("resent batch: accepted %d duplicates %d err %v", acc, dup, err)
	}
	// The same record ID at another station is a different record.
	other := fixture.Records("GD-SZ-0002", fixture.Epoch, 1)
	if acc, _, err := s.PutRecords(ctx, "GD-SZ-0002", other, fixture.Epoch); err != nil || acc != 1 {
		t.Fatalf("other station: %d %v", acc, err)
	}
	rows, _, err := s.Passes(ctx, central.PassFilter{})
	if err != nil || len(rows) != 11 {
		t.Fatalf("passes: %d %v", len(rows), err)
	}
	if st, _ := s.Stats(ctx); st.Records != 12 {
		t.Fatalf("records %d, want 12", st.Records)
	}
}

func testPassPaging(t *testing.T, s central.Store) {
	if _, _, err := s.PutRecords(ctx, "GD-SZ-0001", fixture.Records("GD-SZ-0001", fixture.Epoch, 25), fixture.Epoch); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutRecords(ctx, "GD-SZ-0002", fixture.Records("GD-SZ-0002", fixture.Epoch, 5), fixture.Epoch); err != nil {
		t.Fatal(err)
	}
	var all []*central.PassRow
	cursor, pages := "", 0
	for {
		rows, next, err := s.Passes(ctx, central.PassFilter{Station: "GD-SZ-0001", Limit: 10, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		all = append(all, rows...)
		if next == "" {
			break
		}
		cursor = next
	}
	if pages != 3 || len(all) != 25 {
		t.Fatalf("paged %d rows in %d pages, want 25 in 3", len(all), pages)
	}
	seen := map[plume.PassID]bool{}
	for i, r := range all {
		if r.Station != "GD-SZ-0001" || seen[r.ID] {
			t.Fatalf("row %d: %+v (duplicate or wrong station)", i, r)
		}
		seen[r.ID] = true
		if i > 0 && !r.Time.Before(all[i-1].Time) {
			t.Fatalf("not newest first at %d", i)
		}
	}
	exceed, _, err := s.Passes(ctx, central.PassFilter{Outcome: plume.OutcomeExceed, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(exceed) != 9+2 {
		t.Fatalf("%d exceeding passes, want 11", len(exceed))
	}
	if _, _, err := s.Passes(ctx, central.PassFilter{Cursor: "not-a-cursor"}); plume.ErrorCode(err) != plume.EINVALID {
		t.Fatalf("bad cursor: %v", err)
	}
}

func testCasePaging(t *testing.T, s central.Store) {
	for i := range 7 {
		putEvidence(t, s, "GD-SZ-0001", fixture.Epoch.Add(time.Duration(i)*time.Second), true)
	}
	for i := range 3 {
		putEvidence(t, s, "GD-SZ-0002", fixture.Epoch.Add(time.Duration(i)*time.Second), true)
	}
	var ids []plume.CaseID
	cursor := ""
	for {
		cs, next, err := s.Cases(ctx, central.CaseFilter{Station: "GD-SZ-0001", Status: central.CaseOpen, Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Station != "GD-SZ-0001" {
				t.Fatalf("filter leaked %s", c.Station)
			}
			ids = append(ids, c.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(ids) != 7 {
		t.Fatalf("%d cases, want 7", len(ids))
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] >= ids[i-1] {
			t.Fatalf("cases not newest first: %v", ids)
		}
	}
	all, next, _ := s.Cases(ctx, central.CaseFilter{})
	if len(all) != 10 || next != "" {
		t.Fatalf("all cases: %d next %q", len(all), next)
	}
}

func testJobs(t *testing.T, s central.Store) {
	now := fixture.Epoch
	a, err := s.EnqueueJob(ctx, central.Job{Kind: central.JobBuildPackage, CaseID: "C00000000001", CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.EnqueueJob(ctx, central.Job{Kind: central.JobBuildPackage, CaseID: "C00000000002", CreatedAt: now})
	j, err := s.ClaimJob(ctx, now, time.Minute)
	if err != nil || j.ID != a.ID || j.Attempts != 1 {
		t.Fatalf("first claim: %+v %v", j, err)
	}
	j2, err := s.ClaimJob(ctx, now, time.Minute)
	if err != nil || j2.ID != b.ID {
		t.Fatalf("second claim: %+v %v (a leased job must not be handed out twice)", j2, err)
	}
	if _, err := s.ClaimJob(ctx, now, time.Minute); !errors.Is(err, central.ErrNoJob) {
		t.Fatalf("third claim: %v, want ErrNoJob", err)
	}
	// A lease that runs out makes the job claimable again.
	j3, err := s.ClaimJob(ctx, now.Add(2*time.Minute), time.Minute)
	if err != nil || j3.ID != a.ID || j3.Attempts != 2 {
		t.Fatalf("claim after lease expiry: %+v %v", j3, err)
	}
	if err := s.RetryJob(ctx, a.ID, now.Add(time.Hour), "blob store down"); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteJob(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimJob(ctx, now.Add(30*time.Minute), time.Minute); !errors.Is(err, central.ErrNoJob) {
		t.Fatalf("claim before retry time: %v", err)
	}
	j4, err := s.ClaimJob(ctx, now.Add(61*time.Minute), time.Minute)
	if err != nil || j4.ID != a.ID || j4.LastError != "blob store down" {
		t.Fatalf("claim after retry time: %+v %v", j4, err)
	}
	if err := s.CompleteJob(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteJob(ctx, a.ID); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("complete twice: %v", err)
	}
	if st, _ := s.Stats(ctx); st.PendingJobs != 0 {
		t.Fatalf("pending jobs %d", st.PendingJobs)
	}
}

func testNotFound(t *testing.T, s central.Store) {
	for name, err := range map[string]error{
		"station":  second(s.Station(ctx, "nope")),
		"evidence": second(s.Evidence(ctx, "nope", "nope-20261128T000000000Z-L1")),
		"case":     second(s.Case(ctx, "C00000000042")),
		"custody":  second(s.Custody(ctx, "C00000000042")),
		"package":  s.SetCasePackage(ctx, "C00000000042", "", 0, time.Time{}, 0),
		"retry":    s.RetryJob(ctx, 42, time.Time{}, ""),
	} {
		if !errors.Is(err, central.ErrNotFound) || plume.ErrorCode(err) != plume.ENOTFOUND {
			t.Errorf("%s: got %v, want ErrNotFound", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }
