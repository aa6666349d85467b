package analyser

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"go.bug.st/serial"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Close, or
// when Serve is called twice.
var ErrServerClosed = errors.New("analyser: server closed")

// errStopped ends a stream whose transport is shutting down.
var errStopped = errors.New("transport stopping")

// Server accepts analysers that connect to the edge and push records, the
// usual arrangement for HJ 212. Each connection gets its own goroutine.
// Set the fields, then call ListenAndServe or Serve once.
type Server struct {
	Addr string // listen address for ListenAndServe, e.g. ":9212"
	Config

	stats  counters
	mu     sync.Mutex
	cancel context.CancelCauseFunc
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
}

// ListenAndServe listens on s.Addr and serves until ctx is done or Close is
// called.
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("analyser listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln until ctx is done or Close is called, and
// then waits for the connections to finish: each stops reading, finishes
// the record it is handling (storing and acknowledging it) and closes. It
// returns nil after such a shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	in, err := newIngest(s.Config, "analyser-server", &s.stats)
	if err != nil {
		ln.Close()
		return err
	}
	s.mu.Lock()
	if s.closed || s.done != nil {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	ctx, cancel := context.WithCancelCause(ctx)
	s.cancel, s.done = cancel, make(chan struct{})
	s.mu.Unlock()
	defer close(s.done)
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	in.log.Info("analyser server listening", "addr", ln.Addr().String())
	delay := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				s.wg.Wait()
				return nil
			}
			if !errors.Is(err, net.ErrClosed) {
				// Out of file descriptors and the like: wait and retry.
				// If ctx ends meanwhile, the next Accept fails and the
				// check above returns.
				in.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				sleep(ctx, delay)
				delay = min(2*delay, time.Second)
				continue
			}
			// The listener was closed by someone else.
			cancel(err)
			s.wg.Wait()
			return fmt.Errorf("analyser accept: %w", err)
		}
		delay = 5 * time.Millisecond
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(ctx, in, c)
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, in *ingest, c net.Conn) {
	defer c.Close()
	s.stats.connections.Add(1)
	s.stats.active.Add(1)
	defer s.stats.active.Add(-1)
	remote := c.RemoteAddr().String()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 6})
	}
	in.log.Info("analyser connected", "remote", remote)
	err := streamConn(ctx, in, c, remote)
	in.log.Info("analyser disconnected", "remote", remote, "reason", err)
}

// streamConn runs the ingest loop on a network connection, stopping reads
// when ctx is done.
func streamConn(ctx context.Context, in *ingest, c net.Conn, remote string) error {
	r := &connReader{c: c, idle: in.cfg.IdleTimeout}
	stop := context.AfterFunc(ctx, r.stop)
	defer stop()
	write := func(b []byte) error {
		c.SetWriteDeadline(time.Now().Add(in.cfg.WriteTimeout))
		_, err := c.Write(b)
		return err
	}
	err := in.stream(ctx, r, write, remote)
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// Close stops accepting, lets every connection finish the record it is
// handling, and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel(ErrServerClosed)
		<-done
	}
	return nil
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// connReader sets an idle deadline before every read and can be stopped
// from another goroutine without racing that deadline.
type connReader struct {
	c       net.Conn
	idle    time.Duration
	mu      sync.Mutex
	stopped bool
}

func (r *connReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return 0, errStopped
	}
	if r.idle > 0 {
		r.c.SetReadDeadline(time.Now().Add(r.idle))
	}
	r.mu.Unlock()
	n, err := r.c.Read(p)
	if err != nil {
		r.mu.Lock()
		if r.stopped {
			err = errStopped
		}
		r.mu.Unlock()
	}
	return n, err
}

func (r *connReader) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	r.c.SetReadDeadline(time.Unix(1, 0))
}

// Client connects to an analyser that listens (some RSDs serve their data on
// a TCP port) and reads records from it, reconnecting with jittered
// exponential backoff whenever the connection fails or goes idle.
type Client struct {
	Addr string // the analyser's host:port
	Config
	Backoff     Backoff
	DialTimeout time.Duration // default 10 s

	stats counters
}

// Run connects and reads until ctx is done, then returns nil once the
// record being handled is finished.
func (c *Client) Run(ctx context.Context) error {
	in, err := newIngest(c.Config, "analyser-client", &c.stats)
	if err != nil {
		return err
	}
	d := net.Dialer{Timeout: c.DialTimeout, KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 6}}
	if d.Timeout <= 0 {
		d.Timeout = 10 * time.Second
	}
	for attempt := 0; ; attempt++ {
		conn, err := d.DialContext(ctx, "tcp", c.Addr)
		if err == nil {
			c.stats.connections.Add(1)
			c.stats.active.Add(1)
			before := c.stats.bytesRead.Load()
			in.log.Info("connected to analyser", "addr", c.Addr)
			err = streamConn(ctx, in, conn, conn.RemoteAddr().String())
			conn.Close()
			c.stats.active.Add(-1)
			if c.stats.bytesRead.Load() > before {
				attempt = 0 // it worked for a while: start the backoff afresh
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := c.Backoff.Delay(attempt)
		in.log.Warn("analyser connection lost; reconnecting", "addr", c.Addr, "err", err, "in", wait)
		if sleep(ctx, wait) != nil {
			return nil
		}
	}
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats { return c.stats.snapshot() }

// Serial reads an analyser on an RS-232 or RS-485 line. RS-485 adapters with
// automatic direction control look like any other serial port. The port is
// reopened with jittered exponential backoff when it fails (for example a
// USB adapter unplugged).
type Serial struct {
	Port     string // e.g. /dev/ttyUSB0
	BaudRate int    // default 9600
	DataBits int    // default 8
	Parity   string // "none" (default), "odd", "even", "mark" or "space"
	StopBits int    // 1 (default) or 2
	Config
	Backoff Backoff
	// Open opens the port; nil means serial.Open.
	Open func(name string, mode *serial.Mode) (serial.Port, error)

	stats counters
}

func (s *Serial) mode() (*serial.Mode, error) {
	m := &serial.Mode{BaudRate: s.BaudRate, DataBits: s.DataBits}
	if m.BaudRate == 0 {
		m.BaudRate = 9600
	}
	if m.DataBits == 0 {
		m.DataBits = 8
	}
	switch s.Parity {
	case "", "none":
		m.Parity = serial.NoParity
	case "odd":
		m.Parity = serial.OddParity
	case "even":
		m.Parity = serial.EvenParity
	case "mark":
		m.Parity = serial.MarkParity
	case "space":
		m.Parity = serial.SpaceParity
	default:
		return nil, fmt.Errorf("analyser serial: parity %q is not none, odd, even, mark or space", s.Parity)
	}
	switch s.StopBits {
	case 0, 1:
		m.StopBits = serial.OneStopBit
	case 2:
		m.StopBits = serial.TwoStopBits
	default:
		return nil, fmt.Errorf("analyser serial: stop bits %d is not 1 or 2", s.StopBits)
	}
	return m, nil
}

// Run opens the port and reads until ctx is done, then returns nil once the
// record being handled is finished.
func (s *Serial) Run(ctx context.Context) error {
	in, err := newIngest(s.Config, "analyser-serial", &s.stats)
	if err != nil {
		return err
	}
	mode, err := s.mode()
	if err != nil {
		return err
	}
	open := s.Open
	if open == nil {
		open = serial.Open
	}
	remote := "serial:" + s.Port
	for attempt := 0; ; attempt++ {
		port, err := open(s.Port, mode)
		if err == nil {
			err = port.SetReadTimeout(200 * time.Millisecond)
		}
		if err == nil {
			s.stats.connections.Add(1)
			s.stats.active.Add(1)
			before := s.stats.bytesRead.Load()
			in.log.Info("serial port open", "port", s.Port, "baud", mode.BaudRate)
			err = in.stream(ctx, &portReader{ctx: ctx, p: port}, func(b []byte) error {
				_, err := port.Write(b)
				return err
			}, remote)
			s.stats.active.Add(-1)
			if s.stats.bytesRead.Load() > before {
				attempt = 0
			}
		}
		if port != nil {
			port.Close()
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := s.Backoff.Delay(attempt)
		in.log.Warn("serial port failed; reopening", "port", s.Port, "err", err, "in", wait)
		if sleep(ctx, wait) != nil {
			return nil
		}
	}
}

// Stats returns the serial reader's counters.
func (s *Serial) Stats() Stats { return s.stats.snapshot() }

// portReader turns a serial port's read timeouts (0, nil) into a poll of
// ctx, so reads stop promptly on shutdown and never report "no progress".
type portReader struct {
	ctx context.Context
	p   io.Reader
}

func (r *portReader) Read(b []byte) (int, error) {
	for {
		if r.ctx.Err() != nil {
			return 0, errStopped
		}
		n, err := r.p.Read(b)
		if n > 0 || err != nil {
			return n, err
		}
	}
}
