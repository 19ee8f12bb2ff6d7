package walship

import (
	"testing"
	"time"

	"github.com/superfly/ltx"
)

func TestCommitLogLag(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var l commitLog
	l.add(3, t0)
	l.add(5, t0.Add(time.Second))
	l.add(5, t0.Add(time.Hour)) // already recorded: ignored
	l.add(9, t0.Add(2*time.Second))
	now := t0.Add(10 * time.Second)
	for _, c := range []struct {
		held uint64
		want time.Duration
	}{
		{0, 10 * time.Second}, // TXID 1 was captured at t0
		{3, 9 * time.Second},  // TXID 4, at t0+1s
		{4, 9 * time.Second},  // TXID 5, at t0+1s
		{5, 8 * time.Second},  // TXID 6, at t0+2s
		{9, 0},                // holds everything
		{12, 0},
	} {
		if got := l.lag(ltx.TXID(c.held), now); got != c.want {
			t.Errorf("lag after %d = %v, want %v", c.held, got, c.want)
		}
	}
	l.forget(5)
	if got := l.lag(0, now); got != 8*time.Second {
		t.Errorf("after forgetting through 5: lag %v, want 8s", got)
	}
}

// TestCommitLogBounded: a replica that never catches up does not grow the
// log without bound, and its lag stays the age of its oldest missing TXID.
func TestCommitLogBounded(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var l commitLog
	for i := 1; i <= 3*maxCommits; i++ {
		l.add(ltx.TXID(uint64(i)), t0.Add(time.Duration(i)*time.Second))
	}
	if n := len(l.entries); n > maxCommits {
		t.Fatalf("%d entries, want at most %d", n, maxCommits)
	}
	now := t0.Add(time.Duration(3*maxCommits+1) * time.Second)
	if got, want := l.lag(0, now), now.Sub(t0.Add(time.Second)); got != want {
		t.Errorf("lag of an empty replica %v, want %v", got, want)
	}
	// Merged entries overstate, never understate.
	held := uint64(2 * maxCommits)
	if got, want := l.lag(ltx.TXID(held), now), now.Sub(t0.Add(time.Duration(held+1)*time.Second)); got < want {
		t.Errorf("lag after %d = %v, want at least %v", held, got, want)
	}
}
