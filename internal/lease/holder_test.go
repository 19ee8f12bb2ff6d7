package lease

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// TestValidWallClock: the lease is lost when the wall clock says the
// deadline passed, though the monotonic clock does not (a machine resumed
// from a suspend: its monotonic clock stood still while a standby's ran).
func TestValidWallClock(t *testing.T) {
	h := NewHolder(file.New(t.TempDir()), node("a"), 3*time.Second, nil)
	now := time.Now()
	h.mu.Lock()
	h.deadline, h.wallDeadline = now.Add(time.Hour), now.Round(0).Add(-time.Millisecond)
	h.mu.Unlock()
	if err := h.Valid(); !errors.Is(err, ErrLost) {
		t.Fatalf("the wall clock past the deadline: Valid = %v; want ErrLost", err)
	}
	h = NewHolder(file.New(t.TempDir()), node("a"), 3*time.Second, nil)
	h.mu.Lock()
	h.deadline, h.wallDeadline = now.Add(-time.Millisecond), now.Round(0).Add(time.Hour)
	h.mu.Unlock()
	if err := h.Valid(); !errors.Is(err, ErrLost) {
		t.Fatalf("the monotonic clock past the deadline: Valid = %v; want ErrLost", err)
	}
}

// flaky answers one record write with a conflict (as a store's client
// that retried a write which had landed does), and the next unreachable
// reads with a network error.
type flaky struct {
	storage.Client
	conflict    atomic.Bool
	unreachable atomic.Int32
}

func (c *flaky) WriteRecord(ctx context.Context, name string, data []byte, version string) (string, error) {
	if c.conflict.CompareAndSwap(true, false) {
		c.Client.WriteRecord(ctx, name, data, version)
		return "", storage.ErrConflict
	}
	return c.Client.WriteRecord(ctx, name, data, version)
}

func (c *flaky) ReadRecord(ctx context.Context, name string) ([]byte, string, error) {
	if c.unreachable.Add(-1) >= 0 {
		return nil, "", errors.New("connection reset by peer (test)")
	}
	return c.Client.ReadRecord(ctx, name)
}

// TestRenewConflictThenUnreachable: a renewal that meets a conflict and
// cannot read the record to see why is not a lost lease: the holder keeps
// it until its deadline, and the next renewal finds its own write.
func TestRenewConflictThenUnreachable(t *testing.T) {
	ctx := context.Background()
	c := &flaky{Client: file.New(t.TempDir())}
	h := NewHolder(c, node("a"), time.Minute, nil)
	if err := h.Acquire(ctx, 1); err != nil {
		t.Fatal(err)
	}
	c.conflict.Store(true)
	c.unreachable.Store(2) // the write's own look, then Renew's
	err := h.Renew(ctx, Position{TXID: 2})
	if err == nil || errors.Is(err, ErrLost) {
		t.Fatalf("a conflict, then an unreachable store: Renew = %v; want an error that is not ErrLost", err)
	}
	if err := h.Valid(); err != nil {
		t.Fatalf("after the failed renewal, Valid = %v; want the lease still held until its deadline", err)
	}
	if err := h.Renew(ctx, Position{TXID: 3}); err != nil {
		t.Fatalf("the next renewal: %v", err)
	}
	// A conflict met by the write itself, readable: this node's own
	// landed write, taken as done.
	c.conflict.Store(true)
	if err := h.Renew(ctx, Position{TXID: 4}); err != nil {
		t.Fatalf("a renewal whose landed write was sent again: %v", err)
	}
	if rec, _, err := Read(ctx, c); err != nil || rec.Node != "a" || rec.TXID != 4 {
		t.Fatalf("the record: %+v, %v; want this node's, at TXID 4", rec, err)
	}
}

// TestBound: a context bound by the lease lives while the holder keeps
// renewing it, past the first deadline, and ends, with ErrLost as its
// cause, once the holder stops renewing.
func TestBound(t *testing.T) {
	ctx := context.Background()
	c := file.New(t.TempDir())
	ttl := 3 * time.Second
	h := NewHolder(c, node("a"), ttl, nil)
	if err := h.Acquire(ctx, 1); err != nil {
		t.Fatal(err)
	}
	first := h.Deadline()
	kctx, stopKeeping := context.WithCancel(ctx)
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		h.Keep(kctx, func() Position { return Position{TXID: 1} }, func(error) {})
	}()
	bctx, done := h.Bound(ctx)
	defer done()
	time.Sleep(time.Until(first) + 200*time.Millisecond)
	// Alive exactly while the lease is held (a renewal that was late on a
	// loaded machine ends both).
	if (bctx.Err() == nil) != (h.Valid() == nil) {
		t.Fatalf("past the first deadline: the bound context's error is %v while Valid = %v", bctx.Err(), h.Valid())
	}
	stopKeeping()
	<-kept
	select {
	case <-bctx.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the bound context outlived the lease")
	}
	if cause := context.Cause(bctx); !errors.Is(cause, ErrLost) {
		t.Fatalf("the bound context ended with %v; want ErrLost as its cause", cause)
	}
	if err := h.Valid(); !errors.Is(err, ErrLost) {
		t.Fatalf("the bound context ended while Valid = %v", err)
	}
}
