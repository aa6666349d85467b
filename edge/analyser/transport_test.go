package analyser

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
)

// store is a test handler that records what it was given.
type store struct {
	mu   sync.Mutex
	msgs []Message
	fail func(m Message) error // optional
}

func (s *store) handle(ctx context.Context, m Message) error {
	if s.fail != nil {
		if err := s.fail(m); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	return nil
}

func (s *store) all() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startServer serves cfg on a loopback port and returns the server, its
// address and its quarantine file path. The server is closed at cleanup.
func startServer(tb testing.TB, cfg Config) (*Server, string, string) {
	tb.Helper()
	qpath := filepath.Join(tb.TempDir(), "quarantine.ndjson")
	q, err := OpenQuarantine(qpath)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { q.Close() })
	if cfg.Profile == nil {
		cfg.Profile = mustProfile(tb, "generic-rsd.yaml")
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	cfg.Quarantine = q
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{Config: cfg}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), ln) }()
	tb.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String(), qpath
}

func dial(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// readReply reads one HJ 212 reply frame, or fails after timeout.
func readReply(tb testing.TB, fr *frameReader, c net.Conn, timeout time.Duration) (Frame, error) {
	tb.Helper()
	if isTimeout(fr.err) {
		fr.err = nil // an expected timeout earlier: read on
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	tok, err := fr.next()
	if err != nil {
		return Frame{}, err
	}
	return Decode(tok)
}

func passFrame(tb testing.TB, qn string, lane int, at time.Time) []byte {
	tb.Helper()
	return passFrameFlag(tb, qn, lane, at, FlagVersion|FlagAck)
}

func passFrameFlag(tb testing.TB, qn string, lane int, at time.Time, flag int) []byte {
	tb.Helper()
	p := mustProfile(tb, "generic-rsd.yaml")
	r := &plume.Reading{Time: at, Lane: lane, Fuel: plume.FuelDiesel, Gases: plume.Gases{CO2: 12, NO: 900}, PlumeCO2: 30,
		Ringelmann: 1, SpeedKmh: 40, AccelMS2: 0.3, SlopePct: 1.5, Flag: plume.FlagNormal,
		Ambient: plume.Ambient{TempC: 15, HumidityPct: 50, WindMS: 1, PressureKPa: 101}}
	f, err := p.HJ212Frame(&Message{Kind: plume.RecordPass, Reading: r}, Frame{QN: qn, ST: "22", PW: "123456", MN: "RSD0001", Flag: flag})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := Encode(&f)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

var t0 = time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC)

func TestServerSplitPackets(t *testing.T) {
	st := &store{}
	srv, addr, _ := startServer(t, Config{Protocol: ProtocolHJ212, Handler: st.handle})
	c := dial(t, addr)
	fr := newFrameReader(c, SplitHJ212(0), MaxFrameLen)
	var sent [][]byte
	for i := range 3 {
		b := passFrame(t, fmt.Sprintf("2026112810000000%d", i), 1, t0.Add(time.Duration(i)*time.Second))
		sent = append(sent, b)
		// Each frame arrives in several TCP segments (Go sets TCP_NODELAY).
		for _, cut := range [][2]int{{0, 1}, {1, 5}, {5, 40}, {40, len(b) - 3}, {len(b) - 3, len(b)}} {
			if _, err := c.Write(b[cut[0]:cut[1]]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		rep, err := readReply(t, fr, c, 5*time.Second)
		if err != nil {
			t.Fatalf("frame %d: no ack: %v", i, err)
		}
		if rep.CN != CNDataReply || rep.QN != fmt.Sprintf("2026112810000000%d", i) || rep.MN != "RSD0001" {
			t.Fatalf("reply %+v", rep)
		}
	}
	got := st.all()
	if len(got) != 3 {
		t.Fatalf("handled %d messages, want 3", len(got))
	}
	for i, m := range got {
		if !bytes.Equal(m.Raw, sent[i]) || m.Protocol != ProtocolHJ212 || m.Remote != c.LocalAddr().String() {
			t.Fatalf("message %d: raw %q remote %s", i, m.Raw, m.Remote)
		}
		if !m.Reading.Time.Equal(t0.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("message %d: time %v", i, m.Reading.Time)
		}
	}
	if s := srv.Stats(); s.RecordsOK != 3 || s.AcksSent != 3 || s.MalformedTotal() != 0 || s.Connections != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestServerQuarantine(t *testing.T) {
	st := &store{}
	srv, addr, qpath := startServer(t, Config{Protocol: ProtocolHJ212, Handler: st.handle})
	c := dial(t, addr)
	fr := newFrameReader(c, SplitHJ212(0), MaxFrameLen)

	good := passFrame(t, "20261128100000001", 1, t0)
	badCRC := bytes.Clone(passFrame(t, "20261128100000002", 1, t0.Add(time.Second)))
	badCRC[len(badCRC)-3] ^= 1 // flip a CRC digit
	invalid := passFrame(t, "20261128100000003", 17, t0.Add(2*time.Second))
	unknownCN := goodFrame("QN=20261128100000004;ST=22;CN=1011;PW=123456;MN=RSD0001;Flag=5;CP=&&&&")
	garbage := []byte("\x00\xffnoise\r\n")

	type want struct {
		in     []byte
		reason Reason
		reply  string // expected reply CP, "" none
	}
	steps := []want{
		{garbage, ReasonGarbage, ""},
		{badCRC, ReasonBadCRC, "QnRtn=9"},
		{good, "", "ack"},
		{invalid, ReasonInvalid, "QnRtn=2"},
		{unknownCN, ReasonUnknownKind, "QnRtn=8"},
		{good, "", "ack"}, // a resend is handled again; the agent dedupes
	}
	for i, s := range steps {
		if _, err := c.Write(s.in); err != nil {
			t.Fatal(err)
		}
		if s.reply == "" {
			continue
		}
		rep, err := readReply(t, fr, c, 5*time.Second)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		switch s.reply {
		case "ack":
			if rep.CN != CNDataReply {
				t.Fatalf("step %d: reply %+v, want 9014", i, rep)
			}
		default:
			if v, _ := rep.Get("QnRtn"); rep.CN != CNRequestReply || "QnRtn="+v != s.reply {
				t.Fatalf("step %d: reply %+v, want 9011 %s", i, rep, s.reply)
			}
		}
	}
	if n := len(st.all()); n != 2 {
		t.Fatalf("handled %d, want 2", n)
	}
	items, err := ReadQuarantine(qpath)
	if err != nil {
		t.Fatal(err)
	}
	var wantQ []want
	for _, s := range steps {
		if s.reason != "" {
			wantQ = append(wantQ, s)
		}
	}
	if len(items) != len(wantQ) {
		t.Fatalf("quarantine has %d items, want %d: %+v", len(items), len(wantQ), items)
	}
	for i, it := range items {
		if it.Reason != wantQ[i].reason || !bytes.Equal(it.Raw, wantQ[i].in) || it.Protocol != ProtocolHJ212 ||
			it.Remote != c.LocalAddr().String() || it.Error == "" || it.Time.IsZero() {
			t.Fatalf("quarantine item %d = %+v, want reason %s raw %q", i, it, wantQ[i].reason, wantQ[i].in)
		}
	}
	s := srv.Stats()
	if s.Malformed[ReasonGarbage] != 1 || s.Malformed[ReasonBadCRC] != 1 || s.Malformed[ReasonInvalid] != 1 ||
		s.Malformed[ReasonUnknownKind] != 1 || s.RecordsOK != 2 || s.NaksSent != 3 || s.QuarantineErrors != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestServerAckOnlyAfterHandlerSuccess(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	calls := 0
	var mu sync.Mutex
	st := &store{fail: func(m Message) error {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		entered <- struct{}{}
		if n == 1 {
			return errors.New("disk full")
		}
		<-release
		return nil
	}}
	srv, addr, _ := startServer(t, Config{Protocol: ProtocolHJ212, Handler: st.handle})
	c := dial(t, addr)
	fr := newFrameReader(c, SplitHJ212(0), MaxFrameLen)
	b := passFrame(t, "20261128100000001", 1, t0)

	// First try: the handler fails, so no reply comes.
	c.Write(b)
	<-entered
	if _, err := readReply(t, fr, c, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("got a reply (or error %v) although the handler failed", err)
	}
	// Resend: the handler blocks; no ack may come before it returns.
	c.Write(b)
	<-entered
	if _, err := readReply(t, fr, c, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("got a reply (or error %v) before the handler returned", err)
	}
	close(release)
	rep, err := readReply(t, fr, c, 5*time.Second)
	if err != nil || rep.CN != CNDataReply {
		t.Fatalf("reply %+v, %v", rep, err)
	}
	if s := srv.Stats(); s.HandlerErrors != 1 || s.AcksSent != 1 || s.RecordsOK != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestServerNoAckWhenNotAsked(t *testing.T) {
	st := &store{}
	_, addr, _ := startServer(t, Config{Protocol: ProtocolHJ212, Handler: st.handle})
	c := dial(t, addr)
	fr := newFrameReader(c, SplitHJ212(0), MaxFrameLen)
	c.Write(passFrameFlag(t, "20261128100000001", 1, t0, FlagVersion))
	if _, err := readReply(t, fr, c, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("reply without Flag bit 0: %v", err)
	}
	if len(st.all()) != 1 {
		t.Fatal("frame not handled")
	}
}

func TestServerNDJSON(t *testing.T) {
	st := &store{}
	srv, addr, qpath := startServer(t, Config{Protocol: ProtocolNDJSON, Handler: st.handle})
	c := dial(t, addr)
	rd := bufio.NewReader(c)
	lines := []string{
		samplePassLine[:30], samplePassLine[30:] + "\n", // split line, then a blank line
		`{"type":"status","id":"s1","time":"2026-11-28T10:00:00+08:00","flag":"N"}` + "\n",
		"not json\n",
	}
	for _, l := range lines {
		c.Write([]byte(l))
		time.Sleep(5 * time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var replies []NDJSONReply
	for range 3 {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseNDJSONReply(line)
		if err != nil {
			t.Fatal(err)
		}
		replies = append(replies, r)
	}
	if replies[0].Ack == nil || *replies[0].Ack != "2026-11-28T10:15:30.123+08:00/L1" ||
		replies[1].Ack == nil || *replies[1].Ack != "s1" ||
		replies[2].Nak == nil || replies[2].Reason != ReasonMalformed {
		t.Fatalf("replies %+v", replies)
	}
	got := st.all()
	if len(got) != 2 || string(got[0].Raw) != samplePassLine || got[1].Kind != plume.RecordStatus {
		t.Fatalf("handled %+v", got)
	}
	items, _ := ReadQuarantine(qpath)
	if len(items) != 1 || string(items[0].Raw) != "not json\n" || items[0].Text != "not json\n" {
		t.Fatalf("quarantine %+v", items)
	}
	if s := srv.Stats(); s.AcksSent != 2 || s.NaksSent != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestServerCloseDrains checks that Close lets a record being stored finish
// and be acknowledged, and then returns.
func TestServerCloseDrains(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	st := &store{fail: func(Message) error {
		close(entered)
		<-release
		return nil
	}}
	srv, addr, _ := startServer(t, Config{Protocol: ProtocolHJ212, Handler: st.handle})
	c := dial(t, addr)
	fr := newFrameReader(c, SplitHJ212(0), MaxFrameLen)
	c.Write(passFrame(t, "20261128100000001", 1, t0))
	<-entered
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a record was being stored")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	rep, err := readReply(t, fr, c, 5*time.Second)
	if err != nil || rep.CN != CNDataReply {
		t.Fatalf("in-flight record not acknowledged on shutdown: %+v %v", rep, err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if _, err := readReply(t, fr, c, 5*time.Second); err == nil || isTimeout(err) {
		t.Fatalf("connection still open after Close: %v", err)
	}
	if s := srv.Stats(); s.Active != 0 {
		t.Fatalf("active connections %d", s.Active)
	}
}

func TestServerIdleTimeout(t *testing.T) {
	srv, addr, _ := startServer(t, Config{Protocol: ProtocolHJ212, Handler: (&store{}).handle, IdleTimeout: 100 * time.Millisecond})
	c := dial(t, addr)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("idle connection not closed by the server: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().Active != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if a := srv.Stats().Active; a != 0 {
		t.Fatalf("active %d after idle timeout", a)
	}
}

func TestServerConfigErrors(t *testing.T) {
	p := mustProfile(t, "generic-rsd.yaml")
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"ErrProtocol", Config{Protocol: "modbus", Profile: p, Handler: (&store{}).handle}},
		{"ErrNoProfile", Config{Protocol: ProtocolHJ212, Handler: (&store{}).handle}},
		{"ErrNoHandler", Config{Protocol: ProtocolHJ212, Profile: p}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := &Server{Config: tt.cfg}
			if err := s.Serve(context.Background(), ln); err == nil {
				t.Fatal("Serve accepted a bad config")
			}
		})
	}
}

// TestClientReconnects plays an analyser that listens: it serves one frame
// per connection and hangs up; the client must reconnect and ack each.
func TestClientReconnects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	st := &store{}
	cl := &Client{Addr: ln.Addr().String(), Backoff: Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		Config: Config{Protocol: ProtocolHJ212, Profile: mustProfile(t, "generic-rsd.yaml"), Handler: st.handle, Logger: testLogger(t)}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cl.Run(ctx) }()
	for i := range 3 {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		fr := newFrameReader(c, SplitHJ212(0), MaxFrameLen)
		c.Write(passFrame(t, fmt.Sprintf("2026112810000000%d", i), 1, t0.Add(time.Duration(i)*time.Second)))
		rep, err := readReply(t, fr, c, 5*time.Second)
		if err != nil || rep.CN != CNDataReply {
			t.Fatalf("connection %d: %+v %v", i, rep, err)
		}
		c.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := cl.Stats(); s.Connections < 3 || s.RecordsOK != 3 || s.Active != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		for range 50 {
			if d := b.Delay(n); d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

// BenchmarkServerIngest measures one HJ 212 pass over loopback TCP: write,
// split, decode, map, validate, handle (in memory) and read the 9014 ack.
func BenchmarkServerIngest(b *testing.B) {
	_, addr, _ := startServer(b, Config{Protocol: ProtocolHJ212, Handler: func(context.Context, Message) error { return nil }, Logger: slog.New(slog.DiscardHandler)})
	c := dial(b, addr)
	fr := newFrameReader(c, SplitHJ212(0), MaxFrameLen)
	frame := passFrame(b, "20261128100000001", 1, t0)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := readReply(b, fr, c, 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}
