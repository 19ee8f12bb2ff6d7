package walship

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// What a supervisor (systemd's watchdog, say) can learn of a running
// database without the engine knowing who asks: which phase it is in, and
// whether its monitor loop still goes round.

// Phase is where a database's Run is.
type Phase int32

const (
	// PhaseStarting: Run has not begun yet, or is opening the database
	// (reading the replicas, staging the first state).
	PhaseStarting Phase = iota
	// PhaseWaiting: the database file does not exist yet, or opening it
	// failed for a reason that can pass and is retried.
	PhaseWaiting
	// PhaseReplicating: open, its changes captured and shipped.
	PhaseReplicating
	// PhaseStopped: Run returned.
	PhaseStopped
)

func (p Phase) String() string {
	switch p {
	case PhaseStarting:
		return "starting"
	case PhaseWaiting:
		return "waiting"
	case PhaseReplicating:
		return "replicating"
	case PhaseStopped:
		return "stopped"
	}
	return "unknown"
}

// Ready reports whether an application that uses the database can start
// (`walship replicate -exec`): the database replicates, or its file does
// not exist yet (or is empty), which the application creates (walship
// then opens it within a second, and captures what it committed
// meanwhile from the WAL or with a whole copy). A database whose opening
// fails and is retried is not ready, nor one with a lease (lease-ttl) that
// this node does not hold.
func (db *DB) Ready() bool {
	if db.opts.LeaseTTL != 0 {
		// Only the primary's application may write: none starts before
		// this node holds the lease (taking it may be being retried).
		if h := db.LeaseHolder(); h == nil || h.Valid() != nil {
			return false
		}
	}
	switch db.Phase() {
	case PhaseReplicating:
		return true
	case PhaseWaiting:
		// As WaitExists sees it: an empty file is one SQLite has not
		// written yet.
		fi, err := os.Stat(db.path)
		return errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Size() == 0)
	}
	return false
}

// Halted returns why the database is replicated no more while its Run
// should go on: Run returned (a failure that does not pass, or ctx
// ended), or a replica stopped for good (another database took it over).
// Nil while it replicates, waits, or retries.
func (db *DB) Halted() error {
	if db.Phase() == PhaseStopped {
		if msg, _ := db.failing.get(); msg != "" {
			return fmt.Errorf("replication of %s stopped: %s", db.path, msg)
		}
		return fmt.Errorf("replication of %s stopped", db.path)
	}
	for _, r := range db.replicas {
		if r.up == nil {
			continue
		}
		if err := r.up.Stopped(); err != nil {
			return fmt.Errorf("replica %s of %s stopped: %w", r.Client, db.path, err)
		}
	}
	return nil
}

// Ready reports whether an application started beside the store's
// databases can start: every directory was scanned once (its databases
// are known), and every database is Ready, except a directory's that
// stopped on a failure (it is reported, and stays its own problem).
func (s *Store) Ready() bool { return len(s.NotReady()) == 0 }

// NotReady lists the directories not scanned yet and the databases that
// hold Ready back, with their phase, for messages.
func (s *Store) NotReady() []string {
	var out []string
	for _, d := range s.Dirs {
		if !d.scannedOnce() {
			out = append(out, d.Path+" (directory not scanned yet)")
		}
	}
	for _, db := range s.Databases() {
		if db.Ready() || db.inDir != "" && db.Phase() == PhaseStopped {
			continue
		}
		out = append(out, db.path+" ("+db.Phase().String()+")")
	}
	return out
}

// Halted returns why databases of the store, or replicas of them, are
// replicated no more (see DB.Halted); nil while every one goes on. Only
// the databases listed or added by hand count: one a directory's scan
// found stays its own problem (reported in its status, its metrics and
// an ERROR line), and one stopped on request (Remove, Pause) is not
// halted.
func (s *Store) Halted() error {
	var errs []error
	for _, db := range s.halting() {
		if err := db.Halted(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// halting returns the databases whose halt Halted reports: before Run,
// DBs; while it runs, the members neither found in a directory nor
// stopped on request.
func (s *Store) halting() []*DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members == nil {
		return slices.Clone(s.DBs)
	}
	var out []*DB
	for _, p := range s.order {
		if m := s.members[p]; !m.stopping && m.db.inDir == "" {
			out = append(out, m.db)
		}
	}
	return out
}

// Unopened lists the databases whose file SQLite has written and that
// neither replicate nor stopped: an application that created one must
// not be taken for gone with its commits until walship opened it (which
// it does within a second of the file's creation).
func (s *Store) Unopened() []string {
	var out []string
	for _, db := range s.Databases() {
		if ph := db.Phase(); ph == PhaseReplicating || ph == PhaseStopped {
			continue
		}
		if fi, err := os.Stat(db.path); err == nil && fi.Size() > 0 {
			out = append(out, db.path)
		}
	}
	return out
}

// Unflushed returns an error naming the replicas that do not hold their
// database's newest captured TXID, nil when every one does: after Run,
// what is staged and not uploaded (it ships at the next start).
func (s *Store) Unflushed() error {
	var behind []string
	for _, db := range s.Databases() {
		pos := db.Pos()
		for _, r := range db.replicas {
			if rp := r.Pos(); rp.TXID < pos.TXID {
				behind = append(behind, fmt.Sprintf("%s: replica %s holds TXID %s of %s", db.path, r.Client, rp.TXID, pos.TXID))
			}
		}
	}
	if len(behind) == 0 {
		return nil
	}
	return fmt.Errorf("commits staged and not uploaded (%s)", strings.Join(behind, "; "))
}

// Phase returns where the database's Run is.
func (db *DB) Phase() Phase { return Phase(db.phase.Load()) }

func (db *DB) setPhase(p Phase) { db.phase.Store(int32(p)) }

// Beats counts the rounds of the database's monitor loop, the loop that
// captures its changes, and the steps of a whole copy of the database it
// makes. A count that stops rising while the phase is
// PhaseReplicating means the loop is stuck (in a sync that does not return,
// say). An idle loop waits for the WAL to change: Probe makes it go round
// once, so that a supervisor can tell idle from stuck.
func (db *DB) Beats() uint64 { return db.beats.Load() }

// Probe asks the monitor loop to go round once, which Beats counts. It
// never blocks, and costs one wake-up of the loop.
func (db *DB) Probe() {
	select {
	case db.probeC <- struct{}{}:
	default: // a probe is pending already
	}
}
