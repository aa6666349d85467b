package ops_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/ops"
	"github.com/plume-emissions/plume/central/store"
)

var t0 = time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)

func newService(t *testing.T, n ops.Notifier) (*ops.Service, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := ops.New(ops.Config{Store: st, Ops: st, Notifier: n, Now: func() time.Time { return t0.Add(time.Hour) }, Tick: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc, st
}

func station(t *testing.T, st *store.Store, id plume.StationID, lat, lon float64) {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(nil)
	if err := st.PutStation(context.Background(), &central.Station{ID: id, PublicKey: pub, EnrolledAt: t0, Latitude: lat, Longitude: lon}); err != nil {
		t.Fatal(err)
	}
}

func sighting(station plume.StationID, at time.Time, lane int, plate string, colour plume.PlateColour, fuel plume.Fuel) plume.Record {
	id := plume.NewPassID(station, at, lane)
	return plume.Record{Kind: plume.RecordPass, ID: string(id), Station: station, Time: at, Pass: &plume.Pass{
		ID: id, Station: station, Reading: plume.Reading{Time: at, Lane: lane, Fuel: fuel},
		Plate: &plume.Plate{Text: plate, Colour: colour, Confidence: 0.95},
	}}
}

// TestClonedPlates: one plate at two stations 40 km apart four minutes
// apart (600 km/h) fires; the same trip in an hour does not; the same
// plate on a yellow and a blue plate fires.
func TestClonedPlates(t *testing.T) {
	ctx := context.Background()
	svc, st := newService(t, nil)
	station(t, st, "GD-SZ-0001", 22.5431, 113.9340)
	station(t, st, "GD-SZ-0002", 22.6000, 114.3200) // about 40 km east
	check := func(name string, recs [][2]plume.Record, want int) {
		t.Run(name, func(t *testing.T) {
			before := len(must(svc.Alerts(ctx, &central.Officer{Role: central.RoleAuditor}, central.AlertFilter{Source: central.AlertCloned})))
			for _, r := range recs {
				svc.Records(ctx, r[0].Station, []plume.Record{r[0]})
				svc.Records(ctx, r[1].Station, []plume.Record{r[1]})
			}
			as := must(svc.Alerts(ctx, &central.Officer{Role: central.RoleAuditor}, central.AlertFilter{Source: central.AlertCloned}))
			if len(as)-before != want {
				t.Fatalf("%d new cloned-plate alerts, want %d", len(as)-before, want)
			}
			if want > 0 {
				d, err := ops.ClonedEvidence(as[0])
				if err != nil || d.A.Pass == d.B.Pass || len(as[0].Stations) != 2 {
					t.Fatalf("alert lacks both sightings: %+v %v", d, err)
				}
			}
		})
	}
	check("ImpossibleSpeed", [][2]plume.Record{{
		sighting("GD-SZ-0001", t0, 1, "粤B12345", plume.PlateBlue, plume.FuelPetrol),
		sighting("GD-SZ-0002", t0.Add(4*time.Minute), 1, "粤B12345", plume.PlateBlue, plume.FuelPetrol)}}, 1)
	check("PlausibleTrip", [][2]plume.Record{{
		sighting("GD-SZ-0001", t0, 2, "粤B67890", plume.PlateBlue, plume.FuelPetrol),
		sighting("GD-SZ-0002", t0.Add(time.Hour), 2, "粤B67890", plume.PlateBlue, plume.FuelPetrol)}}, 0)
	check("DifferentVehicle", [][2]plume.Record{{
		sighting("GD-SZ-0001", t0, 1, "粤BD0001", plume.PlateYellow, plume.FuelDiesel),
		sighting("GD-SZ-0001", t0.Add(3*time.Hour), 2, "粤BD0001", plume.PlateBlue, plume.FuelPetrol)}}, 1)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestEmailDelivery sends an alert through a tiny SMTP listener.
func TestEmailDelivery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r, w := bufio.NewReader(c), bufio.NewWriter(c)
		say := func(s string) { w.WriteString(s + "\r\n"); w.Flush() }
		say("220 test ESMTP")
		var data strings.Builder
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if inData {
				if line == ".\r\n" {
					inData = false
					got <- data.String()
					say("250 ok")
					continue
				}
				data.WriteString(line)
				continue
			}
			switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
			case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
				say("250 test")
			case strings.HasPrefix(cmd, "DATA"):
				inData = true
				say("354 go")
			case strings.HasPrefix(cmd, "QUIT"):
				say("221 bye")
				return
			default:
				say("250 ok")
			}
		}
	}()
	e := &ops.Email{Relay: ln.Addr().String(), From: "plume@bureau.example", To: []string{"ops@bureau.example"}, BaseURL: "https://plume.example"}
	a := &central.Alert{ID: "health/GD-SZ-0001/x", Source: central.AlertHealth, Station: "GD-SZ-0001", Severity: "critical", Title: "站点状态 Station down", Explanation: "no heartbeat for 5m", Raised: t0}
	if err := e.Notify(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-got:
		if !strings.Contains(msg, "no heartbeat for 5m") || !strings.Contains(msg, "https://plume.example/alerts/health/GD-SZ-0001/x") || !strings.Contains(msg, "Subject: =?utf-8?b?") {
			t.Fatalf("message:\n%s", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
}

// stubNotifier records deliveries.
type stubNotifier chan string

func (s stubNotifier) Notify(_ context.Context, a *central.Alert) error { s <- a.ID; return nil }

// TestStuckRelay: a mail relay that accepts the connection and never
// answers costs the e-mail its own deadline, and the webhook beside it is
// delivered at once, not after the e-mail gives up.
func TestStuckRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	e := &ops.Email{Relay: ln.Addr().String(), From: "plume@bureau.example", To: []string{"ops@bureau.example"}, Timeout: 300 * time.Millisecond}
	hook := make(stubNotifier, 1)
	a := &central.Alert{ID: "health/GD-SZ-0001/y", Station: "GD-SZ-0001", Title: "t", Raised: time.Now()}
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- ops.Notifiers{e, hook}.Notify(context.Background(), a) }()
	select {
	case <-hook:
		if d := time.Since(start); d > 250*time.Millisecond {
			t.Errorf("webhook waited %v for the stuck relay", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the webhook was never delivered")
	}
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "email via") {
			t.Fatalf("want the e-mail's timeout, got %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("the stuck relay held delivery for %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Notify never returned: the e-mail has no deadline")
	}
}
