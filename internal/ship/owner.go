package ship

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/walship/walship/internal/owner"
)

// Claim makes the database the owner of the replica's destination (see
// package owner), taking it over if the Writer says so, or adopting it
// when adopt says that the database is the replica's (owner.Request). A
// destination another database owns is an error wrapping
// owner.ErrNotOwner, kept as the replica's, which then writes nothing;
// owner.ErrUnproven is not kept: the caller may claim again with adopt.
//
// Only the claims when the database opens may take over or adopt: the
// engine then knows where the database's history starts. A claim made
// later (the destination did not answer at start) never does.
func (r *Replica) Claim(ctx context.Context, adopt bool) (owner.Claimed, error) {
	r.mu.Lock()
	takeover := r.writer.Takeover
	r.mu.Unlock()
	return r.claim(ctx, takeover, adopt)
}

func (r *Replica) claim(ctx context.Context, takeover, adopt bool) (owner.Claimed, error) {
	r.mu.Lock()
	req := owner.Request{Me: r.writer.Me, Takeover: takeover, Adopt: adopt, Newest: uint64(r.pos.TXID)}
	r.mu.Unlock()
	c, err := owner.Claim(ctx, r.client, req, time.Now())
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if errors.Is(err, owner.ErrNotOwner) && !errors.Is(err, owner.ErrUnproven) {
			r.err, r.lost = err, err
		}
		return owner.Claimed{}, err
	}
	r.claimedAt = time.Now()
	if c.TookOver {
		r.log.Warn("took the replica over from another database: its history stays restorable up to the takeover, and this database's history starts apart from it, with a snapshot",
			"previous_owner", c.Previous.String())
	}
	return c, nil
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
	r.mu.Lock()
	held := r.writer.Lease
	r.mu.Unlock()
	if held != nil {
		if err := held(); err != nil {
			r.Halt(err)
			return err
		}
	}
	if claimedAt.IsZero() {
		_, err := r.claim(ctx, false, false)
		if errors.Is(err, owner.ErrUnproven) {
			r.mu.Lock()
			r.err, r.lost = err, err
			r.mu.Unlock()
		}
		return err
	}
	if time.Since(claimedAt) < recheck {
		return nil
	}
	r.mu.Lock()
	me := r.writer.Me
	r.mu.Unlock()
	err := owner.Check(ctx, r.client, me)
	if errors.Is(err, owner.ErrNoRecord) {
		// Deleted (by hand, or by a lifecycle rule of the store): claim
		// it again, which cannot take it from anyone, as the create is
		// conditional.
		r.log.Warn("the replica's owner record was deleted; claiming the replica again", "record", owner.RecordName)
		_, err = r.claim(ctx, false, false)
		return err
	}
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

// Halt stops the replica for good: it writes nothing more to its
// destination, and Stopped returns err. The engine calls it when the
// database's lease on the primary role is lost, so that it stops at once
// rather than at its next write.
func (r *Replica) Halt(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost == nil {
		r.err, r.lost = err, err
	}
}
