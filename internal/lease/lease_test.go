package lease

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// clock is a monotonic clock a test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(100000, 0)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func node(name string) Record {
	return Record{Node: name, Host: "host-" + name, PID: 1, Path: "/data/" + name + ".db"}
}

// testAcquireRenew: the first node acquires a free lease, renews it, and its
// deadline runs from the sending of its last write, on its own clock.
func testAcquireRenew(t *testing.T, c storage.Client) {
	ctx := context.Background()
	clk := newClock()
	h := NewHolder(c, node("a"), 3*time.Second, nil)
	h.now = clk.now
	if err := h.Valid(); !errors.Is(err, ErrLost) {
		t.Fatalf("before Acquire, Valid = %v; want ErrLost", err)
	}
	if err := h.Acquire(ctx, 5); err != nil {
		t.Fatalf("acquire a free lease: %v", err)
	}
	if err := h.Valid(); err != nil {
		t.Fatalf("just acquired: %v", err)
	}
	rec, v1, err := Read(ctx, c)
	if err != nil || rec.Node != "a" || rec.TXID != 5 || rec.TTL() != 3*time.Second || rec.Seq != 1 {
		t.Fatalf("record after acquire: %+v, %v", rec, err)
	}
	clk.add(time.Second)
	if err := h.Renew(ctx, Position{TXID: 9, Captured: 12}); err != nil {
		t.Fatalf("renew: %v", err)
	}
	rec, v2, err := Read(ctx, c)
	if err != nil || rec.TXID != 9 || rec.Captured != 12 || rec.Seq != 2 || v2 == v1 {
		t.Fatalf("record after renewal: %+v (version %q, before %q), %v", rec, v2, v1, err)
	}
	// A takeover at the replica's TXID 9 loses the 3 commits captured
	// and not shipped; one at 12 or later loses none it can know of.
	if n := rec.Unshipped(9); n != 3 {
		t.Fatalf("Unshipped(9) = %d; want 3", n)
	}
	if n := rec.Unshipped(12); n != 0 {
		t.Fatalf("Unshipped(12) = %d; want 0", n)
	}
	// The deadline is the renewal's sending + TTL - a quarter.
	if want := clk.now().Add(3*time.Second - 750*time.Millisecond); !h.Deadline().Equal(want) {
		t.Fatalf("deadline %v; want %v", h.Deadline(), want)
	}
	clk.add(2249 * time.Millisecond)
	if err := h.Valid(); err != nil {
		t.Fatalf("just before the deadline: %v", err)
	}
	clk.add(time.Millisecond)
	if err := h.Valid(); !errors.Is(err, ErrLost) {
		t.Fatalf("at the deadline, Valid = %v; want ErrLost", err)
	}
	// Lost for good: a renewal after the deadline does not bring it back.
	if err := h.Renew(ctx, Position{TXID: 10}); !errors.Is(err, ErrLost) {
		t.Fatalf("renewal after the deadline: %v; want ErrLost", err)
	}
	// A restart of the same node (same identity) acquires its own lease again.
	h2 := NewHolder(c, node("a"), 3*time.Second, nil)
	if err := h2.Acquire(ctx, 10); err != nil {
		t.Fatalf("the same node acquires its own lease again: %v", err)
	}
}

// testConflictingHolderRefused: a second node finds the lease held, is
// refused with the holder's name, and writes nothing; of racing nodes
// exactly one acquires a free lease.
func testConflictingHolderRefused(t *testing.T, c storage.Client) {
	ctx := context.Background()
	const n = 6
	var wins atomic.Int32
	var wg sync.WaitGroup
	holders := make([]*Holder, n)
	for i := range n {
		holders[i] = NewHolder(c, node(string(rune('a'+i))), 3*time.Second, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := holders[i].Acquire(ctx, 1)
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, ErrHeld), errors.Is(err, storage.ErrConflict):
			default:
				t.Errorf("node %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d nodes acquired a free lease at once; want exactly 1", wins.Load())
	}
	rec, before, err := Read(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	other := NewHolder(c, node("z"), 3*time.Second, nil)
	err = other.Acquire(ctx, 1)
	if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), rec.Host) {
		t.Fatalf("a second node's acquire: %v; want ErrHeld naming host %s", err, rec.Host)
	}
	if _, after, _ := Read(ctx, c); after != before {
		t.Fatal("a refused node changed the lease record")
	}
	if err := other.Valid(); err == nil {
		t.Fatal("a refused node believes it holds the lease")
	}
}

// testExpiryOnObserversClock: the standby takes over only after seeing the
// same record unchanged for a whole TTL on its own clock, whatever the
// times written in the record; a renewal restarts its count; the holder,
// by its own clock, stopped before; and a holder that was taken over from
// finds out at its next renewal.
func testExpiryOnObserversClock(t *testing.T, c storage.Client) {
	ctx := context.Background()
	ttl := 3 * time.Second
	primaryClock, standbyClock := newClock(), newClock()
	// The primary's wall clock is a day behind: it plays no part.
	primaryClock.add(-24 * time.Hour)
	p := NewHolder(c, node("p"), ttl, nil)
	p.now = primaryClock.now
	if err := p.Acquire(ctx, 1); err != nil {
		t.Fatal(err)
	}
	o := NewObserver(c, ttl)
	o.now = standbyClock.now
	s := NewHolder(c, node("s"), ttl, nil)
	s.now = standbyClock.now

	seen, err := o.Observe(ctx)
	if err != nil || seen.Expired || seen.Record == nil || seen.Record.Node != "p" {
		t.Fatalf("first observation: %+v, %v", seen, err)
	}
	standbyClock.add(2 * time.Second)
	primaryClock.add(2 * time.Second)
	// The primary renews: the standby's count starts again.
	if err := p.Renew(ctx, Position{TXID: 2}); err != nil {
		t.Fatal(err)
	}
	standbyClock.add(2 * time.Second)
	if seen, _ = o.Observe(ctx); seen.Expired || seen.For != 0 {
		t.Fatalf("after a renewal: %+v; want the count restarted", seen)
	}
	if err := s.TakeOver(ctx, seen, 0); !errors.Is(err, ErrHeld) {
		t.Fatalf("take over an unexpired lease: %v; want ErrHeld", err)
	}
	// The primary stops renewing (it is partitioned, or dead).
	standbyClock.add(ttl - time.Millisecond)
	if seen, _ = o.Observe(ctx); seen.Expired {
		t.Fatalf("expired a millisecond early: %+v", seen)
	}
	// By its own clock, moved as much, the primary already stopped.
	primaryClock.add(4*time.Second + ttl - time.Millisecond)
	if err := p.Valid(); !errors.Is(err, ErrLost) {
		t.Fatalf("the primary still believes it holds the lease when the standby is about to take it: %v", err)
	}
	standbyClock.add(time.Millisecond)
	seen, err = o.Observe(ctx)
	if err != nil || !seen.Expired {
		t.Fatalf("after a whole TTL unchanged: %+v, %v; want expired", seen, err)
	}
	if err := s.TakeOver(ctx, seen, 2); err != nil {
		t.Fatalf("take over the expired lease: %v", err)
	}
	rec, _, err := Read(ctx, c)
	if err != nil || rec.Node != "s" || !strings.Contains(rec.TakenOverFrom, "host-p") || rec.HandedOver || rec.TXID != 2 {
		t.Fatalf("record after the takeover: %+v, %v", rec, err)
	}
	// A second standby that saw the same expiry loses the race.
	s2 := NewHolder(c, node("s2"), ttl, nil)
	if err := s2.TakeOver(ctx, seen, 2); !errors.Is(err, ErrHeld) {
		t.Fatalf("a second takeover of the same observation: %v; want ErrHeld", err)
	}
	// The old primary, even with a fresh clock, cannot renew.
	p.mu.Lock()
	p.lost, p.deadline, p.wallDeadline = nil, primaryClock.now().Add(time.Hour), primaryClock.now().Add(time.Hour)
	p.mu.Unlock()
	if err := p.Renew(ctx, Position{TXID: 3}); !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), "host-s") {
		t.Fatalf("the old primary's renewal: %v; want ErrLost naming the new holder", err)
	}
	// Nor acquire it again when restarted.
	if err := NewHolder(c, node("p2"), ttl, nil).Acquire(ctx, 3); !errors.Is(err, ErrHeld) {
		t.Fatalf("the old primary restarted: %v; want ErrHeld", err)
	}
}

// testMissingRecordWaitsTTL: a standby that finds no lease record still
// waits a whole TTL before creating one, since a holder may have lost its
// record (deleted by hand) and still be within its deadline.
func testMissingRecordWaitsTTL(t *testing.T, c storage.Client) {
	clk := newClock()
	o := NewObserver(c, 2*time.Second)
	o.now = clk.now
	seen, err := o.Observe(context.Background())
	if err != nil || seen.Expired || seen.Record != nil {
		t.Fatalf("%+v, %v", seen, err)
	}
	clk.add(2 * time.Second)
	if seen, _ = o.Observe(context.Background()); !seen.Expired {
		t.Fatalf("%+v; want expired after a TTL without a record", seen)
	}
	s := NewHolder(c, node("s"), 2*time.Second, nil)
	if err := s.TakeOver(context.Background(), seen, 0); err != nil {
		t.Fatal(err)
	}
}

// testKeep: the background renewal keeps the lease while the store answers,
// and reports it lost, once, when another node takes it.
func testKeep(t *testing.T, c storage.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A TTL long enough that a loaded machine's renewals (every
	// second) reach the store well within it.
	h := NewHolder(c, node("a"), 3*time.Second, nil)
	if err := h.Acquire(ctx, 1); err != nil {
		t.Fatal(err)
	}
	lost := make(chan error, 2)
	go h.Keep(ctx, func() Position { return Position{TXID: 7} }, func(err error) { lost <- err })
	// Renewals go on: the record's Seq grows while Valid holds.
	deadline := time.Now().Add(20 * time.Second)
	for {
		rec, _, err := Read(ctx, c)
		if err == nil && rec.Seq >= 3 && rec.TXID == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease was not renewed: %+v, %v", rec, err)
		}
		if err := h.Valid(); err != nil {
			t.Fatalf("lost while the store answers: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Another node overwrites it (as a takeover would).
	_, v, _ := Read(ctx, c)
	rec := node("b")
	rec.TTLMillis, rec.Seq = 3000, 100
	if _, err := write(ctx, c, &rec, v); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-lost:
		if !errors.Is(err, ErrLost) {
			t.Fatalf("onLost(%v); want ErrLost", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the holder did not notice that it lost the lease")
	}
	if err := h.Valid(); !errors.Is(err, ErrLost) {
		t.Fatalf("after losing it, Valid = %v", err)
	}
}

// testRestartTakesItsOwnLeaseAfterExpiry: a restarted primary (a new node
// identity, the same database file on the same host) takes its previous
// process's lease once that expired, by its own clock, not before; a
// lease of another database on the same host is refused at once.
func testRestartTakesItsOwnLeaseAfterExpiry(t *testing.T, c storage.Client) {
	ctx := context.Background()
	ttl := time.Second
	first := NewHolder(c, Record{Node: "run1", Host: "h", Path: "/data/app.db"}, ttl, nil)
	if err := first.Acquire(ctx, 3); err != nil {
		t.Fatal(err)
	}
	other := NewHolder(c, Record{Node: "run9", Host: "h", Path: "/data/other.db"}, ttl, nil)
	if err := other.Acquire(ctx, 3); !errors.Is(err, ErrHeld) {
		t.Fatalf("another database's node: %v; want ErrHeld", err)
	}
	begun := time.Now()
	restarted := NewHolder(c, Record{Node: "run2", Host: "h", Path: "/data/app.db"}, ttl, nil)
	if err := restarted.Acquire(ctx, 3); err != nil {
		t.Fatalf("the restarted primary: %v", err)
	}
	if took := time.Since(begun); took < ttl {
		t.Fatalf("took its previous process's lease after %s, before the TTL %s", took, ttl)
	}
	rec, _, err := Read(ctx, c)
	if err != nil || rec.Node != "run2" || !strings.Contains(rec.TakenOverFrom, "run1") {
		t.Fatalf("record: %+v, %v", rec, err)
	}
	first.mu.Lock()
	first.deadline, first.wallDeadline = time.Now().Add(time.Hour), time.Now().Add(time.Hour)
	first.mu.Unlock()
	if err := first.Renew(ctx, Position{TXID: 4}); !errors.Is(err, ErrLost) {
		t.Fatalf("the previous process's renewal: %v; want ErrLost", err)
	}
}

// testReleasedGoesToStandbyFirst: a primary that released its lease (a
// switchover) and is restarted at once by its service manager does not
// take it back at once: a standby takes a released lease at its next
// look, the restarted process only after a whole TTL, so the standby
// wins and the restarted process is refused.
func testReleasedGoesToStandbyFirst(t *testing.T, c storage.Client) {
	ctx := context.Background()
	ttl := 5 * time.Second
	first := NewHolder(c, Record{Node: "run1", Host: "h", Path: "/data/app.db"}, ttl, nil)
	if err := first.Acquire(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := first.Release(ctx, 3); err != nil {
		t.Fatal(err)
	}
	restarted := make(chan error, 1)
	go func() {
		restarted <- NewHolder(c, Record{Node: "run2", Host: "h", Path: "/data/app.db"}, ttl, nil).Acquire(ctx, 3)
	}()
	seen, err := NewObserver(c, ttl).Observe(ctx)
	if err != nil || !seen.Expired {
		t.Fatalf("a standby's look at the released lease: %+v, %v; want expired", seen, err)
	}
	if err := NewHolder(c, node("s"), ttl, nil).TakeOver(ctx, seen, 3); err != nil {
		t.Fatalf("the standby's takeover of the released lease: %v", err)
	}
	select {
	case err := <-restarted:
		if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "host-s") {
			t.Fatalf("the restarted primary: %v; want ErrHeld naming the standby", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the restarted primary neither took the lease nor was refused")
	}
}

// testRelease: a holder that releases the lease stops holding it first,
// and a standby may take it at once, without waiting a TTL.
func testRelease(t *testing.T, c storage.Client) {
	ctx := context.Background()
	p := NewHolder(c, node("p"), time.Minute, nil)
	if err := p.Acquire(ctx, 4); err != nil {
		t.Fatal(err)
	}
	o := NewObserver(c, time.Minute)
	if seen, err := o.Observe(ctx); err != nil || seen.Expired {
		t.Fatalf("a held lease: %+v, %v", seen, err)
	}
	if err := p.Release(ctx, 9); err != nil {
		t.Fatal(err)
	}
	if err := p.Valid(); !errors.Is(err, ErrReleased) {
		t.Fatalf("after the release, Valid = %v; want ErrReleased", err)
	}
	seen, err := o.Observe(ctx)
	if err != nil || !seen.Expired || !seen.Record.Released || seen.Record.TXID != 9 {
		t.Fatalf("a released lease: %+v, %v; want expired at once, at TXID 9", seen, err)
	}
	s := NewHolder(c, node("s"), time.Minute, nil)
	if err := s.TakeOver(ctx, seen, 9); err != nil {
		t.Fatal(err)
	}
	if rec, _, _ := Read(ctx, c); rec.Released || rec.Node != "s" || !rec.HandedOver {
		t.Fatalf("after the takeover: %+v; want held by s, handed over", rec)
	}
	// Its renewals, and a new holder of the same node (the promoted
	// database opening), keep saying how it came to hold the lease.
	if err := s.Renew(ctx, Position{TXID: 10}); err != nil {
		t.Fatal(err)
	}
	if err := NewHolder(c, node("s"), time.Minute, nil).Acquire(ctx, 11); err != nil {
		t.Fatal(err)
	}
	if rec, _, _ := Read(ctx, c); rec.Node != "s" || !rec.HandedOver || !strings.Contains(rec.TakenOverFrom, "host-p") || rec.TXID != 11 {
		t.Fatalf("after renewals: %+v; want still handed over from p", rec)
	}
}

// testHandover: walship promote's request names the current holder; the
// holder's renewals see it (once), and a request left behind never asks a
// later holder.
func testHandover(t *testing.T, c storage.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := RequestHandover(ctx, c, "test", time.Now()); err == nil {
		t.Fatal("a handover was requested with no lease")
	}
	h := NewHolder(c, node("p"), 3*time.Second, nil)
	if err := h.Acquire(ctx, 1); err != nil {
		t.Fatal(err)
	}
	asked := make(chan struct{}, 2)
	h.WatchHandover(func() { asked <- struct{}{} })
	go h.Keep(ctx, func() Position { return Position{TXID: 1} }, func(error) {})
	rec, err := RequestHandover(ctx, c, "test", time.Now())
	if err != nil || rec.Node != "p" {
		t.Fatalf("request: %+v, %v", rec, err)
	}
	select {
	case <-asked:
	case <-time.After(20 * time.Second):
		t.Fatal("the holder did not see the handover request")
	}
	if on, err := HandoverRequested(ctx, c, "s"); on || err != nil {
		t.Fatalf("a request for p asks s: %v, %v", on, err)
	}
}

// TestKeepReportsALossValidFound: a loss another caller of Valid finds
// first (a replica write's check, on the wall clock after a suspend) is
// reported by Keep at once, not at its next renewal a third of the TTL
// later: the command line stops the node and runs the demotion hook on it.
func TestKeepReportsALossValidFound(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Renewals an hour apart: only the loss can wake Keep in this test.
	h := NewHolder(file.New(t.TempDir()), node("a"), 3*time.Hour, nil)
	if err := h.Acquire(ctx, 1); err != nil {
		t.Fatal(err)
	}
	lost := make(chan error, 1)
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		h.Keep(ctx, func() Position { return Position{TXID: 1} }, func(err error) { lost <- err })
	}()
	// The machine resumes from a suspend: its wall clock is past the
	// deadline, and a write's check sees it first.
	h.mu.Lock()
	h.wallDeadline = time.Now().Add(-time.Second)
	h.mu.Unlock()
	if err := h.Valid(); !errors.Is(err, ErrLost) {
		t.Fatalf("Valid past the wall-clock deadline = %v; want ErrLost", err)
	}
	select {
	case err := <-lost:
		if !errors.Is(err, ErrLost) {
			t.Fatalf("onLost(%v); want ErrLost", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Keep did not report the loss Valid found (it waits for its next renewal, an hour away)")
	}
	<-kept
}
