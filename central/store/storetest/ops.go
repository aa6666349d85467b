package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/internal/fixture"
)

// OpsStore is a store that also holds station operations.
type OpsStore interface {
	central.Store
	central.OpsStore
}

// RunOps runs the central.OpsStore contract against stores made by
// newStore (fresh and empty, closed at cleanup).
func RunOps(t *testing.T, newStore func(tb testing.TB) OpsStore) {
	t.Run("Health", func(t *testing.T) { testHealth(t, newStore(t)) })
	t.Run("Alerts", func(t *testing.T) { testAlerts(t, newStore(t)) })
	t.Run("StationRecords", func(t *testing.T) { testStationRecords(t, newStore(t)) })
	t.Run("DesiredConfig", func(t *testing.T) { testDesiredConfig(t, newStore(t)) })
	t.Run("StationLocation", func(t *testing.T) { testStationLocation(t, newStore(t)) })
}

func testHealth(t *testing.T, s OpsStore) {
	if err := s.SetHealthState(ctx, "GD-SZ-0001", central.HealthDown, nil); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("SetHealthState before any heartbeat: %v, want ErrNotFound", err)
	}
	for i := range 5 {
		h := &central.StationHealth{Station: "GD-SZ-0001", State: central.HealthUp, ReceivedAt: fixture.Epoch.Add(time.Duration(i) * time.Minute),
			Heartbeat: plume.Heartbeat{Station: "GD-SZ-0001", Seq: uint64(i + 1), Time: fixture.Epoch}}
		if err := s.PutHealth(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutHealth(ctx, &central.StationHealth{Station: "GD-SZ-0002", State: central.HealthDegraded, Reasons: []string{"x"}, ReceivedAt: fixture.Epoch}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Health(ctx)
	if err != nil || len(all) != 2 || all[0].Station != "GD-SZ-0001" || all[0].Heartbeat.Seq != 5 {
		t.Fatalf("Health = %+v, %v", all, err)
	}
	hist, err := s.HealthHistory(ctx, "GD-SZ-0001", fixture.Epoch.Add(time.Minute), fixture.Epoch.Add(4*time.Minute), 10)
	if err != nil || len(hist) != 3 || hist[0].Heartbeat.Seq != 4 || hist[2].Heartbeat.Seq != 2 {
		t.Fatalf("HealthHistory [1m, 4m) = %d entries, %v", len(hist), err)
	}
	if err := s.SetHealthState(ctx, "GD-SZ-0001", central.HealthDown, []string{"silent"}); err != nil {
		t.Fatal(err)
	}
	all, _ = s.Health(ctx)
	if all[0].State != central.HealthDown || all[0].Reasons[0] != "silent" {
		t.Fatalf("after SetHealthState: %+v", all[0])
	}
}

func testAlerts(t *testing.T, s OpsStore) {
	a := &central.Alert{ID: "GD-SZ-0001/constant-value/20261128T000000.000Z", Source: central.AlertIntegrity, Station: "GD-SZ-0001",
		Title: "t", Raised: fixture.Epoch, Records: []string{"p1"}}
	created, err := s.PutAlert(ctx, a)
	if err != nil || !created {
		t.Fatalf("PutAlert: %v %v", created, err)
	}
	if _, err := s.UpdateAlert(ctx, a.ID, func(a *central.Alert) error {
		a.State = central.AlertAcknowledged
		a.History = append(a.History, central.AlertEvent{Actor: "o", State: central.AlertAcknowledged})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b := *a
	b.Records = []string{"p1", "p2"}
	if created, err := s.PutAlert(ctx, &b); err != nil || created {
		t.Fatalf("re-PutAlert: created %v, %v", created, err)
	}
	got, err := s.Alert(ctx, a.ID)
	if err != nil || got.State != central.AlertAcknowledged || len(got.History) != 1 || len(got.Records) != 2 {
		t.Fatalf("upsert must keep state and history and take the evidence: %+v %v", got, err)
	}
	c := &central.Alert{ID: "cloned/粤B12345/a/b", Source: central.AlertCloned, Station: "GD-SZ-0003", Stations: []plume.StationID{"GD-SZ-0002", "GD-SZ-0003"}, Raised: fixture.Epoch.Add(time.Hour)}
	if _, err := s.PutAlert(ctx, c); err != nil {
		t.Fatal(err)
	}
	list, err := s.Alerts(ctx, central.AlertFilter{})
	if err != nil || len(list) != 2 || list[0].ID != c.ID {
		t.Fatalf("Alerts newest first: %v", err)
	}
	if list, _ := s.Alerts(ctx, central.AlertFilter{Stations: []plume.StationID{"GD-SZ-0002"}}); len(list) != 1 || list[0].ID != c.ID {
		t.Fatalf("scope by either station of a cloned-plate alert: %d", len(list))
	}
	if list, _ := s.Alerts(ctx, central.AlertFilter{State: central.AlertOpen}); len(list) != 1 {
		t.Fatalf("open alerts: %d", len(list))
	}
	if _, err := s.Alert(ctx, "nope"); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("missing alert: %v", err)
	}
	if _, err := s.UpdateAlert(ctx, "nope", func(*central.Alert) error { return nil }); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("update missing alert: %v", err)
	}
}

func testStationRecords(t *testing.T, s OpsStore) {
	mustStation(t, s, "GD-SZ-0001")
	var recs []plume.Record
	for i := range 4 {
		at := fixture.Epoch.Add(time.Duration(i) * time.Hour)
		recs = append(recs, plume.Record{Kind: plume.RecordStatus, ID: "status-" + at.Format("150405"), Station: "GD-SZ-0001", Time: at,
			Status: &plume.DeviceStatus{Time: at, Flag: plume.FlagNormal}})
	}
	if _, _, err := s.PutRecords(ctx, "GD-SZ-0001", recs, fixture.Epoch); err != nil {
		t.Fatal(err)
	}
	got, err := s.StationRecords(ctx, "GD-SZ-0001", fixture.Epoch.Add(time.Hour), fixture.Epoch.Add(3*time.Hour))
	if err != nil || len(got) != 2 {
		t.Fatalf("StationRecords [1h, 3h) = %d, %v", len(got), err)
	}
	if got, _ := s.StationRecords(ctx, "GD-SZ-0002", time.Time{}, time.Time{}); len(got) != 0 {
		t.Fatalf("another station's records: %d", len(got))
	}
}

func testDesiredConfig(t *testing.T, s OpsStore) {
	if _, err := s.DesiredConfig(ctx, "GD-SZ-0001"); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("no config yet: %v", err)
	}
	for i, body := range []string{"profiles: {}\n", "cameras: []\n"} {
		dc := &central.DesiredConfig{Station: "GD-SZ-0001", Body: []byte(body), SetBy: "admin", SetAt: fixture.Epoch}
		if err := s.PutDesiredConfig(ctx, dc); err != nil || dc.Version != i+1 || len(dc.Hash) != 64 {
			t.Fatalf("PutDesiredConfig: %+v %v", dc, err)
		}
	}
	dc, err := s.DesiredConfig(ctx, "GD-SZ-0001")
	if err != nil || dc.Version != 2 || string(dc.Body) != "cameras: []\n" {
		t.Fatalf("DesiredConfig = %+v, %v", dc, err)
	}
}

func testStationLocation(t *testing.T, s OpsStore) {
	if err := s.SetStationLocation(ctx, "GD-SZ-0009", 22.5, 114); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("SetStationLocation of a station never enrolled: %v, want ErrNotFound", err)
	}
	st := &central.Station{ID: "GD-SZ-0001", Name: "Shennan Rd", PublicKey: make([]byte, 32), EnrolledAt: fixture.Epoch}
	if err := s.PutStation(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStationLocation(ctx, "GD-SZ-0001", 22.543096, 114.057865); err != nil {
		t.Fatal(err)
	}
	got, err := s.Station(ctx, "GD-SZ-0001")
	if err != nil || got.Latitude != 22.543096 || got.Longitude != 114.057865 || got.Name != "Shennan Rd" || len(got.PublicKey) != 32 {
		t.Fatalf("Station after SetStationLocation = %+v, %v", got, err)
	}
}
