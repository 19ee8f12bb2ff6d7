package ship

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/walship/walship/internal/owner"
)

// Claim makes the database the owner of the replica's destination (see
// package owner) and reports whether it took the destination over from
// another database. A destination another database owns is an error
// wrapping owner.ErrNotOwner, kept as the replica's: it then writes
// nothing.
//
// Only the claim when the database opens may take over: the engine then
// starts the database's history apart from the old one. A claim made later
// (the destination did not answer at start) never does.
func (r *Replica) Claim(ctx context.Context) (tookOver bool, err error) {
	r.mu.Lock()
	takeover := r.writer.Takeover
	r.mu.Unlock()
	return r.claim(ctx, takeover)
}

func (r *Replica) claim(ctx context.Context, takeover bool) (tookOver bool, err error) {
	r.mu.Lock()
	me := r.writer.Me
	r.mu.Unlock()
	c, err := owner.Claim(ctx, r.client, me, takeover, time.Now())
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if errors.Is(err, owner.ErrNotOwner) {
			r.err, r.lost = err, err
		}
		return false, err
	}
	r.claimedAt = time.Now()
	if c.TookOver {
		r.log.Warn("took the replica over from another database: its history stays restorable up to the takeover, and this database's history starts apart from it, with a snapshot",
			"previous_owner", c.Previous.String())
	}
	return c.TookOver, nil
}

// ensureOwner is called before every write to the destination: it claims
// the destination the first time, and reads the owner record again once
// the last reading is older than ownerRecheck, so that a process that lost
// the destination stops writing to it.
func (r *Replica) ensureOwner(ctx context.Context) error {
	r.mu.Lock()
	claimedAt, lost, recheck := r.claimedAt, r.lost, cmp.Or(r.writer.Recheck, ownerRecheck)
	r.mu.Unlock()
	if lost != nil {
		return lost
	}
	if claimedAt.IsZero() {
		_, err := r.claim(ctx, false)
		return err
	}
	if time.Since(claimedAt) < recheck {
		return nil
	}
	r.mu.Lock()
	me := r.writer.Me
	r.mu.Unlock()
	err := owner.Check(ctx, r.client, me)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case errors.Is(err, owner.ErrNotOwner):
		r.lost = err
	case err == nil:
		r.claimedAt = time.Now()
	}
	return err
}
