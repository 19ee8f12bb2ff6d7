package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listen returns a datagram socket at addr, as systemd opens one.
func listen(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestSend(t *testing.T) {
	for _, tc := range []struct{ name, addr string }{
		{"path", filepath.Join(t.TempDir(), "notify")},
		{"abstract", "@walship-sdnotify-test-" + strconv.Itoa(os.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := listen(t, tc.addr)
			t.Setenv("NOTIFY_SOCKET", tc.addr)
			n, err := New()
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if err := n.Send(Ready, Status("2 databases\nreplicating")); err != nil {
				t.Fatal(err)
			}
			if got, want := receive(t, conn), "READY=1\nSTATUS=2 databases replicating\n"; got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
			if err := n.Send(Watchdog); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, conn); got != "WATCHDOG=1\n" {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestUnset(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n, err := New()
	if err != nil || n != nil {
		t.Fatalf("New() = %v, %v; want nil, nil", n, err)
	}
	// A nil Notifier is usable and silent.
	if err := n.Send(Ready); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBadSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "vsock:2:1234")
	if _, err := New(); err == nil {
		t.Fatal("vsock address accepted")
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent"))
	if _, err := New(); err == nil {
		t.Fatal("missing socket accepted")
	}
}

func TestWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		fails     bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, false},
		{"30000000", me, 30 * time.Second, false},
		{"30000000", "1", 0, false}, // inherited: another process's watchdog
		{"abc", "", 0, true},
		{"0", "", 0, true},
		{"30000000", "x", 0, true},
	} {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		got, err := WatchdogInterval()
		if (err != nil) != tc.fails || got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: got %v, %v", tc.usec, tc.pid, got, err)
		}
	}
}
