package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/walship/walship"
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
