package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/analyser"
)

// Config configures a Player. Zero fields take the defaults in brackets.
type Config struct {
	Addr      string            // the edge's analyser port, host:port
	Protocol  string            // analyser.ProtocolHJ212 [default] or analyser.ProtocolNDJSON
	Station   plume.StationID   // written into NDJSON records and used for pass IDs
	MN        string            // HJ 212 device code ["PLUMESIM0001"]
	PW        string            // HJ 212 password ["123456"]
	Profile   *analyser.Profile // how the simulated device encodes records (required)
	Generator GeneratorConfig   // the traffic; its Now defaults to Config.Now
	Rate      float64           // passes per second; 0 sends as fast as acks come back
	Count     int               // stop once this many passes are acknowledged; 0 runs until ctx ends
	Malformed int               // malformed frames to inject, spread through the run
	// AckTimeout is how long to wait for each acknowledgement before
	// reconnecting and resending [5 s].
	AckTimeout time.Duration
	Backoff    analyser.Backoff // reconnect backoff [0.2 s … 5 s]
	// Schedule, when set, fixes the passes (schedule.go): each is sent at
	// its time on Now, and the player stops after the last is acknowledged.
	Schedule []Scheduled
	Logger   *slog.Logger
	Now      func() time.Time // [time.Now]
}

// Stats is what a Player has done so far.
type Stats struct {
	Generated   map[plume.RecordKind]int // records taken from the generator
	Sent        map[plume.RecordKind]int // frames written, resends included
	Acked       map[plume.RecordKind]int // records the edge acknowledged
	Rejected    map[plume.RecordKind]int // valid records the edge refused (should stay 0)
	Malformed   int                      // malformed frames injected
	Resends     int                      // records sent again after a lost ack or connection
	Connects    int                      // successful connections
	AckedPasses []plume.PassID           // acknowledged passes, in order
}

// Player plays a Generator's stream to an edge over TCP, the way an
// analyser that pushes does: one record at a time, each waiting for its
// acknowledgement (HJ 212 Flag bit 0 / NDJSON ack), resending whatever was
// not acknowledged after reconnecting with backoff. Nothing is lost when the
// edge restarts; a record whose ack was lost is sent again (the edge
// deduplicates by pass ID).
type Player struct {
	cfg       Config
	gen       *Generator
	scheduled int // passes taken from Config.Schedule
	log       *slog.Logger

	mu    sync.Mutex
	stats Stats

	lastQN time.Time
}

// NewPlayer returns a player for cfg.
func NewPlayer(cfg Config) *Player {
	if cfg.Protocol == "" {
		cfg.Protocol = analyser.ProtocolHJ212
	}
	if cfg.MN == "" {
		cfg.MN = "PLUMESIM0001"
	}
	if cfg.PW == "" {
		cfg.PW = "123456"
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.Backoff.Min <= 0 {
		cfg.Backoff.Min = 200 * time.Millisecond
	}
	if cfg.Backoff.Max <= 0 {
		cfg.Backoff.Max = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Generator.Now == nil {
		cfg.Generator.Now = cfg.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Player{
		cfg: cfg,
		gen: NewGenerator(cfg.Generator),
		log: cfg.Logger.With("component", "sim", "protocol", cfg.Protocol),
		stats: Stats{
			Generated: map[plume.RecordKind]int{}, Sent: map[plume.RecordKind]int{},
			Acked: map[plume.RecordKind]int{}, Rejected: map[plume.RecordKind]int{},
		},
	}
}

// Stats returns a copy of the player's counters.
func (p *Player) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Generated, s.Sent = maps.Clone(s.Generated), maps.Clone(s.Sent)
	s.Acked, s.Rejected = maps.Clone(s.Acked), maps.Clone(s.Rejected)
	s.AckedPasses = slices.Clone(s.AckedPasses)
	return s
}

func (p *Player) count(f func(s *Stats)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.stats)
}

// outgoing is one encoded record waiting for its acknowledgement.
type outgoing struct {
	kind plume.RecordKind
	raw  []byte
	id   string // HJ 212 QN or NDJSON ack ID
	pass plume.PassID
	sent bool
}

// link is one connection to the edge.
type link struct {
	conn net.Conn
	sc   *bufio.Scanner
}

func (l *link) close() {
	if l != nil {
		l.conn.Close()
	}
}

// Run plays the stream until Count passes are acknowledged (then it
// returns nil) or ctx ends (then it returns ctx's cause).
func (p *Player) Run(ctx context.Context) error {
	if p.cfg.Profile == nil {
		return errors.New("sim: a device profile is required")
	}
	if p.cfg.Protocol != analyser.ProtocolHJ212 && p.cfg.Protocol != analyser.ProtocolNDJSON {
		return fmt.Errorf("sim: unknown protocol %q", p.cfg.Protocol)
	}
	if err := p.cfg.Station.Validate(); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	var l *link
	defer func() { l.close() }()
	var pending *outgoing
	start := p.cfg.Now()
	injectEvery := 0
	if p.cfg.Malformed > 0 {
		injectEvery = 100
		if p.cfg.Count > 0 {
			injectEvery = max(1, p.cfg.Count/(p.cfg.Malformed+1))
		}
	}
	injected, attempt := 0, 0
	for {
		if p.cfg.Count > 0 && p.acked() >= p.cfg.Count {
			return nil
		}
		if pending == nil {
			ev := p.gen.Next()
			if ev.Kind == plume.RecordPass && len(p.cfg.Schedule) > 0 {
				if p.scheduled >= len(p.cfg.Schedule) {
					return nil
				}
				s := p.cfg.Schedule[p.scheduled]
				p.scheduled++
				ev = s.apply(ev)
				if err := sleep(ctx, s.At.Sub(p.cfg.Now())); err != nil {
					return err
				}
			}
			if ev.Kind == plume.RecordPass && p.cfg.Rate > 0 {
				due := start.Add(time.Duration(float64(p.gen.Passes()-1) / p.cfg.Rate * float64(time.Second)))
				if err := sleep(ctx, due.Sub(p.cfg.Now())); err != nil {
					return err
				}
			}
			var err error
			if pending, err = p.encode(ev); err != nil {
				return err
			}
			p.count(func(s *Stats) { s.Generated[ev.Kind]++ })
		}
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		if l == nil {
			var err error
			if l, err = p.dial(ctx); err != nil {
				wait := p.cfg.Backoff.Delay(attempt)
				attempt++
				p.log.Debug("edge not reachable; retrying", "err", err, "in", wait)
				if err := sleep(ctx, wait); err != nil {
					return err
				}
				continue
			}
			attempt = 0
		}
		if injectEvery > 0 && injected < p.cfg.Malformed && pending.kind == plume.RecordPass && !pending.sent &&
			p.gen.Passes()%injectEvery == 0 {
			if err := p.inject(l, injected); err == nil {
				injected++
			}
		}
		done, err := p.exchange(ctx, l, pending)
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			p.log.Info("no acknowledgement; reconnecting to resend", "id", pending.id, "err", err)
			l.close()
			l = nil
			if err := sleep(ctx, p.cfg.Backoff.Delay(0)); err != nil {
				return err
			}
			continue
		}
		if done {
			pending = nil
		}
	}
}

func (p *Player) acked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats.Acked[plume.RecordPass]
}

func (p *Player) dial(ctx context.Context) (*link, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", p.cfg.Addr)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 4096), analyser.MaxFrameLen+1)
	if p.cfg.Protocol == analyser.ProtocolNDJSON {
		sc.Split(analyser.SplitNDJSON(analyser.MaxNDJSONLine))
	} else {
		sc.Split(analyser.SplitHJ212(0))
	}
	p.count(func(s *Stats) { s.Connects++ })
	p.log.Info("connected to edge", "addr", p.cfg.Addr)
	return &link{conn: c, sc: sc}, nil
}

// exchange sends o and waits for its reply. It returns done when o needs
// no more sending (acknowledged or refused), and an error when the link
// failed or no reply came in time.
func (p *Player) exchange(ctx context.Context, l *link, o *outgoing) (done bool, err error) {
	stop := context.AfterFunc(ctx, func() { l.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if o.sent {
		p.count(func(s *Stats) { s.Resends++ })
	}
	o.sent = true
	l.conn.SetWriteDeadline(time.Now().Add(p.cfg.AckTimeout))
	if _, err := l.conn.Write(o.raw); err != nil {
		return false, fmt.Errorf("send: %w", err)
	}
	p.count(func(s *Stats) { s.Sent[o.kind]++ })
	deadline := time.Now().Add(p.cfg.AckTimeout)
	for {
		l.conn.SetReadDeadline(deadline)
		if !l.sc.Scan() {
			if err := l.sc.Err(); err != nil {
				return false, fmt.Errorf("wait for ack: %w", err)
			}
			return false, errors.New("wait for ack: connection closed")
		}
		verdict := p.reply(l.sc.Bytes(), o)
		switch verdict {
		case replyAck:
			p.count(func(s *Stats) {
				s.Acked[o.kind]++
				if o.pass != "" {
					s.AckedPasses = append(s.AckedPasses, o.pass)
				}
			})
			return true, nil
		case replyRefused:
			p.count(func(s *Stats) { s.Rejected[o.kind]++ })
			p.log.Warn("edge refused a record", "kind", o.kind, "id", o.id)
			return true, nil
		case replyResend:
			return false, nil
		}
	}
}

type replyVerdict int

const (
	replyOther   replyVerdict = iota // a reply to something else (an injected frame)
	replyAck                         // o is stored
	replyRefused                     // o was quarantined: do not resend
	replyResend                      // o arrived damaged: send it again
)

func (p *Player) reply(b []byte, o *outgoing) replyVerdict {
	if p.cfg.Protocol == analyser.ProtocolNDJSON {
		r, err := analyser.ParseNDJSONReply(b)
		switch {
		case err != nil:
			return replyOther
		case r.Ack != nil && *r.Ack == o.id:
			return replyAck
		case r.Nak != nil && *r.Nak == o.id:
			return replyRefused
		}
		return replyOther
	}
	f, err := analyser.Decode(b)
	if err != nil || f.QN != o.id {
		return replyOther
	}
	switch f.CN {
	case analyser.CNDataReply:
		return replyAck
	case analyser.CNRequestReply:
		if v, _ := f.Get("QnRtn"); v == strconv.Itoa(analyser.QnRtnBadCRC) {
			return replyResend
		}
		return replyRefused
	}
	return replyOther
}

// qn returns a fresh HJ 212 request number, yyyyMMddHHmmssSSS, strictly
// increasing so that replies can be matched.
func (p *Player) qn() string {
	t := p.cfg.Now().Truncate(time.Millisecond)
	if !t.After(p.lastQN) {
		t = p.lastQN.Add(time.Millisecond)
	}
	p.lastQN = t
	t = t.In(p.cfg.Profile.Location())
	return t.Format("20060102150405") + fmt.Sprintf("%03d", t.Nanosecond()/1e6)
}

func (p *Player) header(flag int) analyser.Frame {
	return analyser.Frame{QN: p.qn(), ST: "31", PW: p.cfg.PW, MN: p.cfg.MN, Flag: flag}
}

// encode turns an event into the bytes the simulated analyser sends.
func (p *Player) encode(ev Event) (*outgoing, error) {
	m := analyser.Message{Kind: ev.Kind, Reading: ev.Reading, Status: ev.Status, Audit: ev.Audit}
	o := &outgoing{kind: ev.Kind}
	if ev.Reading != nil {
		o.pass = plume.NewPassID(p.cfg.Station, ev.Reading.Time, ev.Reading.Lane)
	}
	var err error
	if p.cfg.Protocol == analyser.ProtocolNDJSON {
		switch ev.Kind {
		case plume.RecordPass: // the edge derives the ID from time and lane
			o.id = ev.Reading.Time.Format(time.RFC3339Nano) + "/L" + strconv.Itoa(ev.Reading.Lane)
		default:
			o.id = fmt.Sprintf("%s-%d", ev.Kind, p.gen.Passes())
		}
		id := o.id
		if ev.Kind == plume.RecordPass {
			id = ""
		}
		o.raw, err = p.cfg.Profile.EncodeNDJSON(&m, id, string(p.cfg.Station))
	} else {
		var f analyser.Frame
		f, err = p.cfg.Profile.HJ212Frame(&m, p.header(analyser.FlagVersion|analyser.FlagAck))
		if err == nil {
			o.id = f.QN
			o.raw, err = analyser.Encode(&f)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("sim: encode %s: %w", ev.Kind, err)
	}
	return o, nil
}

// inject writes one malformed frame of the n-th kind. The edge quarantines
// it; replies to it (if any) are ignored.
func (p *Player) inject(l *link, n int) error {
	var b []byte
	bad := &plume.Reading{Time: p.cfg.Now(), Lane: 0, Gases: plume.Gases{CO2: 14}, Ringelmann: -1} // lane 0 fails validation
	if p.cfg.Protocol == analyser.ProtocolNDJSON {
		switch n % 3 {
		case 0:
			b = []byte("this is not json\n")
		case 1:
			b, _ = p.cfg.Profile.EncodeNDJSON(&analyser.Message{Kind: plume.RecordPass, Reading: bad}, "malformed-"+strconv.Itoa(n), string(p.cfg.Station))
		default:
			b = []byte(`{"type":"pass","id":"malformed-` + strconv.Itoa(n) + `","time":"yesterday"}` + "\n")
		}
	} else {
		switch n % 4 {
		case 0:
			b = []byte("\x00\x01garbage on the line\r\n")
		case 1: // a frame whose CRC was damaged on the way
			f := p.header(analyser.FlagVersion | analyser.FlagAck)
			f.CN, f.CP = "2011", [][]analyser.KV{{{Key: "DataTime", Value: "20261128000000000"}}}
			b, _ = analyser.Encode(&f)
			b[len(b)-3] ^= 0x01
		case 2:
			f, err := p.cfg.Profile.HJ212Frame(&analyser.Message{Kind: plume.RecordPass, Reading: bad}, p.header(analyser.FlagVersion|analyser.FlagAck))
			if err == nil {
				b, _ = analyser.Encode(&f)
			}
		default: // a length field that lies
			b = []byte("##0999QN=1;ST=31;CN=2011;MN=X;CP=&&&&0000\r\n")
		}
	}
	if b == nil {
		return errors.New("sim: could not build a malformed frame")
	}
	l.conn.SetWriteDeadline(time.Now().Add(p.cfg.AckTimeout))
	if _, err := l.conn.Write(b); err != nil {
		return err
	}
	p.count(func(s *Stats) { s.Malformed++ })
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
