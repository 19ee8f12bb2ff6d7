package walship

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/event"
	"github.com/walship/walship/storage"
)

// Event is one thing the engine did (a sync, an upload, a failed upload,
// ...), for a monitor: Options.Events receives them. See package
// internal/event for the kinds.
type Event = event.Event

// DBStatus is a database's replication state at one moment, as a value: what
// a monitor (metrics, /healthz, walship status) reads.
type DBStatus struct {
	Path string `json:"db"`
	// Phase is where the process's Run of the database is (Phase's
	// String: starting, waiting, replicating, stopped), or "paused"
	// (StatePaused) while a Store paused it; stopped with an Error is a
	// database that stopped on a failure while the others go on. Empty in
	// a status read from the replicas.
	Phase string `json:"phase,omitempty"`
	// TXID is the newest TXID captured (staged).
	TXID ltx.TXID `json:"txid"`
	// WALBytes is the WAL file's size; StagingBytes what the staging
	// directory's LTX files hold.
	WALBytes     int64 `json:"wal_bytes"`
	StagingBytes int64 `json:"staging_bytes"`
	// Error is why the database cannot be opened or synced, empty while
	// it can; FailingSince is when that began. Nothing is captured
	// meanwhile, so no replica lags behind captured TXIDs: this is what
	// says that replication stopped.
	Error        string          `json:"error,omitempty"`
	FailingSince time.Time       `json:"failing_since,omitzero"`
	Replicas     []ReplicaStatus `json:"replicas"`
	// Lease is the database's hold on the primary role, nil without
	// lease-ttl.
	Lease *LeaseStatus `json:"lease,omitempty"`
}

// LeaseStatus is a database's lease on the primary role (lease-ttl).
type LeaseStatus struct {
	TTL time.Duration `json:"ttl_ns"`
	// Held is true while this node holds the lease by its own clock.
	Held bool `json:"held"`
	// Holder is, on a standby, the lease's holder (the primary) as it
	// last read the lease record: node, database, host and TXID at its
	// last renewal; empty while the replica has no lease record.
	Holder string `json:"holder,omitempty"`
	// Standby is the follower's copy while the node stands by: its TXID,
	// the replica's newest, and how far behind it was at its last commit.
	Standby *StandbyStatus `json:"standby,omitempty"`
	// Promotion is set once this node was promoted.
	Promotion *PromotionStatus `json:"promotion,omitempty"`
}

// StandbyStatus is a standby's copy at its last change.
type StandbyStatus struct {
	TXID    ltx.TXID      `json:"txid"`
	Replica ltx.TXID      `json:"replica_txid"`
	Lag     time.Duration `json:"lag_ns"`
}

// PromotionStatus is what a standby's promotion did.
type PromotionStatus struct {
	TXID      ltx.TXID  `json:"txid"` // the replica's newest, from which the node went on
	Previous  string    `json:"previous_holder,omitempty"`
	ExpiredAt time.Time `json:"expired_at"` // when this node saw the lease expire
	At        time.Time `json:"at"`         // when the copy became the live database
	// Promotion is from the lease's expiry, as this node saw it, to the
	// copy becoming the live database.
	Promotion time.Duration `json:"promotion_ns"`
	// FirstWrite is when the promoted database's first commit was
	// captured, and Failover the time from the lease's expiry to it: the
	// failover as the application sees it. Zero until then.
	FirstWrite time.Time     `json:"first_write,omitzero"`
	Failover   time.Duration `json:"failover_ns,omitempty"`
	// Released is set when the previous primary released the lease with
	// every commit in the replica: nothing was lost. Otherwise Unshipped
	// commits it had captured at its last renewal were lost for certain,
	// and whatever it committed in its last LossBound (its sync
	// interval) may have been.
	Released  bool          `json:"released"`
	Unshipped uint64        `json:"unshipped_txids"`
	LossBound time.Duration `json:"loss_bound_ns"`
}

// ReplicaStatus is one replica's replication state at one moment.
type ReplicaStatus struct {
	Name string `json:"name"`
	// TXID is the newest TXID the replica holds; Known is false while
	// its position could not be read (the replica is unreachable since
	// start-up).
	TXID  ltx.TXID `json:"txid"`
	Known bool     `json:"known"`
	// Lag is the age of the oldest TXID captured that the replica does
	// not hold yet; zero when it holds every one.
	Lag time.Duration `json:"lag_ns"`
	// LastSnapshot is when the replica's newest snapshot was taken; zero
	// when it holds none.
	LastSnapshot time.Time `json:"last_snapshot,omitzero"`
	// Error is the last upload's error, empty once the replica recovers;
	// Stopped says why the replica is written no more, if it is not.
	// Neither holds a credential: errors name replicas by their redacted
	// URL.
	Error   string `json:"error,omitempty"`
	Stopped string `json:"stopped,omitempty"`
	// Failures counts the upload passes that failed since the process
	// started.
	Failures uint64 `json:"failures"`
}

// Status returns the database's replication state as of now. It reads the
// WAL's size and lists the staging directory; it takes no lock the engine
// holds while it works.
func (db *DB) Status(ctx context.Context, now time.Time) DBStatus {
	// Not db.cap.Pos(): the capture lock is held through a whole
	// snapshot, and a health probe must not wait for one.
	st := DBStatus{Path: db.path, Phase: db.Phase().String(), TXID: ltx.TXID(db.capturedTXID.Load())}
	if db.standing() {
		// The path is the follower's copy: it captures nothing and
		// writes no replica, so the primary's figures would only be
		// zeros. Its TXID is the copy's, its failure the follower's or
		// the lease's.
		st.Phase = StateStandby
		st.Lease = db.leaseStatus()
		if st.Lease.Standby != nil {
			st.TXID = st.Lease.Standby.TXID
		}
		st.Error, st.FailingSince = db.lease.standbyFailure()
		return st
	}
	if fi, err := os.Stat(db.path + "-wal"); err == nil {
		st.WALBytes = fi.Size()
	}
	st.StagingBytes, _ = db.staging.Bytes(ctx) // a directory being created reads as empty
	st.Error, st.FailingSince = db.failing.get()
	for _, r := range db.replicas {
		rs := ReplicaStatus{Name: r.Name}
		if r.up != nil {
			pos := r.up.Pos()
			rs.TXID, rs.Known, rs.Failures = pos.TXID, r.up.Known(), r.up.Failures()
			rs.Lag = db.commits.lag(pos.TXID, now)
			if at, ok := r.up.Newest(storage.SnapshotLevel); ok {
				rs.LastSnapshot = at
			}
			if err := r.up.Err(); err != nil {
				rs.Error = err.Error()
			}
			if err := r.up.Stopped(); err != nil {
				rs.Stopped = err.Error()
			}
		}
		st.Replicas = append(st.Replicas, rs)
	}
	st.Lease = db.leaseStatus()
	db.commits.forget(db.heldByAll(st.TXID))
	return st
}

// Status returns the state of every database of the store, those paused
// or stopped on a failure too (State and Error say so).
func (s *Store) Status(ctx context.Context, now time.Time) []DBStatus {
	dbs := s.Databases()
	out := make([]DBStatus, 0, len(dbs))
	for _, db := range dbs {
		st := db.Status(ctx, now)
		if s.paused(db.path) {
			st.Phase = StatePaused
		}
		out = append(out, st)
	}
	return out
}

// StatePaused is DBStatus.Phase of a database whose replication a Store
// paused (Store.Pause) until it resumes.
const StatePaused = "paused"

// StateStandby is DBStatus.Phase of a database standing by (DB.Standby)
// until it is promoted: its path is a follower's copy of the replica.
const StateStandby = "standby"

// SetEvents sets Options.Events, before Run: the function that receives
// what the engine does (a monitor's).
func (db *DB) SetEvents(f func(Event)) { db.opts.Events = f }

// emit sends e, from this database, to Options.Events.
func (db *DB) emit(e event.Event) {
	if db.opts.Events != nil {
		e.DB = db.path
		db.opts.Events(e)
	}
}

// timed emits an event of kind k that took the time since begun.
func (db *DB) timed(k event.Kind, begun time.Time) {
	db.emit(event.Since(k, begun))
}

// captured records, after a file was staged, when the TXIDs up to the
// newest were captured: the replicas' lag is measured from it.
func (db *DB) captured(at time.Time) {
	txid := db.cap.Pos().TXID
	db.capturedTXID.Store(uint64(txid))
	if db.lease.awaitingWrite.Load() {
		db.firstWrite(txid, at)
	}
	db.commits.add(txid, at)
	db.commits.forget(db.heldByAll(txid))
}

// heldByAll returns the newest TXID every replica holds, at most
// captured.
func (db *DB) heldByAll(captured ltx.TXID) ltx.TXID {
	held := captured
	for _, r := range db.replicas {
		held = min(held, r.Pos().TXID)
	}
	return held
}

// recordStaged fills the commit log, when the database opens, from the
// staged files no replica may hold yet (their times are their headers').
func (db *DB) recordStaged(ctx context.Context) {
	files, err := db.staging.LTXFiles(ctx, 0)
	if err != nil {
		return // the lag then counts from the next capture
	}
	for _, f := range files {
		db.commits.add(f.MaxTXID, f.CreatedAt)
	}
	db.captured(time.Now())
}

// StatusFromReplicas is Status for a database that no replicator in this
// process runs (walship status when no process answers): each replica's
// newest TXID and newest snapshot are read from its listing, a replica
// that does not answer has the error. The captured TXID and the lag are
// not known, and are zero.
func (db *DB) StatusFromReplicas(ctx context.Context) DBStatus {
	st := db.Status(ctx, time.Now())
	st.Phase = ""
	for i, r := range db.replicas {
		rs := ReplicaStatus{Name: r.Name}
		for level := 0; level <= storage.MaxLevel; level++ {
			files, err := r.Client.LTXFiles(ctx, level)
			if err != nil {
				rs.Error = err.Error() // it names the replica by its redacted URL
				break
			}
			if n := len(files); n > 0 {
				rs.TXID = max(rs.TXID, files[n-1].MaxTXID)
				if level == storage.SnapshotLevel {
					rs.LastSnapshot = files[n-1].CreatedAt
				}
			}
		}
		rs.Known = rs.Error == ""
		st.Replicas[i] = rs
	}
	return st
}

// failure is why the database's own work (opening it, syncing) fails, and
// since when; the zero value is none.
type failure struct {
	mu    sync.Mutex
	err   string
	since time.Time
}

// set records the outcome of an attempt: nil clears the failure.
func (f *failure) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.err, f.since = "", time.Time{}
		return
	}
	if f.since.IsZero() {
		f.since = time.Now()
	}
	f.err = err.Error()
}

func (f *failure) get() (string, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err, f.since
}
