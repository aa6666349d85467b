package systemd_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume/edge/systemd"
)

// listen opens a unixgram socket as systemd does and returns a channel of
// the messages it receives.
func listen(t *testing.T, name string) <-chan string {
	t.Helper()
	addr := name
	if strings.HasPrefix(name, "@") {
		addr = "\x00" + name[1:]
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return msgs
}

func next(t *testing.T, msgs <-chan string) string {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
		return ""
	}
}

func TestNotify(t *testing.T) {
	for name, socket := range map[string]string{
		"PathSocket":     filepath.Join(t.TempDir(), "notify"),
		"AbstractSocket": "@plume-test-" + strings.ReplaceAll(t.Name(), "/", "-"),
	} {
		t.Run(name, func(t *testing.T) {
			msgs := listen(t, socket)
			n := systemd.New(socket, "", "", 1)
			for _, send := range []func() error{n.Ready, func() error { return n.Status("spool 3") }, n.Watchdog, n.Stopping} {
				if err := send(); err != nil {
					t.Fatal(err)
				}
			}
			for _, want := range []string{"READY=1", "STATUS=spool 3", "WATCHDOG=1", "STOPPING=1"} {
				if got := next(t, msgs); got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
		})
	}
}

func TestOutsideSystemd(t *testing.T) {
	var nilN *systemd.Notifier
	for _, n := range []*systemd.Notifier{nilN, systemd.New("", "30000000", "", 1)} {
		if n.Enabled() || n.WatchdogInterval() != 0 {
			t.Fatal("enabled without NOTIFY_SOCKET")
		}
		if err := n.Ready(); err != nil {
			t.Fatal(err)
		}
		if err := n.RunWatchdog(context.Background(), slog.New(slog.DiscardHandler), nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWatchdogInterval(t *testing.T) {
	for _, tc := range []struct {
		name      string
		usec, pid string
		want      time.Duration
	}{
		{"OK", "30000000", "", 30 * time.Second},
		{"OKOurPID", "20000000", "42", 20 * time.Second},
		{"OtherPID", "20000000", "43", 0},
		{"Garbage", "soon", "", 0},
		{"Zero", "0", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := systemd.New("/run/notify", tc.usec, tc.pid, 42).WatchdogInterval(); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRunWatchdog(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "notify")
	msgs := listen(t, socket)
	n := systemd.New(socket, "40000", "", 1) // 40 ms: fed every 20 ms
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	checks := 0
	sick := errors.New("spool stuck")
	err := n.RunWatchdog(ctx, slog.New(slog.DiscardHandler), func(context.Context) error {
		checks++
		if checks > 3 {
			return sick
		}
		return nil
	})
	if !errors.Is(err, sick) {
		t.Fatalf("got %v, want the health error", err)
	}
	for range 3 {
		if got := next(t, msgs); got != "WATCHDOG=1" {
			t.Fatalf("got %q", got)
		}
	}
	select {
	case m := <-msgs:
		t.Fatalf("fed the watchdog while unhealthy: %q", m)
	case <-time.After(100 * time.Millisecond):
	}
}
