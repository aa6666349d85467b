package analyser

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Config is what every transport (Server, Client, Serial) needs to turn a
// byte stream into handled, acknowledged records.
type Config struct {
	Protocol   string   // ProtocolHJ212 or ProtocolNDJSON
	Profile    *Profile // the analyser's device profile
	Handler    Handler  // stores each message; required
	Logger     *slog.Logger
	Quarantine Quarantiner // where rejected input goes; nil logs it instead
	// Now is the edge clock (default time.Now).
	Now func() time.Time
	// MaxFrame caps a frame or line: MaxFrameLen for HJ 212 and
	// MaxNDJSONLine for NDJSON by default.
	MaxFrame int
	// IdleTimeout closes a network connection that sent nothing for this
	// long, so a dead peer never pins a goroutine (default 10 minutes;
	// negative disables). Serial ports are never idle-closed.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one acknowledgement (default 10 s).
	WriteTimeout time.Duration
	// HandlerTimeout bounds one Handler call (default 30 s). The handler's
	// context is not cancelled by shutdown, so a record being stored when
	// the transport stops is still stored and acknowledged.
	HandlerTimeout time.Duration
}

func (c *Config) check() error {
	switch {
	case c.Protocol != ProtocolHJ212 && c.Protocol != ProtocolNDJSON:
		return fmt.Errorf("analyser: protocol %q is neither %s nor %s", c.Protocol, ProtocolHJ212, ProtocolNDJSON)
	case c.Profile == nil || c.Profile.loc == nil:
		return fmt.Errorf("analyser: a validated device profile is required")
	case c.Handler == nil:
		return fmt.Errorf("analyser: a handler is required")
	}
	return nil
}

// ingest is the one place that reads a stream of frames, decodes, handles,
// acknowledges and quarantines; every transport uses it.
type ingest struct {
	cfg   Config
	log   *slog.Logger
	stats *counters
}

func newIngest(cfg Config, component string, c *counters) (*ingest, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = MaxFrameLen
		if cfg.Protocol == ProtocolNDJSON {
			cfg.MaxFrame = MaxNDJSONLine
		}
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.HandlerTimeout <= 0 {
		cfg.HandlerTimeout = 30 * time.Second
	}
	log := cfg.Logger.With("component", component, "protocol", cfg.Protocol, "device_profile", cfg.Profile.Name)
	return &ingest{cfg: cfg, log: log, stats: c}, nil
}

func (in *ingest) split() func([]byte, bool) (int, []byte, error) {
	if in.cfg.Protocol == ProtocolNDJSON {
		return SplitNDJSON(in.cfg.MaxFrame)
	}
	return SplitHJ212(in.cfg.MaxFrame)
}

// stream reads frames from r until it fails, handling each one and writing
// replies with write. It returns the read error (io.EOF for a clean close).
// ctx is the transport's context; stopping reads on cancellation is the
// reader's job, so a record already read is finished.
func (in *ingest) stream(ctx context.Context, r io.Reader, write func([]byte) error, remote string) error {
	fr := newFrameReader(r, in.split(), in.cfg.MaxFrame)
	for {
		tok, err := fr.next()
		if tok != nil {
			in.stats.bytesRead.Add(uint64(len(tok)))
			raw := bytes.Clone(tok)
			if werr := in.token(ctx, raw, write, remote); werr != nil {
				return fmt.Errorf("write reply: %w", werr)
			}
		}
		if err != nil {
			return err
		}
	}
}

// token handles one frame or line. It returns only write errors: everything
// else is counted, logged and quarantined.
func (in *ingest) token(ctx context.Context, raw []byte, write func([]byte) error, remote string) error {
	now := in.cfg.Now()
	if in.cfg.Protocol == ProtocolNDJSON {
		if len(bytes.TrimSpace(raw)) == 0 {
			return nil // blank lines carry nothing
		}
		m, err := in.cfg.Profile.DecodeNDJSON(raw)
		if err != nil {
			reason := reasonOf(err)
			in.reject(ctx, raw, remote, now, reason, err)
			in.stats.naks.Add(1)
			return write(NDJSONNak(m.ID, reason))
		}
		if !in.handle(ctx, &m, raw, remote, now) {
			return nil
		}
		in.stats.acks.Add(1)
		return write(NDJSONAck(m.ID))
	}

	if !bytes.HasPrefix(raw, []byte("##")) {
		in.reject(ctx, raw, remote, now, ReasonGarbage, fmt.Errorf("%d bytes outside any frame: %w", len(raw), ErrMalformed))
		return nil
	}
	f, err := Decode(raw)
	if err != nil {
		reason := reasonOf(err)
		in.reject(ctx, raw, remote, now, reason, err)
		if reason == ReasonBadCRC && f.QN != "" {
			in.stats.naks.Add(1)
			return write(RequestReply(&f, QnRtnBadCRC))
		}
		return nil
	}
	m, err := in.cfg.Profile.FromHJ212(&f)
	if err != nil {
		reason := reasonOf(err)
		in.reject(ctx, raw, remote, now, reason, err)
		if f.WantsAck() {
			rtn := QnRtnRefused
			if reason == ReasonUnknownKind {
				rtn = QnRtnBadCN
			}
			in.stats.naks.Add(1)
			return write(RequestReply(&f, rtn))
		}
		return nil
	}
	if !in.handle(ctx, &m, raw, remote, now) {
		return nil
	}
	if f.WantsAck() {
		in.stats.acks.Add(1)
		return write(DataReply(&f))
	}
	return nil
}

// handle gives a valid message to the handler and reports success.
func (in *ingest) handle(ctx context.Context, m *Message, raw []byte, remote string, now time.Time) bool {
	m.Raw, m.Remote, m.ReceivedAt = raw, remote, now
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.cfg.HandlerTimeout)
	defer cancel()
	if err := in.cfg.Handler(hctx, *m); err != nil {
		in.stats.handlerErrors.Add(1)
		in.log.Error("handler failed; record not acknowledged", "remote", remote, "kind", m.Kind, "id", m.ID, "err", err)
		return false
	}
	in.stats.ok.Add(1)
	return true
}

// maxLoggedRaw bounds the bytes of a rejected input written to the log
// when the quarantine cannot take it.
const maxLoggedRaw = 256

// reject counts, logs and quarantines one bad input.
func (in *ingest) reject(ctx context.Context, raw []byte, remote string, now time.Time, reason Reason, err error) {
	in.stats.reject(reason)
	in.log.Warn("rejected analyser input", "remote", remote, "reason", reason, "bytes", len(raw), "err", err)
	item := Rejected{Time: now, Remote: remote, Protocol: in.cfg.Protocol, Reason: reason, Error: err.Error(), Raw: raw}
	var qerr error
	if in.cfg.Quarantine == nil {
		qerr = errors.New("no quarantine configured")
	} else {
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.cfg.WriteTimeout)
		qerr = in.cfg.Quarantine.Quarantine(qctx, item)
		cancel()
	}
	if qerr != nil {
		in.stats.quarantineErrors.Add(1)
		// Never drop it silently; the log keeps its start (not all of it:
		// garbage must not grow the logs without bound either).
		head := raw[:min(len(raw), maxLoggedRaw)]
		in.log.Error("quarantine failed; input start logged here", "remote", remote, "reason", reason, "err", qerr,
			"bytes", len(raw), "raw_base64_head", base64.StdEncoding.EncodeToString(head))
	}
}

// frameReader cuts a reader into tokens with a split function, like
// bufio.Scanner, but hands over what is left in the buffer when the reader
// fails (as a last token), so a stream cut mid-frame is quarantined rather
// than lost, and reports the read error itself.
type frameReader struct {
	r          io.Reader
	split      func([]byte, bool) (int, []byte, error)
	max        int
	buf        []byte
	start, end int
	err        error
}

func newFrameReader(r io.Reader, split func([]byte, bool) (int, []byte, error), max int) *frameReader {
	return &frameReader{r: r, split: split, max: max, buf: make([]byte, min(4096, max+1))}
}

// next returns the next token (valid until the following call) and, once the
// reader has failed and the buffer is empty, the read error.
func (fr *frameReader) next() ([]byte, error) {
	for {
		if fr.start < fr.end || fr.err != nil {
			data := fr.buf[fr.start:fr.end]
			atEOF := fr.err != nil
			adv, tok, err := fr.split(data, atEOF)
			if err != nil {
				return nil, err
			}
			if adv < 0 || adv > len(data) {
				return nil, fmt.Errorf("split advanced %d of %d bytes", adv, len(data))
			}
			fr.start += adv
			if tok != nil {
				return tok, nil
			}
			if adv > 0 {
				continue
			}
			if atEOF {
				if len(data) > 0 { // a split that will not finish: hand it over whole
					fr.start = fr.end
					return data, nil
				}
				return nil, fr.err
			}
			if len(data) >= fr.max { // the split functions never get here
				fr.start += len(data)
				return data, nil
			}
		}
		if fr.start > 0 {
			copy(fr.buf, fr.buf[fr.start:fr.end])
			fr.end -= fr.start
			fr.start = 0
		}
		if fr.end == len(fr.buf) {
			nb := make([]byte, min(2*len(fr.buf), fr.max+1))
			copy(nb, fr.buf[:fr.end])
			fr.buf = nb
		}
		n, err := fr.r.Read(fr.buf[fr.end:])
		fr.end += n
		if err != nil {
			fr.err = err
		} else if n == 0 {
			fr.err = io.ErrNoProgress
		}
	}
}

// Backoff is a jittered exponential backoff for reconnecting.
type Backoff struct {
	Min time.Duration // first delay (default 500 ms)
	Max time.Duration // cap (default 30 s)
}

// Delay returns the wait before attempt n (0-based): Min·2ⁿ capped at Max,
// then scaled by a random factor in [0.5, 1) so that many stations
// restarting together do not reconnect in step.
func (b Backoff) Delay(n int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 500 * time.Millisecond
	}
	if hi <= 0 {
		hi = 30 * time.Second
	}
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
