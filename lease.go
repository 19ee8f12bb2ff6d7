package walship

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/lease"
	"github.com/walship/walship/internal/ship"
)

// leaseKeeper is the database's hold on the primary role (Options.LeaseTTL):
// the lease at its replica's path, and the renewal running in the
// background while the database replicates.
type leaseKeeper struct {
	mu sync.Mutex
	// node is this DB's identity as a lease holder: one for the DB's
	// life, so that an Open tried again after a failure finds the lease
	// its first try acquired its own.
	node   string
	holder *lease.Holder
	// standby and promotion are for Status: the copy while standing
	// by, and what the promotion did.
	standby   *StandbyStatus
	promotion *PromotionStatus
	// standing is set while Standby runs, until the promotion; seen is
	// the lease's holder as the standby last read it ("" for none).
	standing bool
	seen     string
	// following and watching are why the standby's copy could not be
	// brought up to the replica, and why the lease could not be read,
	// since when: a standby that cannot do either would not promote well.
	following, watching failure
	// awaitingWrite is set from the promoted database's opening to its
	// first captured commit past opened, which completes the failover's
	// time (a full copy staged at the opening is not a write).
	awaitingWrite atomic.Bool
	opened        ltx.TXID
	stop          context.CancelFunc // ends the renewal; nil when none runs
	done          chan struct{}
}

// forgetLostLease drops a holder that no longer holds the lease (a Run
// before this one lost or released it): a new Run takes the lease anew.
func (db *DB) forgetLostLease() {
	db.lease.mu.Lock()
	defer db.lease.mu.Unlock()
	if h := db.lease.holder; h != nil && h.Valid() != nil {
		db.lease.holder = nil
	}
}

// LeaseTTL returns the database's lease TTL (Options.LeaseTTL), zero
// without a lease.
func (db *DB) LeaseTTL() time.Duration { return db.opts.LeaseTTL }

// setStandby changes the standby's status with f (a new one if none yet).
func (k *leaseKeeper) setStandby(f func(*StandbyStatus)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := StandbyStatus{}
	if k.standby != nil {
		st = *k.standby
	}
	f(&st)
	k.standby = &st
}

// promoted records the end of standing by: this node is the holder node,
// and p what its promotion did.
func (k *leaseKeeper) promoted(node string, p *PromotionStatus) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.node, k.promotion = node, p
	k.standby, k.standing, k.seen = nil, false, ""
	k.following.set(nil)
	k.watching.set(nil)
}

// awaitFirstWrite starts waiting for the promoted database's first
// write, once it opened at TXID opened; nothing without a promotion.
func (k *leaseKeeper) awaitFirstWrite(opened ltx.TXID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.promotion != nil && k.promotion.FirstWrite.IsZero() {
		k.opened = opened
		k.awaitingWrite.Store(true)
	}
}

// standbyFailure returns the older of the standby's failures, "" when
// neither fails.
func (k *leaseKeeper) standbyFailure() (string, time.Time) {
	err, since := k.following.get()
	if werr, wsince := k.watching.get(); werr != "" && (err == "" || wsince.Before(since)) {
		err, since = werr, wsince
	}
	return err, since
}

// firstWrite completes the failover's time once the promoted database
// captured its first commit past its opening, at at.
func (db *DB) firstWrite(txid ltx.TXID, at time.Time) {
	db.lease.mu.Lock()
	p := db.lease.promotion
	if p == nil || txid <= db.lease.opened || !p.FirstWrite.IsZero() {
		db.lease.mu.Unlock()
		return
	}
	p.FirstWrite, p.Failover = at, at.Sub(p.ExpiredAt)
	db.lease.awaitingWrite.Store(false)
	db.lease.mu.Unlock()
	db.log.Warn("failover complete: the promoted database accepted its first write", "txid", txid.String(),
		"expiry_to_first_write", p.Failover.Round(time.Millisecond).String())
}

// acquireLease acquires the lease at the database's replica before
// anything is written there (the owner record included), and makes every
// write of the replica ask whether the lease is still held. Another node's
// lease is an error wrapping lease.ErrHeld that names it. A lease this DB
// already holds (Run acquires it before the database file exists) is kept.
func (db *DB) acquireLease(ctx context.Context, w ship.Writer) error {
	if db.opts.LeaseTTL == 0 {
		return nil
	}
	if len(db.replicas) != 1 {
		return fmt.Errorf("database %s: a lease (lease-ttl) needs exactly one replica, where the lease is kept and the standby follows; it has %d", db.path, len(db.replicas))
	}
	r := db.replicas[0]
	if err := lease.Check(r.Client); err != nil {
		return fmt.Errorf("database %s: %w", db.path, err)
	}
	h := db.LeaseHolder()
	if h != nil {
		if err := h.Valid(); err != nil {
			// Lost while the database was being opened: for good, as
			// whenever this node loses it (a standby may hold it now).
			return fmt.Errorf("database %s: %w", db.path, err)
		}
	} else {
		db.lease.mu.Lock()
		if db.lease.node == "" {
			db.lease.node = w.Me.Run
		}
		node := db.lease.node
		db.lease.mu.Unlock()
		h = lease.NewHolder(r.Client, lease.Record{Node: node, Host: w.Me.Host, PID: w.Me.PID, Path: db.path, SyncIntervalMillis: db.opts.SyncInterval.Milliseconds(), Application: db.opts.StopsApplication}, db.opts.LeaseTTL, db.log.With("replica", r.Name))
		if err := h.Acquire(ctx, uint64(r.up.Pos().TXID)); err != nil {
			return fmt.Errorf("database %s: %w", db.path, err)
		}
		db.lease.mu.Lock()
		db.lease.holder = h
		db.lease.mu.Unlock()
		h.WatchHandover(func() {
			db.log.Warn("a handover was requested (walship promote): stop cleanly, and the lease is released to the standby once the replica holds every commit")
			db.handover.Store(true)
			db.roleChanged()
		})
		db.log.Info("acquired the lease on the primary role", "replica", r.Name, "ttl", db.opts.LeaseTTL.String(), "renew_every", lease.RenewEvery(db.opts.LeaseTTL).String())
	}
	w.Lease = h
	r.up.SetWriter(w)
	return nil
}

// keepLease renews the lease in the background until endLease. When it is
// lost (not renewed in time, or taken over) the replica stops at once: it
// writes nothing more, and Halted says why, which stops an application
// run with -exec.
func (db *DB) keepLease() {
	db.lease.mu.Lock()
	defer db.lease.mu.Unlock()
	h := db.lease.holder
	if h == nil || db.lease.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	db.lease.stop, db.lease.done = cancel, done
	r := db.replicas[0]
	go func() {
		defer close(done)
		pos := func() lease.Position {
			return lease.Position{TXID: uint64(r.up.Pos().TXID), Captured: db.capturedTXID.Load()}
		}
		h.Keep(ctx, pos, func(err error) {
			db.log.Error("lost the lease on the primary role; walship writes nothing more to the replica", "replica", r.Name, "error", err)
			r.up.Halt(err)
			db.roleChanged()
		})
	}()
}

// roleChanged tells Options.RoleChanged, if set, that the lease was lost
// or a handover requested.
func (db *DB) roleChanged() {
	if db.opts.RoleChanged != nil {
		db.opts.RoleChanged()
	}
}

// SetRoleChanged sets Options.RoleChanged, before Run.
func (db *DB) SetRoleChanged(f func()) { db.opts.RoleChanged = f }

// endLease stops renewing the lease: it expires a TTL later, and a standby
// takes it over then.
func (db *DB) endLease() {
	db.lease.mu.Lock()
	stop, done := db.lease.stop, db.lease.done
	db.lease.stop, db.lease.done = nil, nil
	db.lease.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// LeaseHolder returns the database's lease holder, nil without a lease
// (Options.LeaseTTL) or before Open acquired it.
func (db *DB) LeaseHolder() *lease.Holder {
	db.lease.mu.Lock()
	defer db.lease.mu.Unlock()
	return db.lease.holder
}

// standing reports whether the database stands by (DB.Standby, until
// the promotion).
func (db *DB) standing() bool {
	db.lease.mu.Lock()
	defer db.lease.mu.Unlock()
	return db.lease.standing
}

// leaseStatus returns the lease's part of Status, nil without a lease.
func (db *DB) leaseStatus() *LeaseStatus {
	if db.opts.LeaseTTL == 0 {
		return nil
	}
	db.lease.mu.Lock()
	defer db.lease.mu.Unlock()
	ls := &LeaseStatus{TTL: db.opts.LeaseTTL, Holder: db.lease.seen}
	if db.lease.standby != nil {
		st := *db.lease.standby
		ls.Standby = &st
	}
	if db.lease.promotion != nil {
		p := *db.lease.promotion
		ls.Promotion = &p
	}
	if db.lease.holder != nil {
		ls.Held = db.lease.holder.Valid() == nil
	}
	return ls
}

// releaseLease hands the lease over at the end of Run, once the replica
// holds every TXID captured: a standby then takes it at once, with every
// commit (a switchover that loses none). Otherwise the lease is left to
// expire, and a standby takes over after its TTL, as after a crash.
func (db *DB) releaseLease(ctx context.Context) {
	db.endLease()
	h := db.LeaseHolder()
	if h == nil {
		return
	}
	r := db.replicas[0]
	if err := h.Valid(); err != nil {
		db.log.Warn("not releasing the lease: this node no longer holds it", "error", err)
		return
	}
	if held, captured := r.up.Pos().TXID, db.cap.Pos().TXID; held < captured || r.up.Stopped() != nil {
		db.log.Warn("not releasing the lease: the replica does not hold every commit; a standby takes over when it expires", "replica_txid", held.String(), "captured_txid", captured.String())
		return
	}
	ctx, cancel := context.WithTimeout(ctx, h.TTL())
	defer cancel()
	if err := h.Release(ctx, uint64(r.up.Pos().TXID)); err != nil {
		db.log.Warn("could not release the lease; a standby takes over when it expires", "error", err)
		return
	}
	db.log.Info("released the lease: the replica holds every commit, and a standby may take the primary role at once", "txid", r.up.Pos().TXID.String())
}

// HandoverRequested reports whether a manual switchover (walship promote)
// asked this database's node to hand its lease over: the caller stops
// cleanly (its application first), and Run releases the lease once the
// replica holds every commit.
func (db *DB) HandoverRequested() bool { return db.handover.Load() }

// HandoverRequested reports whether any database of the store was asked
// to hand its lease over.
func (s *Store) HandoverRequested() bool {
	for _, db := range s.Databases() {
		if db.HandoverRequested() {
			return true
		}
	}
	return false
}
