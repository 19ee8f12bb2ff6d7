package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/walship/walship/storage"
)

// Holder holds the lease of one replica for this node: it acquires it,
// renews it, and knows on its own monotonic clock until when it may write.
type Holder struct {
	c   storage.Client
	me  Record // Node, Host, PID, Path and TTLMillis; the rest is set on writes
	ttl time.Duration
	log *slog.Logger
	now func() time.Time // time.Now; tests replace it

	mu       sync.Mutex
	version  string    // the record's version after this node's last write
	seq      uint64    // the Seq of that write
	since    time.Time // when this node acquired the lease
	deadline time.Time // when this node stops writing unless it renewed; zero before it holds the lease
	// wallDeadline is the deadline on the wall clock: the monotonic
	// clock stops while the machine is suspended, the wall clock does
	// not, and the lease is lost when either says so.
	wallDeadline time.Time
	lost         error // why this node holds the lease no more, for good
	// lostC is closed when lost is set, so that Keep reports a loss
	// another caller of Valid found (a write's check, after a suspend)
	// at once rather than at its next renewal.
	lostC chan struct{}
	// onHandover is called once when a handover record names this node
	// (WatchHandover); nil: none is read.
	onHandover func()
}

// WatchHandover makes Keep read the handover record after each renewal
// (one small read more per renewal) and call f once when it asks this
// node to hand over (walship promote): the caller then stops cleanly,
// which releases the lease once the replica holds every commit.
func (h *Holder) WatchHandover(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onHandover = f
}

// NewHolder returns the holder of the lease at c's path for the node me
// (me.Node must be new at every start: a restarted node acquires the lease
// again as a new holder only once it is free or expired).
func NewHolder(c storage.Client, me Record, ttl time.Duration, log *slog.Logger) *Holder {
	if log == nil {
		log = slog.Default()
	}
	me.TTLMillis = ttl.Milliseconds()
	return &Holder{c: c, me: me, ttl: ttl, log: log, now: time.Now, lostC: make(chan struct{})}
}

// TTL returns the lease's time to live.
func (h *Holder) TTL() time.Duration { return h.ttl }

// Acquire makes this node the holder when the replica has no lease record
// or the record already names this node. A record naming another node is
// an error wrapping ErrHeld that names the holder: a node that finds the
// lease held waits for it as a standby (Observer, TakeOver), never takes it
// at once, even if the record's times look old, since they are another
// machine's clock. One exception: a record naming this database (the same
// file on the same host) is its previous process's, restarted: Acquire
// waits for that lease to expire, as a standby would, and takes it over;
// if the record changes meanwhile (a standby took it), the error wraps
// ErrHeld.
func (h *Holder) Acquire(ctx context.Context, txid uint64) error {
	return h.acquire(ctx, txid, 0)
}

func (h *Holder) acquire(ctx context.Context, txid uint64, attempt int) error {
	found, version, err := Read(ctx, h.c)
	if err == nil && found.Node != h.me.Node && found.Of(h.me.Host, h.me.Path) {
		return h.acquireFromPrevious(ctx, txid)
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return h.write(ctx, "", nil, Position{TXID: txid, Captured: txid})
	case err != nil:
		return fmt.Errorf("read the lease of replica %s: %w", h.c, err)
	case found.Node == h.me.Node:
		h.mu.Lock()
		h.version, h.seq, h.since = version, found.Seq, found.Since
		h.me.TakenOverFrom, h.me.HandedOver = found.TakenOverFrom, found.HandedOver
		h.mu.Unlock()
		txid = max(txid, found.TXID) // a holder that does not know its replica's TXID yet
		err := h.write(ctx, version, nil, Position{TXID: txid, Captured: txid})
		if errors.Is(err, storage.ErrConflict) && attempt < 3 {
			// A renewal of this node's own, still in flight when the
			// record was read, landed since: read it again.
			return h.acquire(ctx, txid, attempt+1)
		}
		if err != nil {
			return fmt.Errorf("replica %s: write the lease: %w", h.c, err)
		}
		return nil
	default:
		return fmt.Errorf("replica %s: the primary role is held by %s: this node writes nothing to the replica. "+
			"Run it as a standby (walship replicate -standby, or -standby=auto on every node), which takes the role over once that holder stops renewing it: %w",
			h.c, found, ErrHeld)
	}
}

// TakeOver makes this node the holder of the lease a standby saw expire:
// the write is conditional on the version seen, so of two standbys that
// saw it expire only one gets it, and a holder that renewed meanwhile
// keeps it (the error then wraps ErrHeld).
func (h *Holder) TakeOver(ctx context.Context, seen Seen, txid uint64) error {
	if !seen.Expired {
		return fmt.Errorf("replica %s: the lease has not expired (seen unchanged for %s of its %s): %w", h.c, seen.For.Round(time.Millisecond), seen.TTL, ErrHeld)
	}
	err := h.write(ctx, seen.Version, seen.Record, Position{TXID: txid, Captured: txid})
	if errors.Is(err, storage.ErrConflict) {
		return fmt.Errorf("replica %s: the lease changed while this node took it over (its holder renewed it, or another standby took it): %w", h.c, ErrHeld)
	}
	return err
}

// write writes the record as this node's, conditionally on version, and
// on success starts the deadline from the moment the write was sent.
func (h *Holder) write(ctx context.Context, version string, previous *Record, pos Position) error {
	sent := h.now()
	h.mu.Lock()
	rec := h.me
	rec.Since = h.since
	if rec.Since.IsZero() {
		rec.Since = sent.UTC()
	}
	rec.Renewed = sent.UTC()
	rec.TXID, rec.Captured = pos.TXID, max(pos.Captured, pos.TXID)
	rec.Released = false
	rec.Seq = h.seq + 1
	if previous != nil {
		rec.TakenOverFrom, rec.HandedOver = previous.String(), previous.Released
		rec.Seq = previous.Seq + 1
		// The replica holds at least what the previous holder said:
		// a record's TXID never goes back, even from a holder that does
		// not know its replica's TXID yet.
		rec.TXID, rec.Captured = max(rec.TXID, previous.TXID), max(rec.Captured, previous.TXID)
	}
	h.mu.Unlock()
	v, err := write(ctx, h.c, &rec, version)
	if errors.Is(err, storage.ErrConflict) {
		// A write whose answer was lost and that the store's client
		// sent again meets itself: the record is this very write.
		if found, fv, rerr := Read(ctx, h.c); rerr == nil && found.Node == rec.Node && found.Seq == rec.Seq {
			v, err = fv, nil
		}
	}
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.version, h.seq, h.since = v, rec.Seq, rec.Since
	// How this node came to hold the lease stays in every renewal.
	h.me.TakenOverFrom, h.me.HandedOver = rec.TakenOverFrom, rec.HandedOver
	h.deadline = sent.Add(h.ttl - margin(h.ttl))
	h.wallDeadline = sent.Round(0).Add(h.ttl - margin(h.ttl))
	return nil
}

// Renew writes the lease again, conditionally on this node's last write,
// with pos, the newest TXIDs the replica holds and the database captured. A lease another node took
// over (or whose record was deleted) is lost for good: the error wraps
// ErrLost. Any other error leaves the deadline where it was; the caller
// tries again until then.
func (h *Holder) Renew(ctx context.Context, pos Position) error {
	if err := h.Valid(); err != nil {
		return err
	}
	h.mu.Lock()
	version := h.version
	h.mu.Unlock()
	err := h.write(ctx, version, nil, pos)
	if !errors.Is(err, storage.ErrConflict) {
		return err
	}
	// A renewal whose answer was lost may have been written: a record
	// that names this node is one of its own writes, since no other node
	// writes this node's name.
	found, v, rerr := Read(ctx, h.c)
	if rerr == nil && found.Node == h.me.Node {
		h.mu.Lock()
		h.version, h.seq = v, found.Seq
		h.mu.Unlock()
		return h.write(ctx, v, nil, pos)
	}
	var unreadable *UnreadableError
	if rerr != nil && !errors.Is(rerr, storage.ErrNotFound) && !errors.As(rerr, &unreadable) {
		// Not known to be lost: the conflict may be this node's own
		// renewal retried by the store's client. The deadline still
		// holds; the next renewal reads it again.
		return fmt.Errorf("replica %s: renewing the lease met a conflict, and reading the lease to see why failed: %w", h.c, rerr)
	}
	who := "its record was deleted"
	switch {
	case rerr == nil:
		who = "it is now held by " + found.String()
	case unreadable != nil:
		who = "its record was overwritten: " + rerr.Error()
	}
	return h.lose(fmt.Errorf("replica %s: the lease was taken from this node (%s): %w", h.c, who, ErrLost))
}

// lose records that the lease is lost for good, and returns err.
func (h *Holder) lose(err error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost == nil {
		h.lost = err
		select {
		case <-h.lostC: // closed already (or nil: a Holder not made by NewHolder)
		default:
			if h.lostC != nil {
				close(h.lostC)
			}
		}
	}
	return h.lost
}

// Valid returns nil while this node holds the lease, by its own clock: it
// acquired or renewed it less than the TTL minus a margin ago, by its
// monotonic clock and by its wall clock (a machine suspended for a while
// resumes with a monotonic clock that did not advance meanwhile, while a
// standby's went on; a wall clock that jumps forward only ends the lease
// early). Otherwise the error wraps ErrLost, for good. It sends no
// request.
func (h *Holder) Valid() error {
	h.mu.Lock()
	lost, deadline, wallDeadline := h.lost, h.deadline, h.wallDeadline
	h.mu.Unlock()
	if lost != nil {
		return lost
	}
	if deadline.IsZero() {
		return fmt.Errorf("replica %s: this node has not acquired the lease: %w", h.c, ErrLost)
	}
	if now := h.now(); !now.Before(deadline) || !now.Round(0).Before(wallDeadline) {
		return h.lose(fmt.Errorf("replica %s: this node could not renew its lease within %s, so another node may take the primary role now: it writes nothing more to the replica: %w",
			h.c, h.ttl-margin(h.ttl), ErrLost))
	}
	return nil
}

// Bound returns ctx cancelled once this node no longer holds the lease (at
// its deadline unless a renewal moved it, when it is lost, or within an
// eighth of the TTL of a resume from a suspend that outlasted it), with the
// error Valid gives as its cause: a write to the replica under it cannot
// go on past the moment a standby may take the role over, however long the
// store makes it wait. The caller calls the CancelFunc once done.
func (h *Holder) Bound(ctx context.Context) (context.Context, context.CancelFunc) {
	bctx, cancel := context.WithCancelCause(ctx)
	var mu sync.Mutex
	var timer *time.Timer
	var arm func()
	arm = func() {
		mu.Lock()
		defer mu.Unlock()
		if bctx.Err() != nil {
			return
		}
		if err := h.Valid(); err != nil {
			cancel(err)
			return
		}
		// Looked at again at the deadline, and every eighth of the TTL
		// before it: a timer runs on the monotonic clock, which stands
		// still while the machine is suspended, and Valid's wall clock
		// then ends the lease within that eighth after the resume.
		timer = time.AfterFunc(min(max(time.Until(h.Deadline()), time.Millisecond), h.ttl/8), arm)
	}
	arm()
	return bctx, func() {
		cancel(context.Canceled)
		mu.Lock()
		defer mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
	}
}

// Deadline returns when this node stops writing unless it renews the lease.
func (h *Holder) Deadline() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deadline
}

// Keep renews the lease every RenewEvery(TTL) until ctx is done, with pos
// the newest TXIDs the replica holds and the database captured; a failed renewal is tried again
// sooner. When the lease is lost (not renewed by the deadline, or taken by
// another node) it calls onLost once and returns. No renewal outlives the
// deadline: one still waiting for the store then is cancelled.
func (h *Holder) Keep(ctx context.Context, pos func() Position, onLost func(error)) {
	every := RenewEvery(h.ttl)
	wait := every
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-h.lostC:
		}
		if err := h.Valid(); err != nil {
			onLost(err)
			return
		}
		rctx, cancel := context.WithDeadline(ctx, h.Deadline())
		err := h.Renew(rctx, pos())
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrLost):
			onLost(err)
			return
		case err != nil:
			h.log.Warn("could not renew the lease; trying again before it expires", "replica", h.c.String(), "until", time.Until(h.Deadline()).Round(time.Millisecond).String(), "error", err)
			wait = min(every/4, max(time.Until(h.Deadline()), 0))
		default:
			wait = every
			h.checkHandover(ctx)
		}
		timer.Reset(wait)
	}
}

// acquireFromPrevious waits, as a standby does, for the lease of this
// database's previous process to expire, and takes it over: a restart of
// the primary keeps the role unless a standby took it first.
func (h *Holder) acquireFromPrevious(ctx context.Context, txid uint64) error {
	o := NewObserver(h.c, h.ttl)
	o.now = h.now
	var first string
	h.log.Info("the lease names this database's previous process; waiting for it to expire before taking it again", "replica", h.c.String(), "ttl", h.ttl.String())
	for {
		seen, err := o.Observe(ctx)
		if err != nil {
			return err
		}
		if seen.Record == nil || !seen.Record.Of(h.me.Host, h.me.Path) {
			// Another node (a standby) took it meanwhile, or it was
			// deleted: decide again from the start.
			return h.Acquire(ctx, txid)
		}
		if first == "" {
			first = seen.Version
		} else if seen.Version != first {
			return fmt.Errorf("replica %s: the lease naming this database is being renewed by another process (%s): %w", h.c, seen.Record, ErrHeld)
		}
		// A released lease is a standby's to take first (a switchover:
		// the primary stopped cleanly, and its service manager may
		// restart it at once): the restarted process takes it only
		// after a whole TTL, by which a running standby has taken it.
		if seen.For >= seen.TTL {
			seen.Expired = true
			err := h.TakeOver(ctx, seen, txid)
			if errors.Is(err, ErrHeld) {
				// Taken by a standby in the meantime.
				return h.Acquire(ctx, txid)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(RenewEvery(h.ttl), seen.TTL-seen.For+time.Millisecond)):
		}
	}
}

// ErrReleased is wrapped by Valid's error once the lease was released.
var ErrReleased = errors.New("this node released the lease")

// Release hands the lease over: this node stops holding it first (Valid
// fails from now on, so nothing more is written), then marks the record
// released, conditionally on its last write, so that a standby takes it
// at once instead of after a TTL. The caller releases only once its last
// commits are in the replica: that is what makes a switchover lose none.
// A failed release leaves the lease to expire.
func (h *Holder) Release(ctx context.Context, txid uint64) error {
	if err := h.Valid(); err != nil {
		return err
	}
	h.lose(fmt.Errorf("replica %s: %w", h.c, ErrReleased))
	h.mu.Lock()
	rec := h.me
	rec.Since, rec.Renewed, rec.TXID, rec.Captured, rec.Seq, rec.Released = h.since, h.now().UTC(), txid, txid, h.seq+1, true
	version := h.version
	h.mu.Unlock()
	if _, err := write(ctx, h.c, &rec, version); err != nil {
		return fmt.Errorf("release the lease of replica %s (it expires in its TTL instead): %w", h.c, err)
	}
	return nil
}

// checkHandover reads the handover record, when watched, and calls the
// watcher once if it names this node. A failed read is tried at the next
// renewal.
func (h *Holder) checkHandover(ctx context.Context) {
	h.mu.Lock()
	f := h.onHandover
	h.mu.Unlock()
	if f == nil {
		return
	}
	asked, err := HandoverRequested(ctx, h.c, h.me.Node)
	if err != nil {
		h.log.Warn("could not read the handover record; reading it again at the next renewal", "error", err)
		return
	}
	if asked {
		h.mu.Lock()
		h.onHandover = nil
		h.mu.Unlock()
		f()
	}
}
