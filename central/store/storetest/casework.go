package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/internal/fixture"
)

// runCasework runs the contract of the review-side methods.
func runCasework(t *testing.T, newStore func(tb testing.TB) central.Store) {
	t.Run("CaseFilters", func(t *testing.T) { testCaseFilters(t, newStore(t)) })
	t.Run("CaseSort", func(t *testing.T) { testCaseSort(t, newStore(t)) })
	t.Run("UpdateCase", func(t *testing.T) { testUpdateCase(t, newStore(t)) })
	t.Run("VehicleHistory", func(t *testing.T) { testVehicleHistory(t, newStore(t)) })
	t.Run("StationAudits", func(t *testing.T) { testStationAudits(t, newStore(t)) })
	t.Run("DailyStats", func(t *testing.T) { testDailyStats(t, newStore(t)) })
	t.Run("Officers", func(t *testing.T) { testOfficers(t, newStore(t)) })
	t.Run("Sessions", func(t *testing.T) { testSessions(t, newStore(t)) })
	t.Run("AuditLog", func(t *testing.T) { testAuditLog(t, newStore(t)) })
	t.Run("ClaimJobKinds", func(t *testing.T) { testClaimJobKinds(t, newStore(t)) })
}

func testCaseFilters(t *testing.T, s central.Store) {
	var ids []plume.CaseID
	for i := range 6 {
		st := plume.StationID("GD-SZ-0001")
		if i%2 == 1 {
			st = "GD-SZ-0002"
		}
		_, c, _ := putEvidence(t, s, st, fixture.Epoch.Add(time.Duration(i)*time.Hour), true)
		ids = append(ids, c.ID)
	}
	// Reject case 0; approve case 1.
	for i, to := range map[int]central.CaseStatus{0: central.CaseRejected, 1: central.CaseApproved} {
		if _, err := s.UpdateCase(ctx, ids[i], func(c *central.Case) (*central.CaseChange, error) { c.Status = to; return nil, nil }); err != nil {
			t.Fatal(err)
		}
	}
	// Case 5 has no plate read: unlinked.
	if _, err := s.UpdateCase(ctx, ids[5], func(c *central.Case) (*central.CaseChange, error) { c.Kind = central.KindUnlinked; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	count := func(f central.CaseFilter) int {
		t.Helper()
		cs, _, err := s.Cases(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if !f.Match(c) {
				t.Fatalf("filter %+v returned %s (%s, %s)", f, c.ID, c.Station, c.Status)
			}
		}
		return len(cs)
	}
	for name, tc := range map[string]struct {
		f    central.CaseFilter
		want int
	}{
		"Open":             {central.CaseFilter{Status: central.CaseOpen}, 4},
		"Rejected":         {central.CaseFilter{Status: central.CaseRejected}, 1},
		"Station":          {central.CaseFilter{Station: "GD-SZ-0002"}, 3},
		"Scope":            {central.CaseFilter{Stations: []plume.StationID{"GD-SZ-0001"}, Status: central.CaseOpen}, 2},
		"ScopeNone":        {central.CaseFilter{Stations: []plume.StationID{"\x00none"}}, 0},
		"Plate":            {central.CaseFilter{Plate: "粤B12345"}, 6},
		"PlateOther":       {central.CaseFilter{Plate: "粤B99999"}, 0},
		"Pollutant":        {central.CaseFilter{Pollutant: plume.PollutantNO}, 6},
		"PollutantOpacity": {central.CaseFilter{Pollutant: plume.PollutantOpacity}, 0},
		"From":             {central.CaseFilter{From: fixture.Epoch.Add(3 * time.Hour)}, 3},
		"FromTo":           {central.CaseFilter{From: fixture.Epoch.Add(time.Hour), To: fixture.Epoch.Add(3 * time.Hour)}, 2},
		"Unlinked":         {central.CaseFilter{Kind: central.KindUnlinked}, 1},
		"ExcludeUnlinked":  {central.CaseFilter{ExcludeKind: central.KindUnlinked}, 5},
		"OpenLinked":       {central.CaseFilter{Status: central.CaseOpen, ExcludeKind: central.KindUnlinked}, 3},
	} {
		if got := count(tc.f); got != tc.want {
			t.Errorf("%s: %d cases, want %d", name, got, tc.want)
		}
	}
	// Oldest first pages forward in ID order.
	var seen []plume.CaseID
	cursor := ""
	for {
		cs, next, err := s.Cases(ctx, central.CaseFilter{Status: central.CaseOpen, Oldest: true, Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			seen = append(seen, c.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 4 || seen[0] != ids[2] || seen[3] != ids[5] {
		t.Fatalf("oldest-first paging %v", seen)
	}
	counts, err := s.CaseCounts(ctx, central.CaseFilter{Station: "GD-SZ-0001", Status: central.CaseOpen})
	if err != nil {
		t.Fatal(err)
	}
	if counts[central.CaseOpen] != 2 || counts[central.CaseRejected] != 1 || counts[central.CaseApproved] != 0 {
		t.Fatalf("counts %v (status is ignored, station is not)", counts)
	}
}

func testUpdateCase(t *testing.T, s central.Store) {
	_, c, _ := putEvidence(t, s, "GD-SZ-0001", fixture.Epoch, true)
	at := fixture.Epoch.Add(time.Hour)
	got, err := s.UpdateCase(ctx, c.ID, func(c *central.Case) (*central.CaseChange, error) {
		c.Plate, c.Status, c.Revision = "粤B54321", central.CaseApproved, c.Revision+1
		c.Station = "GD-SZ-9999" // must be ignored
		return &central.CaseChange{At: at,
			Custody: []central.CustodyEntry{{Time: at, Actor: "officer:li.wei", Action: central.ActionApproved}},
			Audit:   []central.AuditEvent{{Time: at, Actor: "li.wei", Action: "case.approve", Target: string(c.ID)}},
			Jobs:    []central.Job{{Kind: central.JobExport}},
		}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Station != "GD-SZ-0001" || got.Plate != "粤B54321" || !got.UpdatedAt.Equal(at) {
		t.Fatalf("updated case %+v", got)
	}
	log, _ := s.Custody(ctx, c.ID)
	if len(log) != 3 || log[2].Action != central.ActionApproved {
		t.Fatalf("custody %+v", log)
	}
	evs, _, _ := s.Audit(ctx, central.AuditFilter{Target: string(c.ID)})
	if len(evs) != 1 || evs[0].Action != "case.approve" {
		t.Fatalf("audit %+v", evs)
	}
	j, err := s.ClaimJob(ctx, at, time.Minute, central.JobExport)
	if err != nil || j.CaseID != c.ID {
		t.Fatalf("export job %+v %v", j, err)
	}
	// The indexes follow the change.
	if cs, _, _ := s.Cases(ctx, central.CaseFilter{Status: central.CaseOpen}); len(cs) != 0 {
		t.Fatal("the case is still listed as open")
	}
	if cs, _, _ := s.Cases(ctx, central.CaseFilter{Plate: "粤B54321"}); len(cs) != 1 {
		t.Fatal("the case is not found by its corrected plate")
	}
	if cs, _, _ := s.Cases(ctx, central.CaseFilter{Plate: "粤B12345"}); len(cs) != 0 {
		t.Fatal("the case is still found by its old plate")
	}
	// The pass moved to the corrected plate's vehicle file.
	if h, _ := s.VehicleHistory(ctx, "粤B54321", 10); len(h) != 1 || h[0].CaseID != c.ID {
		t.Fatalf("vehicle file of the corrected plate %+v", h)
	}
	if h, _ := s.VehicleHistory(ctx, "粤B12345", 10); len(h) != 0 {
		t.Fatalf("vehicle file of the misread plate %+v", h)
	}
	// An error stores nothing.
	boom := errors.New("boom")
	_, err = s.UpdateCase(ctx, c.ID, func(c *central.Case) (*central.CaseChange, error) {
		c.Status = central.CaseRejected
		return nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	if again, _ := s.Case(ctx, c.ID); again.Status != central.CaseApproved {
		t.Fatalf("a failed update changed the case to %s", again.Status)
	}
	if _, err := s.UpdateCase(ctx, "C99999999999", func(*central.Case) (*central.CaseChange, error) { return nil, nil }); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("unknown case: %v", err)
	}
}

func testVehicleHistory(t *testing.T, s central.Store) {
	putEvidence(t, s, "GD-SZ-0001", fixture.Epoch, true)
	recs := fixture.Records("GD-SZ-0002", fixture.Epoch.Add(time.Hour), 3)
	if _, _, err := s.PutRecords(ctx, "GD-SZ-0002", recs, fixture.Epoch); err != nil {
		t.Fatal(err)
	}
	// The pass record of the case's own pass does not list it twice.
	own := fixture.Records("GD-SZ-0001", fixture.Epoch, 1)
	if _, _, err := s.PutRecords(ctx, "GD-SZ-0001", own, fixture.Epoch); err != nil {
		t.Fatal(err)
	}
	h, err := s.VehicleHistory(ctx, "粤B12345", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 4 || h[3].Station != "GD-SZ-0001" || h[3].CaseID == "" || h[0].Time.Before(h[1].Time) {
		t.Fatalf("vehicle file %+v", h)
	}
	if h[0].Outcome != plume.OutcomePass || len(h[0].Judged) == 0 || len(h[0].Exceeded) != 0 {
		t.Fatalf("a pass within limits: %+v", h[0])
	}
	if lim, _ := s.VehicleHistory(ctx, "粤B12345", 2); len(lim) != 2 {
		t.Fatalf("limit: %d", len(lim))
	}
}

func testStationAudits(t *testing.T, s central.Store) {
	var recs []plume.Record
	for i, passed := range []bool{true, false, true} {
		at := fixture.Epoch.Add(time.Duration(i-3) * 24 * time.Hour)
		recs = append(recs, plume.Record{Kind: plume.RecordAudit, ID: "audit-" + string(rune('a'+i)), Station: "GD-SZ-0001", Time: at,
			Audit: &plume.Audit{Time: at, Kind: plume.AuditCalibration, Gas: "no", Reference: 1000, Measured: 1010, Unit: "ppm", Passed: passed}})
	}
	if _, _, err := s.PutRecords(ctx, "GD-SZ-0001", recs, fixture.Epoch); err != nil {
		t.Fatal(err)
	}
	a, err := s.StationAudits(ctx, "GD-SZ-0001", fixture.Epoch.Add(-36*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 2 || a[0].Passed || !a[1].Passed {
		t.Fatalf("audits before the time, newest first: %+v", a)
	}
	if other, _ := s.StationAudits(ctx, "GD-SZ-0002", fixture.Epoch, 10); len(other) != 0 {
		t.Fatalf("another station's audits: %+v", other)
	}
}

func testDailyStats(t *testing.T, s central.Store) {
	if _, _, err := s.PutRecords(ctx, "GD-SZ-0001", fixture.Records("GD-SZ-0001", fixture.Epoch, 9), fixture.Epoch); err != nil {
		t.Fatal(err)
	}
	_, c, _ := putEvidence(t, s, "GD-SZ-0001", fixture.Epoch, true)
	sent := fixture.Epoch.Add(2 * time.Hour)
	_, err := s.UpdateCase(ctx, c.ID, func(c *central.Case) (*central.CaseChange, error) {
		c.Status = central.CaseExported
		c.Export = &central.Export{Status: central.ExportSent, SentAt: sent}
		return &central.CaseChange{At: sent}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	day := central.DayOf(fixture.Epoch)
	rows, err := s.DailyStats(ctx, day, day)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("rows %+v", rows)
	}
	d := rows[0]
	if d.Passes != 9 || d.Exceed != 3 || d.ByPollutant[plume.PollutantNO] != 3 || d.Cases != 1 || d.Exported != 1 || d.ExportSeconds < 7000 || d.ExportBuckets[1] != 1 {
		t.Fatalf("day %+v", d)
	}
	if none, _ := s.DailyStats(ctx, "2000-01-01", "2000-01-02"); len(none) != 0 {
		t.Fatalf("days outside the range: %+v", none)
	}
}

func testOfficers(t *testing.T, s central.Store) {
	o := &central.Officer{Username: "li.wei", Name: "李伟", Role: central.RoleReviewer, PasswordHash: "$argon2id$x", Stations: []plume.StationID{"GD-SZ-0001"}, CreatedAt: fixture.Epoch}
	if err := s.PutOfficer(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := s.PutOfficer(ctx, &central.Officer{Username: "li.wei"}); !errors.Is(err, central.ErrConflict) {
		t.Fatalf("second officer with the name: %v", err)
	}
	s.PutOfficer(ctx, &central.Officer{Username: "audit", Role: central.RoleAuditor})
	got, err := s.Officer(ctx, "li.wei")
	if err != nil || got.Name != "李伟" || got.PasswordHash != "$argon2id$x" || len(got.Stations) != 1 {
		t.Fatalf("officer %+v %v", got, err)
	}
	all, _ := s.Officers(ctx)
	if len(all) != 2 || all[0].Username != "audit" {
		t.Fatalf("officers %+v", all)
	}
	up, err := s.UpdateOfficer(ctx, "li.wei", func(o *central.Officer) (*central.AuditEvent, error) {
		o.Disabled = true
		return &central.AuditEvent{Time: fixture.Epoch, Actor: "admin", Action: "officer.disable", Target: "li.wei"}, nil
	})
	if err != nil || !up.Disabled {
		t.Fatalf("update %+v %v", up, err)
	}
	if evs, _, _ := s.Audit(ctx, central.AuditFilter{Action: "officer."}); len(evs) != 1 {
		t.Fatalf("officer update not audited: %+v", evs)
	}
	if _, err := s.Officer(ctx, "nobody"); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("unknown officer: %v", err)
	}
}

func testSessions(t *testing.T, s central.Store) {
	se := &central.Session{Hash: "ab12", Kind: central.SessionBrowser, Officer: "li.wei", CSRF: "tok", CreatedAt: fixture.Epoch, ExpiresAt: fixture.Epoch.Add(time.Hour)}
	if err := s.PutSession(ctx, se); err != nil {
		t.Fatal(err)
	}
	got, err := s.Session(ctx, "ab12")
	if err != nil || got.Officer != "li.wei" || got.CSRF != "tok" || !got.ExpiresAt.Equal(se.ExpiresAt) {
		t.Fatalf("session %+v %v", got, err)
	}
	if err := s.DeleteSession(ctx, "ab12"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSession(ctx, "ab12"); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if _, err := s.Session(ctx, "ab12"); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
}

func testAuditLog(t *testing.T, s central.Store) {
	for i := range 7 {
		actor := "li.wei"
		if i%2 == 1 {
			actor = "zhang.min"
		}
		if _, err := s.AppendAudit(ctx, central.AuditEvent{Time: fixture.Epoch.Add(time.Duration(i) * time.Minute), Actor: actor, Action: "case.approve", Target: "C1"}); err != nil {
			t.Fatal(err)
		}
	}
	var all []central.AuditEvent
	cursor := ""
	for {
		evs, next, err := s.Audit(ctx, central.AuditFilter{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, evs...)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(all) != 7 || all[0].Seq != 7 || all[6].Seq != 1 {
		t.Fatalf("paged audit log: %d events", len(all))
	}
	// Hash chained, oldest to newest.
	prev := central.CustodyGenesis
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].PrevSHA256 != prev {
			t.Fatalf("event %d breaks the chain", all[i].Seq)
		}
		b, _ := jsonLine(all[i])
		prev = central.CustodyHash(b)
	}
	if evs, _, _ := s.Audit(ctx, central.AuditFilter{Actor: "zhang.min"}); len(evs) != 3 {
		t.Fatalf("by actor: %d", len(evs))
	}
	if _, _, err := s.Audit(ctx, central.AuditFilter{Cursor: "x"}); plume.ErrorCode(err) != plume.EINVALID {
		t.Fatalf("bad cursor: %v", err)
	}
}

func testClaimJobKinds(t *testing.T, s central.Store) {
	s.EnqueueJob(ctx, central.Job{Kind: central.JobExport, CaseID: "C00000000001", CreatedAt: fixture.Epoch})
	s.EnqueueJob(ctx, central.Job{Kind: central.JobBuildPackage, CaseID: "C00000000001", CreatedAt: fixture.Epoch})
	j, err := s.ClaimJob(ctx, fixture.Epoch, time.Minute, central.JobBuildPackage)
	if err != nil || j.Kind != central.JobBuildPackage {
		t.Fatalf("claim a build: %+v %v", j, err)
	}
	if _, err := s.ClaimJob(ctx, fixture.Epoch, time.Minute, central.JobBuildPackage); !errors.Is(err, central.ErrNoJob) {
		t.Fatalf("no second build: %v", err)
	}
	if jobs, _ := s.Jobs(ctx); len(jobs) != 2 {
		t.Fatalf("jobs %+v", jobs)
	}
}

// jsonLine is how stores encode an audit event for the chain: compact
// JSON of the event as stored.
func jsonLine(e central.AuditEvent) ([]byte, error) { return json.Marshal(e) }

// testCaseSort: every sort column, both directions, pages of 2 that
// together list each matching case once, in the order CompareSorted
// defines (ties by ID).
func testCaseSort(t *testing.T, s central.Store) {
	plates := []string{"粤B30000", "粤A10000", "粤B30000", "", "粤C00001", "粤A10000", "粤B20000"}
	var want []central.CaseSummary
	for i, plate := range plates {
		st := plume.StationID([]string{"GD-SZ-0002", "GD-SZ-0001", "GD-SZ-0003"}[i%3])
		// Capture times out of ID order: a late-arriving earlier pass.
		at := fixture.Epoch.Add(time.Duration((i*5)%7) * time.Hour)
		_, c, _ := putEvidence(t, s, st, at, true)
		c, err := s.UpdateCase(ctx, c.ID, func(c *central.Case) (*central.CaseChange, error) {
			c.Plate, c.SmokeGrade = plate, i%3
			if i%2 == 0 {
				c.Status, c.Kind = central.CaseRejected, central.KindEnforcement
			}
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, c.Summarize())
	}
	for _, key := range central.CaseSortKeys {
		for _, desc := range []bool{false, true} {
			f := central.CaseFilter{SortBy: key, Descending: desc, Limit: 2}
			exp := slices.Clone(want)
			slices.SortFunc(exp, f.CompareSorted)
			var got []plume.CaseID
			for pages := 0; ; pages++ {
				cs, next, err := s.Cases(ctx, f)
				if err != nil {
					t.Fatalf("sort %s desc=%v: %v", key, desc, err)
				}
				for _, c := range cs {
					got = append(got, c.ID)
				}
				if next == "" || pages > len(want) {
					break
				}
				f.Cursor = next
			}
			if len(got) != len(exp) {
				t.Fatalf("sort %s desc=%v: %d cases %v, want %d", key, desc, len(got), got, len(exp))
			}
			for i := range exp {
				if got[i] != exp[i].ID {
					t.Fatalf("sort %s desc=%v: order %v, want %v", key, desc, got, ids(exp))
				}
			}
		}
	}
	// Sorting keeps filtering: open cases by plate, ascending (no plate
	// first).
	cs, _, err := s.Cases(ctx, central.CaseFilter{SortBy: central.SortPlate, Status: central.CaseOpen})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 || cs[0].Plate != "" || cs[1].Plate != "粤A10000" || cs[2].Plate != "粤A10000" {
		t.Fatalf("open cases by plate: %v", cs)
	}
	if _, _, err := s.Cases(ctx, central.CaseFilter{SortBy: "doc"}); plume.ErrorCode(err) != plume.EINVALID {
		t.Fatalf("unknown sort column: %v", err)
	}
	if _, _, err := s.Cases(ctx, central.CaseFilter{SortBy: central.SortPlate, Cursor: "C1.%%%"}); plume.ErrorCode(err) != plume.EINVALID {
		t.Fatalf("bad sorted cursor: %v", err)
	}
}

func ids(sums []central.CaseSummary) []plume.CaseID {
	out := make([]plume.CaseID, len(sums))
	for i, s := range sums {
		out[i] = s.ID
	}
	return out
}
