package storage

import (
	"context"

	"golang.org/x/sync/semaphore"
)

// Transfers bounds the transfers of a whole process: how many uploads and
// downloads run at once, and how many bytes they may hold in memory as
// buffers. One value is shared by every client of every database, so memory
// stays flat however many databases a process replicates.
//
// A nil *Transfers imposes no limit.
type Transfers struct {
	slots    *semaphore.Weighted
	bytes    *semaphore.Weighted
	maxBytes int64
}

// Default process-wide limits.
const (
	DefaultTransfers      = 32
	DefaultTransferMemory = 256 << 20
)

// NewTransfers returns limits of n concurrent transfers holding at most
// maxBytes of buffers between them. Zero values take the defaults.
func NewTransfers(n int, maxBytes int64) *Transfers {
	if n <= 0 {
		n = DefaultTransfers
	}
	if maxBytes <= 0 {
		maxBytes = DefaultTransferMemory
	}
	return &Transfers{
		slots:    semaphore.NewWeighted(int64(n)),
		bytes:    semaphore.NewWeighted(maxBytes),
		maxBytes: maxBytes,
	}
}

// Acquire waits for a transfer slot and buf bytes of buffer budget, or for
// ctx to end. A request above the whole budget is granted the whole budget,
// so one large transfer can always run on its own. The returned func gives
// both back; it must be called exactly once.
func (t *Transfers) Acquire(ctx context.Context, buf int64) (release func(), err error) {
	if t == nil {
		return func() {}, ctx.Err()
	}
	buf = min(max(buf, 0), t.maxBytes)
	if err := t.slots.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	if buf > 0 {
		if err := t.bytes.Acquire(ctx, buf); err != nil {
			t.slots.Release(1)
			return nil, err
		}
	}
	return func() {
		if buf > 0 {
			t.bytes.Release(buf)
		}
		t.slots.Release(1)
	}, nil
}
