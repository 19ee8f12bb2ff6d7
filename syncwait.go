package walship

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/superfly/ltx"
)

// The durability barrier: an application that has just committed something
// it must not lose asks the running replicator to capture it now and waits
// until every replica holds it (walship sync -wait, through the control
// socket, or SyncWait from Go).

// ErrNotReplicating is returned (wrapped) by SyncWait for a database whose
// Run is not replicating it: not opened yet, waiting for its file, or
// stopped.
var ErrNotReplicating = errors.New("the database is not being replicated")

// ErrReplicaStopped is a BehindError's cause when a replica is written no
// more (another database owns it, say): waiting longer cannot help.
var ErrReplicaStopped = errors.New("a replica is written no more")

// waitPoll is how often WaitReplicated looks at the replicas' positions
// besides when an upload pass ends: a pass that fails after uploading some
// files moves a position without ending well.
const waitPoll = 50 * time.Millisecond

// BehindError is the error of SyncWait and WaitReplicated when ctx ends,
// or a replica stops, before every replica holds the wanted TXID. It names
// each replica behind, the TXID it holds and why it is behind if it knows.
type BehindError struct {
	DB     string          `json:"db"`
	Want   ltx.TXID        `json:"want_txid"`
	Behind []ReplicaBehind `json:"behind"`
	// Err is ctx's error (context.DeadlineExceeded for a timeout), or
	// ErrReplicaStopped.
	Err error `json:"-"`
}

// ReplicaBehind is one replica that does not hold the wanted TXID yet.
type ReplicaBehind struct {
	Name string   `json:"name"`
	TXID ltx.TXID `json:"txid"`
	// Error is the replica's last upload error; Stopped why it is written
	// no more. Neither holds a credential.
	Error   string `json:"error,omitempty"`
	Stopped string `json:"stopped,omitempty"`
}

func (e *BehindError) Error() string {
	var parts []string
	for _, b := range e.Behind {
		s := fmt.Sprintf("replica %q holds TXID %s, wanted %s", b.Name, b.TXID, e.Want)
		switch {
		case b.Stopped != "":
			s += " (it is written no more: " + b.Stopped + ")"
		case b.Error != "":
			s += " (last upload error: " + b.Error + ")"
		}
		parts = append(parts, s)
	}
	why := "timed out waiting for the replicas"
	if !errors.Is(e.Err, context.DeadlineExceeded) {
		why = e.Err.Error()
	}
	return fmt.Sprintf("database %s: %s: %s", e.DB, why, strings.Join(parts, "; "))
}

func (e *BehindError) Unwrap() error { return e.Err }

// SyncWait captures what was committed to the database until now, as Sync
// does whatever the sync interval, and waits until every replica holds it:
// uploaded, and restorable from each replica. It returns the captured
// position. When ctx ends first, the error is a *BehindError naming each
// replica behind (errors.Is(err, context.DeadlineExceeded) for a
// deadline); a replica that is written no more ends the wait at once.
//
// The database must be replicated by Run: SyncWait returns
// ErrNotReplicating before Run has opened it, and after it stopped.
func (db *DB) SyncWait(ctx context.Context) (ltx.Pos, error) {
	if p := db.Phase(); p != PhaseReplicating {
		return ltx.Pos{}, fmt.Errorf("database %s: %w (it is %s); try again once walship replicates it", db.path, ErrNotReplicating, p)
	}
	pos, err := db.Sync(ctx)
	if err != nil {
		return pos, fmt.Errorf("database %s: capture its last commits: %w", db.path, err)
	}
	return pos, db.WaitReplicated(ctx, pos.TXID)
}

// WaitReplicated waits until every replica holds txid, or returns a
// *BehindError when ctx ends first or a replica behind is written no more.
func (db *DB) WaitReplicated(ctx context.Context, txid ltx.TXID) error {
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	for {
		moved := db.uploads.wait() // before reading: a pass ending after it wakes us
		behind := db.behind(txid)
		if len(behind) == 0 {
			return nil
		}
		for _, b := range behind {
			if b.Stopped != "" {
				return &BehindError{DB: db.path, Want: txid, Behind: behind, Err: ErrReplicaStopped}
			}
		}
		select {
		case <-ctx.Done():
			return &BehindError{DB: db.path, Want: txid, Behind: db.behind(txid), Err: ctx.Err()}
		case <-moved:
		case <-tick.C:
		}
	}
}

// behind returns the replicas that do not hold txid.
func (db *DB) behind(txid ltx.TXID) []ReplicaBehind {
	var out []ReplicaBehind
	for _, r := range db.replicas {
		if pos := r.Pos(); pos.TXID < txid {
			b := ReplicaBehind{Name: r.Name, TXID: pos.TXID}
			if err := r.Err(); err != nil {
				b.Error = err.Error()
			}
			if r.up != nil {
				if err := r.up.Stopped(); err != nil {
					b.Stopped = err.Error()
				}
			}
			out = append(out, b)
		}
	}
	return out
}

// uploaded is called after each upload pass to a replica that succeeded:
// it prunes the staging directory and wakes WaitReplicated.
func (db *DB) uploaded(ctx context.Context) error {
	defer db.uploads.broadcast()
	return db.prune(ctx)
}

// signal wakes every goroutine waiting on it at once: each waits on the
// channel current when it looked, which the next broadcast closes.
type signal struct {
	mu sync.Mutex
	c  chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil {
		s.c = make(chan struct{})
	}
	return s.c
}

func (s *signal) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		close(s.c)
		s.c = nil
	}
}
