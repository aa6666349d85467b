package sim

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/analyser"
)

func profile(tb testing.TB) *analyser.Profile {
	tb.Helper()
	p, err := analyser.LoadProfile(filepath.Join("..", "..", "firmware-config", "devices", "generic-rsd.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestGeneratorDeterministic(t *testing.T) {
	take := func(seed uint64) []Event {
		g := NewGenerator(GeneratorConfig{Seed: seed})
		var out []Event
		for range 3000 {
			out = append(out, g.Next())
		}
		return out
	}
	a, b, c := take(7), take(7), take(8)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed gave different streams")
	}
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds gave the same stream")
	}
}

// TestGeneratorMix checks the simulated traffic against what a real
// station sees, in plausible ranges.
func TestGeneratorMix(t *testing.T) {
	g := NewGenerator(GeneratorConfig{Seed: 42, Lanes: 3})
	const n = 20000
	var passes, dieselN, dieselHighNO, dieselHighOpacity, petrolN, petrolHighCO, petrolHighHC int
	var vspOut, weak, rain, windy, notNormal, statuses, audits, auditsPassed int
	lanes := map[int]int{}
	last := map[int]time.Time{}
	seen := map[plume.PassID]bool{}
	for passes < n {
		ev := g.Next()
		switch ev.Kind {
		case plume.RecordStatus:
			statuses++
			continue
		case plume.RecordAudit:
			audits++
			if ev.Audit.Passed {
				auditsPassed++
			}
			continue
		}
		passes++
		r := ev.Reading
		if err := r.Validate(); err != nil {
			t.Fatalf("pass %d does not validate: %v", passes, err)
		}
		if !r.Time.After(last[r.Lane]) {
			t.Fatalf("pass %d: time %v not after %v in lane %d", passes, r.Time, last[r.Lane], r.Lane)
		}
		last[r.Lane] = r.Time
		id := plume.NewPassID("GD-SZ-0001", r.Time, r.Lane)
		if seen[id] {
			t.Fatalf("pass ID %s twice", id)
		}
		seen[id] = true
		lanes[r.Lane]++
		if v := plume.VSP(r.SpeedKmh/3.6, r.AccelMS2, r.SlopePct/100); v < 3 || v > 22 {
			vspOut++
		}
		if r.PlumeCO2 < minPlumeCO2 {
			weak++
		}
		if r.Ambient.Rain {
			rain++
		}
		if r.Ambient.WindMS > 5 {
			windy++
		}
		if r.Flag != plume.FlagNormal {
			notNormal++
		}
		switch r.Fuel {
		case plume.FuelDiesel:
			dieselN++
			if r.Gases.NO > 1500 {
				dieselHighNO++
			}
			if r.Opacity > 30 {
				dieselHighOpacity++
			}
		case plume.FuelPetrol:
			petrolN++
			if r.Gases.CO > 0.5 {
				petrolHighCO++
			}
			if r.Gases.HC > 250 {
				petrolHighHC++
			}
		}
	}
	for _, ev := range g.queue { // records due after the last pass
		if ev.Kind == plume.RecordStatus {
			statuses++
		} else {
			audits++
		}
	}
	share := func(a, b int) float64 { return float64(a) / float64(b) }
	for _, c := range []struct {
		name   string
		v      float64
		lo, hi float64
	}{
		{"diesel share", share(dieselN, n), 0.22, 0.28},
		{"diesel NO > 1500 ppm", share(dieselHighNO, dieselN), 0.01, 0.10},
		{"diesel opacity > 30 %", share(dieselHighOpacity, dieselN), 0.01, 0.10},
		{"petrol CO > 0.5 %", share(petrolHighCO, petrolN), 0.005, 0.06},
		{"petrol HC > 250 ppm", share(petrolHighHC, petrolN), 0.005, 0.06},
		{"VSP outside 3–22 kW/t", share(vspOut, n), 0.03, 0.30},
		{"weak plume", share(weak, n), 0.01, 0.06},
		{"in rain", share(rain, n), 0.02, 0.30},
		{"wind > 5 m/s", share(windy, n), 0.02, 0.30},
		{"device not normal", share(notNormal, n), 0.002, 0.08},
		{"audits passed", share(auditsPassed, audits), 0.80, 1},
	} {
		t.Logf("%-24s %.3f", c.name, c.v)
		if c.v < c.lo || c.v > c.hi {
			t.Errorf("%s = %.3f, want %.3f–%.3f", c.name, c.v, c.lo, c.hi)
		}
	}
	if statuses != n/50 || audits != n/500 {
		t.Errorf("statuses %d audits %d, want %d and %d", statuses, audits, n/50, n/500)
	}
	if len(lanes) != 3 {
		t.Errorf("lanes used %v", lanes)
	}
}

// minPlumeCO2 is min_plume_co2 of the shipped limit profiles
// (firmware-config/profiles), %·cm.
const minPlumeCO2 = 10

// dedupStore is the test's edge: it stores each pass once by pass ID.
type dedupStore struct {
	mu      sync.Mutex
	station plume.StationID
	passes  map[plume.PassID]int // times handled
	kinds   map[plume.RecordKind]int
	onPass  func(n int) // called with the number of distinct passes after each store
}

func newDedupStore(station plume.StationID) *dedupStore {
	return &dedupStore{station: station, passes: map[plume.PassID]int{}, kinds: map[plume.RecordKind]int{}}
}

func (s *dedupStore) handle(ctx context.Context, m analyser.Message) error {
	s.mu.Lock()
	s.kinds[m.Kind]++
	n := -1
	if m.Kind == plume.RecordPass {
		id := plume.NewPassID(s.station, m.Reading.Time, m.Reading.Lane)
		s.passes[id]++
		n = len(s.passes)
	}
	hook := s.onPass
	s.mu.Unlock()
	if hook != nil && n > 0 {
		hook(n)
	}
	return nil
}

// trackingListener remembers accepted connections so the test can cut them
// all, the way a crashing edge would.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *trackingListener) crash() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.Listener.Close()
	for _, c := range l.conns {
		c.Close()
	}
}

func serve(t *testing.T, addr string, protocol string, st *dedupStore) (*analyser.Server, *trackingListener, chan error) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may take a moment to free after a crash
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	tl := &trackingListener{Listener: ln}
	srv := &analyser.Server{Config: analyser.Config{Protocol: protocol, Profile: profile(t), Handler: st.handle,
		Logger: slog.New(slog.DiscardHandler), Quarantine: &memQuarantine{}}}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), tl) }()
	return srv, tl, done
}

type memQuarantine struct {
	mu    sync.Mutex
	items []analyser.Rejected
}

func (q *memQuarantine) Quarantine(_ context.Context, r analyser.Rejected) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(q.items, r)
	return nil
}

// TestPlayerEdgeRestart plays to a real analyser.Server, crashes the edge
// mid-stream right after it stored a pass but before it acknowledged it,
// starts a new edge on the same port, and checks that every pass reached
// the handler (a duplicate of the unacknowledged one is expected) and that
// what the player counts as acknowledged is exactly what was stored.
func TestPlayerEdgeRestart(t *testing.T) {
	for _, protocol := range []string{analyser.ProtocolHJ212, analyser.ProtocolNDJSON} {
		t.Run(protocol, func(t *testing.T) {
			const station, count, crashAt = plume.StationID("GD-SZ-0001"), 150, 60
			st := newDedupStore(station)
			srv1, tl1, done1 := serve(t, "127.0.0.1:0", protocol, st)
			addr := tl1.Addr().String()
			crashed := make(chan struct{})
			var once sync.Once
			st.onPass = func(n int) {
				if n == crashAt {
					// Stored, not yet acknowledged: the crash loses the ack.
					once.Do(func() { tl1.crash(); close(crashed) })
				}
			}
			p := NewPlayer(Config{
				Addr: addr, Protocol: protocol, Station: station, Profile: profile(t), Count: count,
				Generator:  GeneratorConfig{Seed: 3, StatusEvery: 20, AuditEvery: 50},
				AckTimeout: 2 * time.Second, Backoff: analyser.Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			runErr := make(chan error, 1)
			go func() { runErr <- p.Run(ctx) }()

			<-crashed
			srv1.Close()
			<-done1
			time.Sleep(200 * time.Millisecond) // the edge is down; the player retries
			srv2, _, done2 := serve(t, addr, protocol, st)
			defer func() { srv2.Close(); <-done2 }()

			if err := <-runErr; err != nil {
				t.Fatalf("Run: %v", err)
			}
			stats := p.Stats()
			st.mu.Lock()
			defer st.mu.Unlock()
			if len(stats.AckedPasses) != count {
				t.Fatalf("player acked %d passes, want %d", len(stats.AckedPasses), count)
			}
			for _, id := range stats.AckedPasses {
				if st.passes[id] == 0 {
					t.Fatalf("pass %s acknowledged but not stored", id)
				}
			}
			// Nothing generated was lost: every pass the player generated
			// reached the store (the last may be in flight only if Count
			// stopped it, which it does not: it stops after an ack).
			if got := len(st.passes); got != count {
				t.Fatalf("stored %d distinct passes, want %d", got, count)
			}
			dups := 0
			for _, n := range st.passes {
				dups += n - 1
			}
			if dups < 1 || stats.Resends < 1 || stats.Connects < 2 {
				t.Fatalf("expected the lost ack to cause a resend and a duplicate: dups %d, stats %+v", dups, stats)
			}
			if st.kinds[plume.RecordStatus] == 0 || st.kinds[plume.RecordAudit] == 0 {
				t.Fatalf("no status or audit records reached the edge: %v", st.kinds)
			}
			if stats.Rejected[plume.RecordPass]+stats.Rejected[plume.RecordStatus]+stats.Rejected[plume.RecordAudit] != 0 {
				t.Fatalf("the edge refused valid records: %+v", stats.Rejected)
			}
		})
	}
}

// TestPlayerMalformed injects malformed frames and checks the edge
// quarantined each of them while every pass still arrived.
func TestPlayerMalformed(t *testing.T) {
	for _, tt := range []struct {
		protocol  string
		malformed int
	}{{analyser.ProtocolHJ212, 4}, {analyser.ProtocolNDJSON, 3}} {
		t.Run(tt.protocol, func(t *testing.T) {
			st := newDedupStore("GD-SZ-0001")
			srv, tl, done := serve(t, "127.0.0.1:0", tt.protocol, st)
			defer func() { srv.Close(); <-done }()
			p := NewPlayer(Config{Addr: tl.Addr().String(), Protocol: tt.protocol, Station: "GD-SZ-0001", Profile: profile(t),
				Count: 40, Malformed: tt.malformed, Generator: GeneratorConfig{Seed: 9}})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := p.Run(ctx); err != nil {
				t.Fatal(err)
			}
			// The last malformed frame may still be on its way: wait a moment.
			deadline := time.Now().Add(5 * time.Second)
			for srv.Stats().MalformedTotal() < uint64(tt.malformed) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			s := srv.Stats()
			if p.Stats().Malformed != tt.malformed || s.MalformedTotal() != uint64(tt.malformed) {
				t.Fatalf("injected %d, edge counted %+v", p.Stats().Malformed, s.Malformed)
			}
			if len(st.passes) != 40 {
				t.Fatalf("stored %d passes", len(st.passes))
			}
			var reasons []string
			for r, n := range s.Malformed {
				if n > 0 {
					reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
				}
			}
			t.Logf("quarantined: %s", strings.Join(reasons, " "))
		})
	}
}

func TestPlayerRate(t *testing.T) {
	st := newDedupStore("GD-SZ-0001")
	srv, tl, done := serve(t, "127.0.0.1:0", analyser.ProtocolHJ212, st)
	defer func() { srv.Close(); <-done }()
	p := NewPlayer(Config{Addr: tl.Addr().String(), Station: "GD-SZ-0001", Profile: profile(t), Count: 11, Rate: 50})
	start := time.Now()
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 11 passes at 50/s: the last is due 200 ms after the first.
	if el := time.Since(start); el < 190*time.Millisecond || el > 3*time.Second {
		t.Fatalf("11 passes at 50/s took %v", el)
	}
}
