// Package systemd speaks systemd's sd_notify protocol for the edge agent:
// it says when the agent is ready and stopping, and keeps the service
// watchdog fed while the agent is healthy. It is pure Go with no
// dependencies: each message is one datagram on the unix socket named by
// $NOTIFY_SOCKET ("@name" is an abstract socket).
//
// Outside systemd (no $NOTIFY_SOCKET) every call does nothing, so the
// agent runs the same from a shell, in tests and under Type=notify.
package systemd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"
)

// Notifier sends state to systemd. The zero value and nil are valid
// notifiers that send nothing.
type Notifier struct {
	socket   string        // NOTIFY_SOCKET, "" when not under systemd
	watchdog time.Duration // WatchdogSec, 0 when the watchdog is off
}

// FromEnv returns the notifier systemd set up for this process through
// $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID.
func FromEnv() *Notifier {
	return New(os.Getenv("NOTIFY_SOCKET"), os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

// New returns a notifier for socket; watchdogUSec and watchdogPID are the
// values of $WATCHDOG_USEC and $WATCHDOG_PID. The watchdog applies only if
// watchdogPID is empty or names pid.
func New(socket, watchdogUSec, watchdogPID string, pid int) *Notifier {
	n := &Notifier{socket: socket}
	if usec, err := strconv.ParseInt(watchdogUSec, 10, 64); err == nil && usec > 0 {
		if watchdogPID == "" || watchdogPID == strconv.Itoa(pid) {
			n.watchdog = time.Duration(usec) * time.Microsecond
		}
	}
	return n
}

// Enabled reports whether the process runs under systemd notification.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// WatchdogInterval returns the service's WatchdogSec, or 0 if the
// watchdog is off.
func (n *Notifier) WatchdogInterval() time.Duration {
	if !n.Enabled() {
		return 0
	}
	return n.watchdog
}

// Notify sends one raw state message such as "READY=1" or
// "STATUS=spooling 3 items".
func (n *Notifier) Notify(state string) error {
	if !n.Enabled() {
		return nil
	}
	name := n.socket
	if name[0] == '@' {
		name = "\x00" + name[1:] // abstract namespace
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Ready tells systemd that start-up finished (Type=notify).
func (n *Notifier) Ready() error { return n.Notify("READY=1") }

// Stopping tells systemd that shutdown began.
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// Status sets the one-line status shown by systemctl status.
func (n *Notifier) Status(s string) error { return n.Notify("STATUS=" + s) }

// Watchdog feeds the watchdog once.
func (n *Notifier) Watchdog() error { return n.Notify("WATCHDOG=1") }

// RunWatchdog feeds the watchdog every half WatchdogSec for as long as
// healthy returns nil, until ctx ends. When healthy fails it stops feeding
// and logs why, so systemd kills and restarts the agent: a wedged agent is
// restarted, a busy one is not. Without a watchdog it returns at once.
func (n *Notifier) RunWatchdog(ctx context.Context, logger *slog.Logger, healthy func(context.Context) error) error {
	interval := n.WatchdogInterval() / 2
	if interval <= 0 {
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := healthy(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			logger.Error("unhealthy; no longer feeding the systemd watchdog", "err", err)
			return fmt.Errorf("watchdog: %w", err)
		}
		if err := n.Watchdog(); err != nil {
			logger.Warn("feed systemd watchdog", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
