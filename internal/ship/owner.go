package ship

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/owner"
	"github.com/walship/walship/storage"
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
	// Under a lease the other run stopped writing before its lease
	// expired, which is before this node could take it: nothing to hold.
	if c.MayStillRun(req.Me) && r.writer.Lease == nil {
		hold := 2 * cmp.Or(r.writer.Recheck, ownerRecheck)
		r.hold = &held{until: time.Now().Add(hold), known: r.known, from: r.pos.TXID, previous: c.Previous.String()}
		r.log.Warn("claimed the replica from another run of this database that may still be writing to it (a database restored from the replica while the one it was restored from runs, or a copy of this server); "+
			"holding this database's writes until that run noticed the claim and stopped, since both number their commits from the same TXIDs; this database's commits stay staged meanwhile",
			"previous_owner", c.Previous.String(), "hold", hold.String())
	}
	if c.TookOver {
		r.log.Warn("took the replica over from another database: its history stays restorable up to the takeover, and this database's history starts apart from it, with a snapshot",
			"previous_owner", c.Previous.String())
	}
	return c, nil
}

// ensureOwner is called before every write to the destination: it claims
// the destination the first time, and reads the owner record again once
// the last reading is older than ownerRecheck, so that a process that lost
// the destination stops writing to it. Under a lease it returns ctx bounded
// by the lease (Lease.Bound), for the write that follows (the caller calls
// done after it): a write still waiting for the store when the lease ends
// is cancelled, so that none started before lands long after, when a
// standby may have taken the role over.
func (r *Replica) ensureOwner(ctx context.Context) (wctx context.Context, done context.CancelFunc, err error) {
	r.mu.Lock()
	lost, held := r.lost, r.writer.Lease
	r.mu.Unlock()
	if lost != nil {
		return nil, nil, lost
	}
	if held == nil {
		return ctx, func() {}, r.checkOwner(ctx)
	}
	if err := held.Valid(); err != nil {
		r.Halt(err)
		return nil, nil, err
	}
	wctx, done = held.Bound(ctx)
	if err := r.checkOwner(wctx); err != nil {
		done()
		return nil, nil, err
	}
	return wctx, done, nil
}

// checkOwner claims the destination the first time, and reads the owner
// record again once the last reading is older than ownerRecheck.
func (r *Replica) checkOwner(ctx context.Context) error {
	r.mu.Lock()
	claimedAt, recheck := r.claimedAt, cmp.Or(r.writer.Recheck, ownerRecheck)
	r.mu.Unlock()
	if claimedAt.IsZero() {
		_, err := r.claim(ctx, false, false)
		if errors.Is(err, owner.ErrUnproven) {
			r.mu.Lock()
			r.err, r.lost = err, err
			r.mu.Unlock()
		}
		if err != nil {
			return err
		}
		return r.waitHeld(ctx)
	}
	if err := r.waitHeld(ctx); err != nil {
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

// held is the hold a claim from another run that may still write sets
// (owner.Claimed.MayStillRun): no write before until, twice the owner
// recheck interval, by which that run read the record again before its
// next write and stopped.
type held struct {
	until    time.Time
	known    bool     // from was read from the destination
	from     ltx.TXID // the newest TXID the replica held at the claim
	previous string   // the other run, for messages
}

// waitHeld waits out the hold of the last claim, if any, then makes sure
// that the other run wrote nothing after the claim: if it did, its
// history and this database's share TXIDs, and the replica stops for good
// rather than mix them.
func (r *Replica) waitHeld(ctx context.Context) error {
	r.mu.Lock()
	h := r.hold
	r.mu.Unlock()
	if h == nil {
		return nil
	}
	if d := time.Until(h.until); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if h.known {
		var newest ltx.TXID
		for level := 0; level <= storage.MaxLevel; level++ {
			files, err := r.client.LTXFiles(ctx, level)
			if err != nil {
				return fmt.Errorf("replica %s: list level %d after the claim: %w", r.name, level, err)
			}
			for _, f := range files {
				newest = max(newest, f.MaxTXID)
			}
		}
		if newest > h.from {
			err := fmt.Errorf("replica %s: another run of this database, %s, wrote up to TXID %s to it after this one claimed it at TXID %s "+
				"(a database restored from the replica while the one it was restored from still ran, or a copy of this server): "+
				"its commits and this database's share TXIDs, so walship writes nothing more to it, and that run stops writing too. "+
				"Keep the database that should own the replica, stop the other, and restart it with `walship replicate -takeover`, which starts a new history; "+
				"the other run's commits after TXID %s are in the replica only (`walship restore -txid`): %w",
				r.name, h.previous, newest, h.from, h.from, owner.ErrNotOwner)
			r.mu.Lock()
			r.err, r.lost, r.hold = err, err, nil
			r.mu.Unlock()
			r.log.Error("the replica was written by another run of this database after the claim; walship writes nothing more to it", "error", err)
			return err
		}
	}
	r.mu.Lock()
	if r.hold == h {
		r.hold = nil
	}
	r.mu.Unlock()
	return nil
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
