package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/ops"
	"github.com/plume-emissions/plume/central/server"
)

// Two real places 105 km apart: Shenzhen (Futian) and Guangzhou (Tianhe).
const (
	szLat, szLon = 22.543096, 114.057865
	gzLat, gzLon = 23.135336, 113.327000
)

// opsSeed is what seedOps put into a rig's central.
type opsSeed struct {
	integrity *central.Alert // constant readings at GD-SZ-0001, with a chart
	cloned    *central.Alert // one plate at both stations 10 min apart
}

// putHeartbeat sends one signed heartbeat of c's station.
func putHeartbeat(tb testing.TB, c *fixture.Client, hb plume.Heartbeat) *fixture.Response {
	tb.Helper()
	hb.Station = c.Station
	if hb.Time.IsZero() {
		hb.Time = time.Now().UTC()
	}
	body, err := json.Marshal(hb)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := c.Do(http.MethodPut, fmt.Sprintf("/api/v1/stations/%s/health/%d", c.Station, hb.Seq), body, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

// goodHeartbeat is a heartbeat that reports nothing wrong.
func goodHeartbeat(seq uint64) plume.Heartbeat {
	ms := int64(12)
	return plume.Heartbeat{Seq: seq, Software: "plume-edge test", ConfigHash: strings.Repeat("ab", 32),
		Analyser: plume.AnalyserHealth{Connected: true, Records: 40 * seq, Flag: "N"},
		Cameras:  []plume.CameraHealth{{Name: "rear", Connected: true, FPS: 25}},
		Disk:     plume.DiskHealth{Known: true, FreeBytes: 40 << 30},
		Clock:    plume.ClockHealth{Known: true, OffsetMS: ms, Source: "central", CentralMS: &ms}}
}

// seedOps places both stations (one through the admin form, one through
// the API), sends GD-SZ-0001's heartbeats (up, then a frozen camera),
// uploads records whose constant CO₂ the integrity rules catch and one
// plate seen at both stations 10 minutes apart, and waits for the alerts.
func seedOps(t *testing.T, r *rig) opsSeed {
	t.Helper()
	ctx := context.Background()
	admin := r.login(t, "admin")
	if resp := admin.post("/stations/GD-SZ-0001/location", url.Values{"csrf": {admin.csrf}, "latitude": {fmt.Sprint(szLat)}, "longitude": {fmt.Sprint(szLon)}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("location form: %d", resp.StatusCode)
	}
	body, _ := json.Marshal(map[string]float64{"latitude": gzLat, "longitude": gzLon})
	req, _ := http.NewRequest(http.MethodPut, r.s.URL()+"/api/v1/ops/stations/GD-SZ-0002/location", bytes.NewReader(body))
	req.Header.Set("X-CSRF-Token", admin.csrf)
	resp, err := admin.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("location API: %d", resp.StatusCode)
	}

	now := time.Now().UTC()
	hb := goodHeartbeat(1)
	hb.Time = now.Add(-time.Minute)
	if resp := putHeartbeat(t, r.a, hb); resp.Status != http.StatusOK {
		t.Fatalf("heartbeat 1: %s", resp)
	}
	hb = goodHeartbeat(2)
	hb.Cameras[0].Frozen, hb.Cameras[0].Reconnects = true, 3
	if resp := putHeartbeat(t, r.a, hb); resp.Status != http.StatusOK {
		t.Fatalf("heartbeat 2: %s", resp)
	}

	// fixture.Records hold the same CO₂ on every pass: 恒值.
	base := now.Add(-2 * time.Hour).Truncate(time.Second)
	if resp, err := r.a.PutRecords("constant", fixture.Records("GD-SZ-0001", base, 40)); err != nil || resp.Status != http.StatusOK {
		t.Fatal(resp, err)
	}
	// One plate at Shenzhen, then 10 minutes later at Guangzhou.
	sighting := func(c *fixture.Client, at time.Time) []plume.Record {
		p := fixture.Pass(c.Station, at, 2, false)
		p.Plate.Text = "粤B7Q221"
		return []plume.Record{{Kind: plume.RecordPass, ID: string(p.ID), Station: c.Station, Time: p.Reading.Time, Pass: &p}}
	}
	seen := now.Add(-30 * time.Minute).Truncate(time.Second)
	if resp, err := r.a.PutRecords("sz", sighting(r.a, seen)); err != nil || resp.Status != http.StatusOK {
		t.Fatal(resp, err)
	}
	if resp, err := r.b.PutRecords("gz", sighting(r.b, seen.Add(10*time.Minute))); err != nil || resp.Status != http.StatusOK {
		t.Fatal(resp, err)
	}

	var out opsSeed
	all := &central.Officer{Username: "t", Role: central.RoleAuditor}
	deadline := time.Now().Add(20 * time.Second)
	for out.integrity == nil || out.cloned == nil {
		if time.Now().After(deadline) {
			t.Fatalf("alerts not raised: integrity %v, cloned %v", out.integrity != nil, out.cloned != nil)
		}
		r.s.Ops().Tick(ctx)
		if err := r.s.Ops().Flush(ctx); err != nil {
			t.Fatal(err)
		}
		as, err := r.s.Ops().Alerts(ctx, all, central.AlertFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			switch {
			case a.Source == central.AlertIntegrity && strings.HasPrefix(a.Rule, "constant-value@"):
				out.integrity = a
			case a.Source == central.AlertCloned:
				out.cloned = a
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return out
}

// TestOpsPages renders the station-operations pages of a real central
// holding real data, acts on an alert through the page (with the CSRF
// token) and checks the audit log, and checks that a reviewer scoped to
// another station sees neither the station nor its alerts.
func TestOpsPages(t *testing.T) {
	r := newRig(t)
	seed := seedOps(t, r)
	li := r.login(t, "li.wei")
	must := func(page, body string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q", page, w)
			}
		}
	}
	get := func(b *browser, path string) string {
		t.Helper()
		resp, body := b.get(path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %.300s", path, resp.StatusCode, body)
		}
		return body
	}

	t.Run("Stations", func(t *testing.T) {
		body := get(li, "/stations")
		must("/stations", body, `data-station="GD-SZ-0001" data-state="degraded"`, "画面冻结 camera rear frozen",
			`data-station="GD-SZ-0002" data-state="unknown"`, "12 ms (central)", "plume-edge test")
	})
	t.Run("Station", func(t *testing.T) {
		body := get(li, "/stations/GD-SZ-0001")
		must("/stations/GD-SZ-0001", body, `id="station-state" data-state="degraded"`, fmt.Sprint(szLat), "frozen", "重连 3 次",
			"40.0 GiB", "偏差 12 ms", "Constant readings", "疑似套牌")
		if n := strings.Count(body[strings.Index(body, `id="history"`):], "<tr>"); n != 3 { // header + two heartbeats
			t.Errorf("history has %d rows, want a header and 2 heartbeats", n)
		}
		if strings.Contains(body, `action="/stations/GD-SZ-0001/config"`) {
			t.Error("a reviewer is offered the configuration form")
		}
		admin := r.login(t, "admin")
		must("/stations/GD-SZ-0001 (admin)", get(admin, "/stations/GD-SZ-0001"), `action="/stations/GD-SZ-0001/config"`, `id="location-form"`)
	})
	t.Run("Alerts", func(t *testing.T) {
		body := get(li, "/alerts")
		must("/alerts", body, `data-id="`+seed.integrity.ID+`"`, `data-id="`+seed.cloned.ID+`"`, "health", "constant-value@v1")
		body = get(li, "/alerts?source=cloned-plate")
		if strings.Contains(body, seed.integrity.ID) || !strings.Contains(body, "粤B7Q221") {
			t.Error("/alerts?source=cloned-plate does not filter")
		}
	})
	t.Run("IntegrityAlert", func(t *testing.T) {
		body := get(li, "/alerts/"+seed.integrity.ID)
		must("integrity alert", body, `data-state="open"`, `<div class="panel" id="chart">`, "<svg", "</svg>", "constant-value@v1", "rule set 2026.12-1")
		for _, rec := range seed.integrity.Records[:3] {
			must("integrity alert", body, rec)
		}
	})
	t.Run("ClonedAlert", func(t *testing.T) {
		body := get(li, "/alerts/"+seed.cloned.ID)
		must("cloned alert", body, `id="sightings"`, "GD-SZ-0001 gantry GD-SZ-0001", "GD-SZ-0002 gantry GD-SZ-0002",
			fmt.Sprint(szLat), fmt.Sprint(gzLat), "km apart", "km/h needed")
		if n := strings.Count(body, "粤B7Q221 yellow"); n != 2 {
			t.Errorf("cloned alert shows the plate in %d sightings, want 2", n)
		}
	})
	t.Run("Backtest", func(t *testing.T) {
		body := get(li, "/backtest")
		must("/backtest", body, "constant-value", "GD-SZ-0001")
		body = get(li, "/backtest?station=GD-SZ-0001&rule=constant-value")
		must("/backtest run", body, `id="backtest-stats"`, "<svg", "Constant readings")
	})
	t.Run("AcknowledgeEscalate", func(t *testing.T) {
		id := seed.integrity.ID
		if resp := li.post("/alerts/"+id, url.Values{"action": {"acknowledge"}}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("acknowledge without the CSRF token: %d, want 403", resp.StatusCode)
		}
		if resp := li.post("/alerts/"+id, url.Values{"csrf": {li.csrf}, "action": {"acknowledge"}, "comment": {"checking the analyser"}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("acknowledge: %d", resp.StatusCode)
		}
		must("acknowledged alert", get(li, "/alerts/"+id), `data-state="acknowledged"`, "li.wei: acknowledged checking the analyser")
		if resp := li.post("/alerts/"+id, url.Values{"csrf": {li.csrf}, "action": {"escalate"}, "comment": {"CO2 constant over 40 vehicles"}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("escalate: %d", resp.StatusCode)
		}
		body := get(li, "/alerts/"+id)
		must("escalated alert", body, `data-state="escalated"`, "CO2 constant over 40 vehicles")
		if strings.Contains(body, `value="escalate"`) {
			t.Error("an escalated alert still offers the actions")
		}
		evs, _, err := r.s.Store().Audit(context.Background(), central.AuditFilter{Target: id})
		if err != nil || len(evs) != 2 {
			t.Fatalf("audit log for the alert: %v %+v", err, evs)
		}
		byAction := map[string]central.AuditEvent{}
		for _, e := range evs {
			byAction[e.Action] = e
		}
		if e := byAction["alert.acknowledge"]; e.Actor != "li.wei" || e.After != "acknowledged" {
			t.Errorf("acknowledge audited as %+v", e)
		}
		if e := byAction["alert.escalate"]; e.Actor != "li.wei" || e.Before != "acknowledged" || e.After != "escalated" || e.Detail != "CO2 constant over 40 vehicles" {
			t.Errorf("escalate audited as %+v", e)
		}
		loc, _, err := r.s.Store().Audit(context.Background(), central.AuditFilter{Target: "GD-SZ-0001"})
		if err != nil || len(loc) == 0 || loc[0].Action != "station.location" {
			t.Errorf("the location change is not audited: %v %+v", err, loc)
		}
	})
	t.Run("ScopedReviewer", func(t *testing.T) {
		wang := r.login(t, "wang.fang") // GD-SZ-0002 only
		body := get(wang, "/stations")
		if strings.Contains(body, `data-station="GD-SZ-0001"`) || !strings.Contains(body, `data-station="GD-SZ-0002"`) {
			t.Error("/stations: a reviewer of GD-SZ-0002 sees GD-SZ-0001 (or not her own station)")
		}
		if resp, _ := wang.get("/stations/GD-SZ-0001"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("/stations/GD-SZ-0001 for another station's reviewer: %d, want 404", resp.StatusCode)
		}
		if resp, _ := wang.get("/alerts/" + seed.integrity.ID); resp.StatusCode != http.StatusNotFound {
			t.Errorf("/alerts/{id} of another station: %d, want 404", resp.StatusCode)
		}
		if body := get(wang, "/alerts"); strings.Contains(body, seed.integrity.ID) {
			t.Error("/alerts lists another station's integrity alert")
		}
		if resp, _ := wang.get("/backtest?station=GD-SZ-0001"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("backtest of another station: %d, want 404", resp.StatusCode)
		}
		for path, want := range map[string]int{
			"/api/v1/alerts/" + seed.integrity.ID:    http.StatusNotFound,
			"/api/v1/ops/stations/GD-SZ-0001/health": http.StatusNotFound,
		} {
			if resp, body := wang.get(path); resp.StatusCode != want {
				t.Errorf("GET %s: %d %.200s, want %d", path, resp.StatusCode, body, want)
			}
		}
		for path, leak := range map[string]string{"/api/v1/alerts": seed.integrity.ID, "/api/v1/ops/stations": "GD-SZ-0001"} {
			if _, body := wang.get(path); strings.Contains(body, leak) {
				t.Errorf("GET %s leaks %s", path, leak)
			}
		}
		if resp := wang.post("/alerts/"+seed.integrity.ID, url.Values{"csrf": {wang.csrf}, "action": {"acknowledge"}}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("acting on another station's alert: %d, want 404", resp.StatusCode)
		}
	})
}

// TestClonedPlateImpossibleSpeed: two stations enrolled with their
// coordinates (server.AtLocation, as plume-central enroll -lat -lon does);
// one plate read at both through the real ingest path, 10 minutes apart
// over 100 km, raises a cloned-plate alert with the speed it would need;
// the same plate 2 hours later does not.
func TestClonedPlateImpossibleSpeed(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	ctx := context.Background()
	if _, err := s.Enroll(ctx, "GD-SZ-0009", "bad", nil, server.AtLocation(95, 114)); plume.ErrorCode(err) != plume.EINVALID {
		t.Fatalf("enroll at latitude 95: %v, want EINVALID", err)
	}
	clients := map[plume.StationID]*fixture.Client{}
	for id, at := range map[plume.StationID][2]float64{"GD-SZ-0001": {szLat, szLon}, "GD-GZ-0001": {gzLat, gzLon}} {
		e, err := s.Enroll(ctx, id, "gantry "+string(id), nil, server.AtLocation(at[0], at[1]))
		if err != nil {
			t.Fatal(err)
		}
		key, _ := e.PrivateKey()
		clients[id] = &fixture.Client{BaseURL: s.URL(), Station: id, Key: key}
	}
	put := func(c *fixture.Client, plate string, at time.Time) {
		t.Helper()
		p := fixture.Pass(c.Station, at, 1, false)
		p.Plate.Text = plate
		rec := plume.Record{Kind: plume.RecordPass, ID: string(p.ID), Station: c.Station, Time: p.Reading.Time, Pass: &p}
		if resp, err := c.PutRecords(string(p.ID), []plume.Record{rec}); err != nil || resp.Status != http.StatusOK {
			t.Fatal(resp, err)
		}
	}
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	put(clients["GD-SZ-0001"], "粤B7Q221", t0)
	put(clients["GD-GZ-0001"], "粤B7Q221", t0.Add(10*time.Minute)) // ~600 km/h
	put(clients["GD-SZ-0001"], "粤A55K31", t0)
	put(clients["GD-GZ-0001"], "粤A55K31", t0.Add(2*time.Hour)) // ~50 km/h
	if err := s.Ops().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	as, err := s.Ops().Alerts(ctx, &central.Officer{Username: "t", Role: central.RoleAuditor}, central.AlertFilter{Source: central.AlertCloned})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || !strings.Contains(as[0].Title, "粤B7Q221") {
		t.Fatalf("cloned-plate alerts: %d, want one for 粤B7Q221: %+v", len(as), as)
	}
	d, err := ops.ClonedEvidence(as[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.DistanceKm < 95 || d.DistanceKm > 105 || d.SpeedKmh < 550 || d.A.Station != "GD-SZ-0001" || d.B.Station != "GD-GZ-0001" || d.A.Latitude != szLat || d.B.Longitude != gzLon {
		t.Fatalf("cloned-plate evidence: %+v", d)
	}
}

// TestCameraCountsAtCentral: a station uploads its passes and its
// cameras' vehicle counts (camera_count records) through the real ingest
// path; where the cameras counted 100 vehicles and the analyser sent 40
// passes the camera-counts rule raises an alert with the passes as
// evidence, and where they agree (40 passes, 42 vehicles) it does not. A
// resent count is stored once.
func TestCameraCountsAtCentral(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	ctx := context.Background()
	a, b := enrollClient(t, s, "GD-SZ-0001"), enrollClient(t, s, "GD-SZ-0002")
	t0 := time.Now().Add(-time.Hour).Truncate(5 * time.Minute)
	count := func(c *fixture.Client, vehicles int) plume.Record {
		vc := plume.VehicleCount{From: t0, To: t0.Add(5 * time.Minute), Vehicles: vehicles, Cameras: []string{"rear"}}
		return plume.Record{Kind: plume.RecordCount, ID: "count-" + t0.UTC().Format("20060102T150405Z") + "-300", Station: c.Station, Time: vc.To, Count: &vc}
	}
	for c, vehicles := range map[*fixture.Client]int{a: 100, b: 42} {
		if resp, err := c.PutRecords("passes", fixture.Records(c.Station, t0.Add(time.Minute), 40)); err != nil || resp.Status != http.StatusOK {
			t.Fatal(resp, err)
		}
		for _, batch := range []string{"counts", "counts-again"} {
			if resp, err := c.PutRecords(batch, []plume.Record{count(c, vehicles)}); err != nil || resp.Status != http.StatusOK {
				t.Fatal(resp, err)
			}
		}
	}
	bad := count(a, 1)
	bad.Count.To = bad.Count.From
	if resp, _ := a.PutRecords("bad", []plume.Record{bad}); resp == nil || resp.Status != http.StatusBadRequest {
		t.Fatalf("a count with an empty interval: %v, want 400", resp)
	}
	s.Ops().Tick(ctx)
	if err := s.Ops().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	as, err := s.Ops().Alerts(ctx, &central.Officer{Username: "t", Role: central.RoleAuditor}, central.AlertFilter{Source: central.AlertIntegrity})
	if err != nil {
		t.Fatal(err)
	}
	var got []*central.Alert
	for _, al := range as {
		if strings.HasPrefix(al.Rule, "camera-counts@") {
			got = append(got, al)
		}
	}
	if len(got) != 1 || got[0].Station != "GD-SZ-0001" || len(got[0].Records) != 40 || !strings.Contains(got[0].Explanation, "40 passes") || !strings.Contains(got[0].Explanation, "100 vehicles") {
		t.Fatalf("camera-counts alerts: %+v", got)
	}
	recs, err := s.Store().(central.OpsStore).StationRecords(ctx, "GD-SZ-0001", t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if r.Kind == plume.RecordCount {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d count records stored, want 1", n)
	}
}
