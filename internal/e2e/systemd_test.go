package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSystemdNotify runs walship as systemd runs a Type=notify unit with
// WatchdogSec: a datagram socket named by NOTIFY_SOCKET receives READY=1
// once the database replicates, a STATUS= line, watchdog pings at half of
// WATCHDOG_USEC, and STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	bin := Binary(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	w := startWriter(t, dbPath)
	defer w.stop(t)
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 1000)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()

	const watchdogUsec = 400_000 // pings every 200ms
	p := startWalship(t, bin, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=400000"}, "replicate", dbPath, filepath.Join(dir, "replica"))
	var ready, status bool
	pings := 0
	var pingTimes []time.Time
	deadline := time.After(30 * time.Second)
	for !ready || !status || pings < 5 {
		select {
		case m := <-msgs:
			for _, line := range strings.Split(strings.TrimSpace(m), "\n") {
				switch {
				case line == "READY=1":
					ready = true
				case strings.HasPrefix(line, "STATUS=") && strings.Contains(line, "1 replicating") && strings.Contains(line, "in sync"):
					status = true
				case line == "WATCHDOG=1":
					pings++
					pingTimes = append(pingTimes, time.Now())
				}
			}
		case <-deadline:
			t.Fatalf("ready %v, status %v, %d watchdog pings after 30s\n%s", ready, status, pings, p.output())
		}
	}
	if gap := pingTimes[len(pingTimes)-1].Sub(pingTimes[len(pingTimes)-2]); gap > watchdogUsec*time.Microsecond {
		t.Errorf("watchdog pings %v apart, more than WATCHDOG_USEC", gap)
	}
	p.terminate(t)
	// What walship sent before it exited is in the socket: read it, then
	// let the reader end.
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	stopping := false
	for m := range msgs {
		stopping = stopping || strings.Contains(m, "STOPPING=1\n")
	}
	if !stopping {
		t.Fatalf("no STOPPING=1 on SIGTERM\n%s", p.output())
	}
}
