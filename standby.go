package walship

// Standby mode: the database's path holds a follower's copy of its
// replica until the primary's lease expires; then this node takes the
// lease, brings the copy up to the replica's newest TXID, and promotes it
// to the live database, which Run then replicates as the replica's owner,
// continuing its history (see internal/lease and restore/follow).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/lease"
	"github.com/walship/walship/internal/staging"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/restore/follow"
	"github.com/walship/walship/storage"
)

// StandbyOptions configure DB.Standby.
type StandbyOptions struct {
	// Interval is how often the follower lists the replica for new
	// files; zero is follow.DefaultInterval.
	Interval time.Duration
	// Following, when set, is told the copy's state after each change:
	// its TXID, the replica's newest, and how far behind it is.
	Following func(follow.Status)
}

// Promotion is what a standby's promotion did.
type Promotion struct {
	// Previous describes the holder whose lease expired, "" when there
	// was no lease record.
	Previous string
	// Observed is how long the lease was seen unchanged before the
	// takeover (at least its TTL).
	Observed time.Duration
	// ExpiredAt is when this node saw the lease expire; PromotedAt when
	// the copy, holding the replica's newest TXID, became the live
	// database.
	ExpiredAt, PromotedAt time.Time
	// TXID is the replica's newest TXID, which the promoted database
	// holds: the new primary's history continues from TXID+1.
	TXID ltx.TXID
	// Released is set when the previous holder released the lease once
	// the replica held its every commit (a switchover): nothing is lost.
	Released bool
	// Unshipped is how many commits the previous holder had captured at
	// its last renewal that the replica does not hold: lost for certain.
	// LossBound is its sync interval: what it committed in about that
	// long before it stopped may be lost too. Both zero after a release.
	Unshipped uint64
	LossBound time.Duration
	// KeptAside is where a database that was not a follower's copy was
	// moved (its commits never merged), "" when there was none.
	KeptAside string
}

// Standby keeps the database's path as a follower's copy of its replica
// and watches the replica's lease (Options.LeaseTTL); it returns once this
// node took the expired lease over and promoted the copy, ready for Run,
// which then renews the same lease. A database at the path that is not a
// follower's copy (an old primary's, which may hold commits the replica
// does not) is kept aside, renamed with its WAL, and never merged. A
// replica without a lease record is never taken: its primary runs without
// lease-ttl, and may still write. A follower that stops (its first
// restore failed: the replica out of reach, or its newest state damaged
// until its primary repairs it) is started again, after a back-off, and
// never promoted meanwhile: the standby does not stop for it. It returns
// ctx's error if ctx ends first.
func (db *DB) Standby(ctx context.Context, opts StandbyOptions) (Promotion, error) {
	var p Promotion
	ttl := db.opts.LeaseTTL
	if ttl == 0 {
		return p, fmt.Errorf("database %s: standby mode needs lease-ttl on the database's entry (and on the primary's): the lease is how the standby knows the primary stopped", db.path)
	}
	if len(db.replicas) != 1 {
		return p, fmt.Errorf("database %s: standby mode needs exactly one replica, which it follows and where the lease is kept; it has %d", db.path, len(db.replicas))
	}
	r := db.replicas[0]
	if err := lease.Check(r.Client); err != nil {
		return p, fmt.Errorf("database %s: %w", db.path, err)
	}
	lock, err := staging.Hold(db.opts.MetaPath)
	if err != nil {
		return p, fmt.Errorf("database %s: standby mode keeps the database as a copy of the replica: %w", db.path, err)
	}
	defer func() {
		if lock != nil {
			lock.Unlock()
		}
	}()

	db.lease.mu.Lock()
	db.lease.standing, db.lease.seen = true, ""
	db.lease.mu.Unlock()
	defer func() {
		db.lease.mu.Lock()
		db.lease.standing = false
		db.lease.mu.Unlock()
	}()

	// copyTXID is the TXID the follower has proved its copy holds against
	// the replica (a first restore, a commit, or a step that found the
	// copy at the replica's newest state): catchUp promotes once it
	// reaches the replica's newest. A copy a follower only opened is
	// proved against its record, not the replica (an interrupted
	// page-size change leaves a state of the replica's TXID that is not
	// its state), so Opened does not set it, and a follower started again
	// starts from zero.
	var copyTXID atomic.Uint64
	// steppedOK is set once a follower brought the copy up to the
	// replica: the back-off of a follower that stops after that starts
	// again from the interval.
	var steppedOK atomic.Bool
	failures := 0 // followers in a row that stopped before that
	fopts := follow.Options{
		Interval: opts.Interval,
		Logger:   db.log,
		Opened: func(s follow.Status) {
			db.lease.setStandby(func(st *StandbyStatus) { st.TXID = s.TXID })
		},
		Applied: func(s follow.Status) {
			copyTXID.Store(uint64(s.TXID))
			db.lease.setStandby(func(st *StandbyStatus) { *st = StandbyStatus{TXID: s.TXID, Replica: s.Newest, Lag: s.Lag} })
			if opts.Following != nil {
				opts.Following(s)
			}
		},
		Stepped: func(s follow.Status, err error) {
			db.lease.following.set(err)
			if err == nil {
				steppedOK.Store(true)
				copyTXID.Store(uint64(s.TXID))
				db.lease.setStandby(func(st *StandbyStatus) { st.TXID, st.Replica = s.TXID, s.Newest })
			}
		},
	}
	fctx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	followed := make(chan error, 1)
	startFollowing := func() {
		copyTXID.Store(0)
		go func() { followed <- follow.Run(fctx, r.Client, db.path, fopts) }()
	}
	startFollowing()
	stopFollower := func() error {
		stopFollowing()
		return <-followed
	}

	obs := lease.NewObserver(r.Client, ttl)
	tick := time.NewTicker(lease.RenewEvery(ttl))
	defer tick.Stop()
	node := db.writer().Run
	var lastHolder string
	toldEmpty, toldNoLease := false, false
	var refollow <-chan time.Time // set while the replica holds no backup yet
	following := true
	for {
		select {
		case <-ctx.Done():
			if following {
				stopFollower()
			}
			return p, ctx.Err()
		case <-refollow:
			refollow, following = nil, true
			startFollowing()
			continue
		case err := <-followed:
			following = false
			if errors.Is(err, restore.ErrNoFiles) {
				// The primary has not shipped its first snapshot yet:
				// nothing to follow, nor to promote, until it has.
				if !toldEmpty {
					toldEmpty = true
					db.log.Info("standby: the replica holds no backup yet; waiting for the primary's first snapshot")
				}
				refollow = time.After(cmp.Or(opts.Interval, follow.DefaultInterval))
				continue
			}
			if !errors.Is(err, follow.ErrNotACopy) || p.KeptAside != "" {
				// The first restore failed (the replica out of reach,
				// or its newest state damaged until its primary
				// repairs it), or a file beside the copy needs an
				// operator: a standby that stopped for good would
				// leave the site without one. It says why (log,
				// status, /healthz) and follows again, never
				// promoting meanwhile.
				if steppedOK.Swap(false) {
					failures = 0
				}
				failures++
				d := storage.RetryPolicy{Base: cmp.Or(opts.Interval, follow.DefaultInterval), Max: maxRefollow, HalfJitter: true}.Delay(failures - 1)
				db.lease.following.set(err)
				db.log.Error("standby: following the replica stopped; starting it again (this standby does not promote until it follows)", "retry_in", d.String(), "error", err)
				refollow = time.After(d)
				continue
			}
			// The staging directory goes aside too: what it staged is
			// that database's history, not the replica's.
			lock.Unlock()
			lock = nil
			if p.KeptAside, err = db.keepAside(); err != nil {
				return p, err
			}
			if lock, err = staging.Hold(db.opts.MetaPath); err != nil {
				return p, fmt.Errorf("database %s: %w", db.path, err)
			}
			db.log.Warn("the database was not a copy of the replica (an old primary's?): kept it aside, with its WAL, and never merged; following the replica from a restore", "kept_aside", p.KeptAside)
			following = true
			startFollowing()
			continue
		case <-tick.C:
		}
		seen, err := obs.Observe(ctx)
		db.lease.watching.set(err)
		if err != nil {
			db.log.Warn("standby: cannot read the lease; the count towards its expiry goes on from its last reading", "error", err)
			continue
		}
		db.lease.mu.Lock()
		db.lease.seen = ""
		if seen.Record != nil {
			db.lease.seen = seen.Record.String()
		}
		db.lease.mu.Unlock()
		if seen.Record != nil && seen.Record.Node != lastHolder {
			lastHolder = seen.Record.Node
			db.log.Info("standby: watching the lease", "holder", seen.Record.String(), "ttl", seen.TTL.String())
		}
		if seen.Record == nil {
			// A replica with a history and no lease has a primary that
			// runs without lease-ttl (or an older walship): it may
			// still write, and nothing would tell. Never promote then.
			if !toldNoLease && following {
				toldNoLease = true
				db.log.Warn("standby: the replica has no lease: its primary does not run with lease-ttl, so this standby cannot tell when it stops and will not promote; set the same lease-ttl on the primary's database")
			}
			continue
		}
		if !seen.Expired || !following {
			// Never promote without a copy of the replica to promote.
			continue
		}
		p.ExpiredAt, p.Observed = time.Now(), seen.For
		p.Previous, p.Released = seen.Record.String(), seen.Record.Released
		h := lease.NewHolder(r.Client, lease.Record{Node: node, Host: db.writer().Host, PID: os.Getpid(), Path: db.path, Application: db.opts.StopsApplication}, ttl, db.log)
		if err := h.TakeOver(ctx, seen, copyTXID.Load()); err != nil {
			// The observer goes on: a record that changed (its holder
			// renewed it, or another standby took it) restarts its
			// count at the next reading; one that did not (a write
			// that failed, or, on SFTP and WebDAV, the record's lock
			// left by a primary killed mid-renewal until it goes stale)
			// is tried again at the next look.
			db.log.Warn("standby: the lease expired, but taking it over failed; trying again at the next look unless it changed", "error", err)
			continue
		}
		db.log.Warn("standby: the primary's lease expired; took it over, bringing the copy to the replica's newest TXID", "previous_holder", p.Previous, "unchanged_for", seen.For.Round(time.Millisecond).String())
		if err := db.catchUp(ctx, h, &copyTXID, followed, &p); err != nil {
			if !errors.Is(err, errFollowerStopped) {
				stopFollower()
			}
			return p, err
		}
		if !p.Released {
			p.Unshipped, p.LossBound = seen.Record.Unshipped(uint64(p.TXID)), seen.Record.SyncInterval()
		}
		if err := stopFollower(); err != nil {
			return p, fmt.Errorf("database %s: standby: stopping the follower before the promotion: %w", db.path, err)
		}
		if err := h.Valid(); err != nil {
			return p, fmt.Errorf("database %s: standby: %w", db.path, err)
		}
		restored, err := follow.Promote(ctx, db.path)
		if err != nil {
			return p, fmt.Errorf("database %s: standby: %w", db.path, err)
		}
		if !restored {
			db.log.Warn("standby: the copy's page 1 could not be given back the replica's header; replication goes on with a full copy of the database")
		}
		lock.Unlock()
		lock = nil
		if err := RecordRestored(ctx, r.Client, db.opts.MetaPath); err != nil {
			return p, err
		}
		// Run's Open acquires the lease as this same node, which renews
		// the one just taken.
		p.PromotedAt = time.Now()
		db.lease.promoted(node, &PromotionStatus{TXID: p.TXID, Previous: p.Previous, At: p.PromotedAt, ExpiredAt: p.ExpiredAt,
			Promotion: p.PromotedAt.Sub(p.ExpiredAt), Released: p.Released, Unshipped: p.Unshipped, LossBound: p.LossBound})
		db.log.Warn("standby: promoted the copy to the live database; replication goes on with the replica's history", "txid", p.TXID.String(), "next_txid", (p.TXID + 1).String(),
			"expiry_to_promotion", p.PromotedAt.Sub(p.ExpiredAt).Round(time.Millisecond).String())
		db.logLoss(p)
		return p, nil
	}
}

// maxRefollow bounds how long a standby waits before it follows again
// after its follower stopped.
const maxRefollow = 30 * time.Second

// catchUp renews the lease h just took while the follower applies what
// the replica holds, and returns once the copy holds the replica's newest
// TXID. Nothing else writes the replica now: the lease is this node's.
func (db *DB) catchUp(ctx context.Context, h *lease.Holder, copyTXID *atomic.Uint64, followed <-chan error, p *Promotion) error {
	r := db.replicas[0]
	kctx, stopKeeping := context.WithCancel(ctx)
	lost := make(chan error, 1)
	// The renewals say the replica's newest TXID once it is listed (the
	// copy's before): a record's TXID never goes back.
	var listed atomic.Uint64
	pos := func() lease.Position {
		txid := max(copyTXID.Load(), listed.Load())
		return lease.Position{TXID: txid, Captured: txid}
	}
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		h.Keep(kctx, pos, func(err error) { lost <- err })
	}()
	// Open acquires the lease as this node once the copy is promoted: no
	// renewal of this one may still be in flight then.
	defer func() {
		stopKeeping()
		<-kept
	}()
	var l *restore.Listing
	for attempt := 0; ; attempt++ {
		var err error
		if l, err = restore.List(ctx, r.Client); err == nil {
			break
		}
		// The lease is this node's while it renews it: a listing that
		// fails is tried again rather than the promotion given up.
		db.log.Warn("standby: cannot list the replica to promote its newest state; trying again", "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-lost:
			return fmt.Errorf("database %s: standby: lost the lease before the promotion: %w", db.path, err)
		case <-time.After(storage.LoopRetry.Delay(attempt)):
		}
	}
	p.TXID = l.Newest()
	listed.Store(uint64(p.TXID))
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for ltx.TXID(copyTXID.Load()) < p.TXID {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-lost:
			return fmt.Errorf("database %s: standby: lost the lease before the promotion: %w", db.path, err)
		case err := <-followed:
			return fmt.Errorf("database %s: standby: %w: %w", db.path, errFollowerStopped, err)
		case <-poll.C:
		}
	}
	return nil
}

// errFollowerStopped is wrapped by catchUp's error when the follower
// stopped on its own before the copy caught up.
var errFollowerStopped = errors.New("following the replica stopped before the promotion")

// keepAside renames the database at the path, with its WAL and shared
// memory files, and its staging directory, to names beside them that say
// when, and returns the database's new name: a standby never merges a
// database that is not a copy of the replica.
func (db *DB) keepAside() (string, error) {
	aside := db.path + ".diverged-" + time.Now().UTC().Format("20060102T150405Z")
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if err := os.Rename(db.path+suffix, aside+suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("keep the database %s aside as %s: %w", db.path+suffix, aside+suffix, err)
		}
	}
	meta := db.opts.MetaPath
	if err := os.Rename(meta, meta+".diverged-"+time.Now().UTC().Format("20060102T150405Z")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("keep the staging directory %s aside: %w", meta, err)
	}
	return aside, nil
}

// logLoss says what the failover lost: nothing after a release; otherwise
// the TXIDs the previous primary had captured and not shipped at its last
// renewal, for certain, and what it committed after that renewal and did
// not ship, which no node can count: after a crash, at most its last sync
// interval; cut off from the store, what its application committed until
// it was stopped (about three quarters of the TTL, and the stop's grace).
func (db *DB) logLoss(p Promotion) {
	switch {
	case p.Released:
		db.log.Info("standby: the previous primary released the lease once the replica held its every commit: no commit was lost")
	case p.Unshipped > 0:
		db.log.Error("standby: TXIDs of the previous primary are lost: it had captured them, and they never reached the replica (its uploads were failing or behind); what it committed after its last lease renewal is lost too",
			"lost_txids_at_least", p.Unshipped, "replica_txid", p.TXID.String(), "its_sync_interval", p.LossBound.String())
	default:
		db.log.Warn("standby: the previous primary stopped without releasing the lease: what it committed after its last lease renewal and did not ship is lost (after a crash, at most its last sync interval; cut off from the store, what its application committed until it was stopped)",
			"sync_interval", p.LossBound.String(), "replica_txid", p.TXID.String())
	}
}
