// Package sdnotify tells systemd how a service is doing, through the
// notification protocol of sd_notify(3): datagrams of "KEY=VALUE" lines sent
// to the unix socket named by $NOTIFY_SOCKET. It is written against the
// documented wire format, so the static binary needs no libsystemd.
//
// Every function does nothing when $NOTIFY_SOCKET is unset: a process not
// started by systemd with Type=notify behaves as if this package were not
// there.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// The states walship sends (see sd_notify(3)).
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Status returns the STATUS= state: a one-line description of the service
// that systemctl status shows. Line breaks would end the assignment, so they
// become spaces.
func Status(s string) string {
	return "STATUS=" + strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// Notifier sends states to systemd. A nil *Notifier sends nothing, so callers
// need not check whether systemd listens.
type Notifier struct {
	conn *net.UnixConn
}

// New returns a Notifier for the socket named by $NOTIFY_SOCKET, or nil
// when the variable is unset or empty. A name starting with '@' is a socket
// in the abstract namespace, as systemd allows; Go's net package maps it.
func New() (*Notifier, error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil, nil
	}
	if !strings.HasPrefix(addr, "/") && !strings.HasPrefix(addr, "@") {
		// systemd also speaks vsock (vsock:CID:PORT) to virtual machines;
		// a service on the host never gets one.
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q is not a unix socket path (absolute, or @ for an abstract socket); walship cannot notify systemd", addr)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("connect to systemd's notification socket %s (NOTIFY_SOCKET): %w", addr, err)
	}
	return &Notifier{conn: conn}, nil
}

// Send sends the states, one per line, in one datagram: systemd applies
// them together.
func (n *Notifier) Send(states ...string) error {
	if n == nil || len(states) == 0 {
		return nil
	}
	if _, err := n.conn.Write([]byte(strings.Join(states, "\n") + "\n")); err != nil {
		return fmt.Errorf("notify systemd (%s): %w", strings.Join(states, ", "), err)
	}
	return nil
}

// Close closes the socket. It is safe on a nil Notifier.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	return n.conn.Close()
}

// WatchdogInterval returns how often systemd expects WATCHDOG=1 (the unit's
// WatchdogSec, passed as $WATCHDOG_USEC), or zero when no watchdog watches
// this process: the variable is unset, or $WATCHDOG_PID names another
// process (the variables were inherited from a parent).
func WatchdogInterval() (time.Duration, error) {
	usec := os.Getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil {
			return 0, fmt.Errorf("WATCHDOG_PID=%q is not a process ID", pid)
		}
		if p != os.Getpid() {
			return 0, nil
		}
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("WATCHDOG_USEC=" + strconv.Quote(usec) + " is not a positive number of microseconds; check WatchdogSec= in the unit")
	}
	return time.Duration(n) * time.Microsecond, nil
}
