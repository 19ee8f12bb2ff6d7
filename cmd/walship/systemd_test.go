package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/sdnotify"
)

func TestStatusLine(t *testing.T) {
	states := []dbState{
		{path: "/a.db", phase: walship.PhaseReplicating, txid: 0x2a, replicas: []replicaState{{name: "s3", txid: 0x2a}, {name: "nas", txid: 0x20}}},
		{path: "/b.db", phase: walship.PhaseWaiting},
	}
	got := statusLine(states, nil)
	want := "2 databases (1 replicating, 1 waiting); 1 of 2 replicas in sync; newest TXID 000000000000002a"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	states[0].replicas[1].err = errors.New("dial tcp: connection refused\nsecond line")
	got = statusLine(states, []string{"/a.db"})
	for _, want := range []string{"monitor loop stalled: /a.db", "replica nas of /a.db: dial tcp: connection refused"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	states[0].replicas[1].err = errors.New(strings.Repeat("x", 1000))
	if got := statusLine(states, nil); len(got) > 500 {
		t.Errorf("status line of %d bytes", len(got))
	}
}

func TestStarted(t *testing.T) {
	states := []dbState{{phase: walship.PhaseReplicating}, {phase: walship.PhaseStarting}}
	if started(states) {
		t.Fatal("ready while a database is opening")
	}
	states[1].phase = walship.PhaseWaiting // its file does not exist yet
	if !started(states) {
		t.Fatal("not ready with every database replicating or waiting")
	}
}

// TestWatchdogCheck: a loop that goes round between checks is alive; one
// that does not is stalled; a database not yet replicating is not judged.
func TestWatchdogCheck(t *testing.T) {
	var w watchdog
	states := []dbState{{path: "/a.db", phase: walship.PhaseReplicating, beats: 5}, {path: "/b.db", phase: walship.PhaseStarting}}
	if s := w.check(states); len(s) != 0 {
		t.Fatalf("first check: stalled %v", s)
	}
	states[0].beats = 6
	if s := w.check(states); len(s) != 0 {
		t.Fatalf("stalled %v after a round", s)
	}
	states[1].phase, states[1].beats = walship.PhaseReplicating, 1
	if s := w.check(states); len(s) != 1 || s[0] != "/a.db" {
		t.Fatalf("stalled %v, want /a.db", s)
	}
	states[0].beats = 7
	if s := w.check(states); len(s) != 1 || s[0] != "/b.db" {
		t.Fatalf("stalled %v, want /b.db", s)
	}
}

// TestNotifyLoop: READY=1 once the databases started, STATUS= naming a
// stalled loop, no WATCHDOG=1 while a replicating database's loop does not
// go round and pings again once it does, STOPPING=1 at the end.
func TestNotifyLoop(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	n, err := sdnotify.New()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()

	var beats, probes atomic.Uint64
	var stuck atomic.Bool
	stuck.Store(true)
	collect := func() []dbState {
		return []dbState{{path: "/a.db", phase: walship.PhaseReplicating, beats: beats.Load()}}
	}
	probe := func() {
		probes.Add(1)
		if !stuck.Load() {
			beats.Add(1)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		notifyLoop(ctx, slog.New(slog.DiscardHandler), n, 100*time.Millisecond, collect, probe)
	}()

	read := func(until time.Time) []string {
		var got []string
		buf := make([]byte, 4096)
		for {
			conn.SetReadDeadline(until)
			k, err := conn.Read(buf)
			if err != nil {
				return got
			}
			got = append(got, strings.Split(strings.TrimSpace(string(buf[:k])), "\n")...)
		}
	}
	stalled := read(time.Now().Add(600 * time.Millisecond))
	// The first check has no earlier round to compare with: at most one
	// ping, then none.
	if !slices.Contains(stalled, "READY=1") || countOf(stalled, "WATCHDOG=1") > 1 {
		t.Fatalf("while stuck: %q", stalled)
	}
	if !slices.ContainsFunc(stalled, func(s string) bool { return strings.Contains(s, "monitor loop stalled: /a.db") }) {
		t.Errorf("no STATUS= names the stalled loop: %q", stalled)
	}
	stuck.Store(false)
	alive := read(time.Now().Add(600 * time.Millisecond))
	if pings := countOf(alive, "WATCHDOG=1"); pings < 3 {
		t.Errorf("%d pings once the loop goes round: %q", pings, alive)
	}
	cancel()
	<-done
	if end := read(time.Now().Add(time.Second)); !slices.Contains(end, "STOPPING=1") {
		t.Errorf("no STOPPING=1: %q", end)
	}
	if probes.Load() < 5 {
		t.Errorf("the loops were probed %d times", probes.Load())
	}
}

func countOf(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if l == s {
			n++
		}
	}
	return n
}
