package analyser

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"go.bug.st/serial"
	"golang.org/x/sys/unix"
)

// openPTY returns the master side of a new pseudo-terminal and the path of
// its slave, which go.bug.st/serial opens like any serial port.
func openPTY(tb testing.TB) (*os.File, string) {
	tb.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		tb.Skipf("no pseudo-terminals here: %v", err)
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		tb.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		tb.Skipf("ptsname: %v", err)
	}
	tb.Cleanup(func() { master.Close() })
	return master, fmt.Sprintf("/dev/pts/%d", n)
}

// TestSerialPTY runs the serial transport on a real pseudo-terminal opened
// by go.bug.st/serial: frames written in pieces on the master side are
// handled and acknowledged on the same line.
func TestSerialPTY(t *testing.T) {
	master, slave := openPTY(t)
	st := &store{}
	s := &Serial{Port: slave, BaudRate: 115200, Backoff: Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		Config: Config{Protocol: ProtocolHJ212, Profile: mustProfile(t, "generic-rsd.yaml"), Handler: st.handle, Logger: testLogger(t)}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	// Write only once the port is open: until serial.Open puts the line in
	// raw mode, the pty's line discipline would echo our bytes back.
	for deadline := time.Now().Add(5 * time.Second); s.Stats().Connections == 0; {
		if time.Now().After(deadline) {
			t.Fatal("serial port not opened")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fr := newFrameReader(master, SplitHJ212(0), MaxFrameLen)
	replies := make(chan Frame, 4)
	go func() {
		for {
			tok, err := fr.next()
			if err != nil {
				return
			}
			f, _ := Decode(tok)
			replies <- f
		}
	}()
	for i := range 2 {
		b := passFrame(t, fmt.Sprintf("2026112810000000%d", i), 2, t0.Add(time.Duration(i)*time.Second))
		master.Write(b[:17])
		time.Sleep(20 * time.Millisecond)
		master.Write(b[17:])
		select {
		case rep := <-replies:
			if rep.CN != CNDataReply || rep.QN != fmt.Sprintf("2026112810000000%d", i) {
				t.Fatalf("reply %+v", rep)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("frame %d not acknowledged over the pty", i)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
	if n := len(st.all()); n != 2 {
		t.Fatalf("handled %d", n)
	}
	if st := s.Stats(); st.RecordsOK != 2 || st.AcksSent != 2 || st.Connections != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// pipePort is a serial.Port over an in-memory pipe, for the reopen test.
type pipePort struct {
	serial.Port // methods the transport does not use panic
	r           *io.PipeReader
	w           io.Writer
}

func (p *pipePort) Read(b []byte) (int, error)                           { return p.r.Read(b) }
func (p *pipePort) Write(b []byte) (int, error)                          { return p.w.Write(b) }
func (p *pipePort) SetReadTimeout(time.Duration) error                   { return nil }
func (p *pipePort) Close() error                                         { return p.r.Close() }
func (p *pipePort) SetMode(*serial.Mode) error                           { return nil }
func (p *pipePort) ResetInputBuffer() error                              { return nil }
func (p *pipePort) GetModemStatusBits() (*serial.ModemStatusBits, error) { return nil, nil }

// TestSerialReopens checks that the port is reopened with backoff after it
// fails (an unplugged USB adapter) and after failed opens.
func TestSerialReopens(t *testing.T) {
	var mu sync.Mutex
	opens := 0
	writers := make(chan *io.PipeWriter, 4)
	open := func(name string, mode *serial.Mode) (serial.Port, error) {
		mu.Lock()
		defer mu.Unlock()
		opens++
		if opens == 2 {
			return nil, errors.New("no such device")
		}
		r, w := io.Pipe()
		writers <- w
		return &pipePort{r: r, w: io.Discard}, nil
	}
	st := &store{}
	s := &Serial{Port: "/dev/ttyUSB9", Open: open, Backoff: Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond},
		Config: Config{Protocol: ProtocolHJ212, Profile: mustProfile(t, "generic-rsd.yaml"), Handler: st.handle, Logger: testLogger(t)}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	w := <-writers
	w.Write(passFrame(t, "20261128100000001", 1, t0))
	w.CloseWithError(errors.New("device unplugged"))
	w = <-writers // reopened after one failed open
	w.Write(passFrame(t, "20261128100000002", 1, t0.Add(time.Second)))
	deadline := time.Now().Add(5 * time.Second)
	for len(st.all()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(st.all()) != 2 || opens != 3 || s.Stats().Connections != 2 {
		t.Fatalf("handled %d, opens %d, stats %+v", len(st.all()), opens, s.Stats())
	}
}

func TestSerialModeErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    *Serial
	}{
		{"ErrParity", &Serial{Parity: "weird"}},
		{"ErrStopBits", &Serial{StopBits: 3}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.s.mode(); err == nil {
				t.Fatal("bad mode accepted")
			}
		})
	}
}
