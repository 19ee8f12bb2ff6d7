package walship

import (
	"context"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/ship"
	"github.com/walship/walship/storage"
)

// Replica is one destination of a database's changes. Each replica
// progresses on its own: a slow or failing one holds back neither the others
// nor the database.
type Replica struct {
	Name   string
	Client storage.Client
	// ValidationInterval is how often the replicator verifies the whole
	// replica (package verify) and logs what it finds; zero never.
	ValidationInterval time.Duration
	// AuditInterval is how often the replicator lists the replica, while
	// the database changes, to find files deleted or changed by something
	// other than walship, and repairs the replica with a new snapshot when
	// what is left no longer restores the latest state; zero or less
	// never. NewReplica sets DefaultAuditInterval.
	AuditInterval time.Duration
	// LitestreamCompatible makes the replica restorable by Litestream 0.5
	// (its restore, to the latest state, a TXID or a time): every file is
	// uploaded without database checksums, as Litestream writes them,
	// and walship keeps the checksum of the state each file ends with in
	// the file's header (its NodeID field), so that its own restores are
	// still proved. What a replica gives up this way: no file says the
	// state it applies to, so verify and restore -dry-run chain its files
	// by TXIDs alone (a restore still proves each state).
	LitestreamCompatible bool

	up *ship.Replica // set by NewDB
}

// DefaultAuditInterval is Replica.AuditInterval's default. An audit lists
// each level the replica uses once (five requests with the default levels)
// and runs only if the replica was written to since the last: about 22,000
// requests a month for a database that never stops changing, none for one
// that is idle.
const DefaultAuditInterval = 10 * time.Minute

// NewReplica returns a replica named name that writes through client. An
// empty name is the client's type.
func NewReplica(name string, client storage.Client) *Replica {
	if name == "" {
		name = client.Type()
	}
	return &Replica{Name: name, Client: client, AuditInterval: DefaultAuditInterval}
}

// Pos returns the newest position the replica holds.
func (r *Replica) Pos() ltx.Pos {
	if r.up == nil {
		return ltx.Pos{}
	}
	return r.up.Pos()
}

// Err returns the error of the last failed upload, or nil.
func (r *Replica) Err() error {
	if r.up == nil {
		return nil
	}
	return r.up.Err()
}

func (db *DB) wakeReplicas() {
	for _, r := range db.replicas {
		r.up.Wake()
	}
}

// startupProbe bounds the first attempt to read each replica's position.
const startupProbe = 30 * time.Second

// loadReplicaPositions reads every replica's position, all at once. A replica
// that does not answer holds back the others, and the database, only when it
// must: when the local staging directory does not hold the whole history, the
// engine cannot know the next TXID without every replica's newest, and waits.
// Otherwise it starts without that replica, which catches up when it
// answers.
func (db *DB) loadReplicaPositions(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, r := range db.replicas {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, startupProbe)
			defer cancel()
			r.up.LoadPos(pctx)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	var missing []*ship.Replica
	for _, r := range db.replicas {
		if !r.up.Known() {
			missing = append(missing, r.up)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if db.oneShot {
		return missing[0].Err()
	}
	base, _ := db.replicated()
	whole, err := db.staging.Whole(ctx, base)
	if err != nil {
		return err
	}
	// A takeover happens only when the database opens (it decides where
	// the database's history starts): a replica it is asked for must
	// answer first.
	if whole && !db.opts.Takeover {
		for _, r := range db.replicas {
			if !r.up.Known() {
				db.log.Warn("replica unreachable at start-up; replicating to the others and staging locally, it catches up when it answers", "replica", r.Name, "error", r.up.Err())
			}
		}
		return nil
	}
	errs := make(chan error, len(missing))
	for _, r := range db.replicas {
		if r.up.Known() {
			continue
		}
		why := "the local staging directory does not hold the whole history, so walship must read every replica's newest TXID before it continues"
		if db.opts.Takeover {
			why = "-takeover takes a replica over when walship starts, so walship waits until the replica answers"
		}
		db.log.Warn("waiting for the replica: "+why, "replica", r.Name, "error", r.up.Err())
		go func() { errs <- r.up.AwaitPos(ctx) }()
	}
	for range missing {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// replicated returns the newest position of the replicas whose position was
// read, and the header of the file at it; nil when none was read.
func (db *DB) replicated() (*ltx.Pos, *ltx.Header) {
	var base *ltx.Pos
	var hdr *ltx.Header
	for _, r := range db.replicas {
		if !r.up.Known() {
			continue
		}
		if p := r.up.Pos(); base == nil || p.TXID > base.TXID {
			base, hdr = &p, r.up.Header()
		}
	}
	return base, hdr
}

// replicaLevelMax returns the newest TXID any replica holds at a level.
func (db *DB) replicaLevelMax(level int) ltx.TXID {
	var newest ltx.TXID
	for _, r := range db.replicas {
		newest = max(newest, r.up.LevelMax(level))
	}
	return newest
}

// prune removes staged files that are no longer needed: a file every
// replica holds, that the next compaction level (if any) has consumed.
// Staged snapshots go once every replica holds them.
func (db *DB) prune(ctx context.Context) error {
	return db.staging.Prune(ctx, db.levels.Consumed, func(f *ltx.FileInfo) bool {
		for _, r := range db.replicas {
			// A stopped replica gets nothing more: keep nothing for it.
			if !r.up.Holds(f) && r.up.Stopped() == nil {
				return false
			}
		}
		return true
	})
}

// trimStaging drops the staged history when it outgrows MaxLocalBytes while
// a replica is behind, rather than fill the disk the application needs. The
// replicas that lag get a snapshot when they are back.
func (db *DB) trimStaging(ctx context.Context) error {
	failing := false
	for _, r := range db.replicas {
		failing = failing || (r.up.Err() != nil && r.up.Stopped() == nil)
	}
	if !failing {
		return nil // staged files leave as soon as they are uploaded
	}
	// Drop only what the healthy replicas hold already: the history is
	// kept for the failing ones alone.
	dropped, total, err := db.staging.Trim(ctx, db.opts.MaxLocalBytes, func(f *ltx.FileInfo) bool {
		for _, r := range db.replicas {
			if r.up.Err() == nil && !r.up.Holds(f) {
				return false
			}
		}
		return true
	})
	if err != nil || len(dropped) == 0 {
		return err
	}
	db.levels.Dropped(dropped)
	db.log.Error("the staging directory outgrew max-local-bytes while a replica was unreachable: dropped the history staged for it; "+
		"the replica gets a snapshot when it is back, and the dropped restore points will not exist in it",
		"staging", db.opts.MetaPath, "bytes", total, "max_local_bytes", db.opts.MaxLocalBytes, "files", len(dropped))
	return nil
}

// Known reports whether the replica's position has been read from its
// destination.
func (r *Replica) Known() bool {
	return r.up != nil && r.up.Known()
}
