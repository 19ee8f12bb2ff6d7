package follow

import (
	"testing"
	"time"
)

// TestBusyBackoff: after commits that gave up waiting for readers, the
// follower leaves the copy to them at least as long as it kept new readers
// out (the busy timeout), doubling, and never more than maxBusyBackoff.
func TestBusyBackoff(t *testing.T) {
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := busyBackoff(i + 1); got != w {
			t.Errorf("after %d busy commits: %s; want %s", i+1, got, w)
		}
	}
	if got := busyBackoff(1000); got != maxBusyBackoff {
		t.Errorf("after 1000 busy commits: %s", got)
	}
}
