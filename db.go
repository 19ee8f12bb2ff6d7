package walship

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/capture"
	"github.com/walship/walship/internal/event"
	"github.com/walship/walship/internal/levels"
	"github.com/walship/walship/internal/ship"
	"github.com/walship/walship/internal/staging"
	"github.com/walship/walship/internal/tail"
	"github.com/walship/walship/storage"
)

// DB replicates one SQLite database.
type DB struct {
	path     string
	opts     Options
	log      *slog.Logger
	staging  *staging.Dir
	cap      *capture.Capturer
	levels   *levels.Compactor
	replicas []*Replica
	oneShot  bool // RunOnce: fail instead of waiting for an unreachable replica
	// inDir is the directory (Dir.Path) whose scan found the database,
	// "" for one listed or added by hand: a directory's database that
	// fails stays its own problem, even under replicate -exec.
	inDir string
	// scanDir, for a directory's database, asks that directory for a
	// scan now: the engine found the file gone, which the scan takes
	// for a removal.
	scanDir func()
	// ownerRecheck overrides how long a replica trusts its claim (tests).
	ownerRecheck time.Duration
	// unwatched makes the monitor rely on its fallback poll alone, as
	// on a file system that reports no changes (tests).
	unwatched bool
	// retention is held by EnforceRetention and Validate: a verification
	// must not see files vanish under it.
	retention sync.Mutex
	kickC     chan struct{} // wakes the monitor loop
	// phase, beats and probeC tell a supervisor how Run is doing (live.go).
	phase  atomic.Int32
	beats  atomic.Uint64
	probeC chan struct{}
	// commits says when each TXID no replica holds yet was captured:
	// the replicas' lag.
	commits commitLog
	// capturedTXID is the newest TXID staged, for Status: read without
	// the capture lock, which a snapshot holds for as long as it takes.
	capturedTXID atomic.Uint64
	// failing is why opening or syncing the database fails, for Status.
	failing failure
	// uploads is broadcast after each upload pass that succeeded, for
	// WaitReplicated.
	uploads signal
	// lease is the hold on the primary role, with Options.LeaseTTL.
	lease leaseKeeper
	// handover is set once a handover of the lease was requested.
	handover atomic.Bool
	// inRun is set by Run, which ends the lease's renewal itself, after
	// the replicas' last uploads, rather than at Close.
	inRun atomic.Bool
}

// NewDB returns a DB for the database at path, replicating to replicas. It does
// no I/O until Open.
func NewDB(path string, opts Options, replicas ...*Replica) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("database path %q: %w", path, err)
	}
	// A replica's name keys its log lines, metrics, verification
	// schedule and -replica: two of one name would share them.
	for i, r := range replicas {
		for _, o := range replicas[:i] {
			if o.Name == r.Name {
				return nil, fmt.Errorf("database %s: two replicas are named %q; give each its own name (NewReplica names one without a name by its type)", abs, r.Name)
			}
		}
	}
	opts.setDefaults(abs)
	log := opts.Logger.With("db", abs)
	db := &DB{
		path:     abs,
		opts:     opts,
		log:      log,
		staging:  staging.New(opts.MetaPath, log),
		replicas: replicas,
		kickC:    make(chan struct{}, 1),
		probeC:   make(chan struct{}, 1),
	}
	db.cap = capture.New(abs, tail.Options{
		BusyTimeout:        opts.BusyTimeout,
		CheckpointInterval: opts.CheckpointInterval,
		MinCheckpointPageN: opts.MinCheckpointPageN,
		MaxCheckpointPageN: opts.MaxCheckpointPageN,
		TruncatePageN:      opts.TruncatePageN,
		Logger:             log,
		Events:             db.emit,
	}, db.staging)
	// A long copy is progress of the monitor loop too (live.go): a
	// supervisor must not take it for a stall.
	db.cap.SetProgress(func(done, total int64) {
		db.beats.Add(1)
		if db.opts.Progress != nil {
			db.opts.Progress(done, total)
		}
	})
	db.levels = levels.NewCompactor(db.staging, len(opts.Levels), log)
	src := ship.Source{
		Staging:         db.staging,
		Pos:             db.cap.Pos,
		RequestSnapshot: db.requestSnapshot,
		Uploaded:        db.uploaded,
		Events:          db.emit,
	}
	for _, r := range replicas {
		r.up = ship.New(r.Name, r.Client, src, log.With("replica", r.Name))
		r.up.SetLitestreamCompatible(r.LitestreamCompatible)
	}
	return db, nil
}

// Path returns the database's absolute path.
func (db *DB) Path() string { return db.path }

// SetProgress sets Options.Progress, before Run or Open: how a caller of
// FromConfig, which builds the options, sees a whole copy being staged.
func (db *DB) SetProgress(f func(done, total int64)) { db.opts.Progress = f }

// Replicas returns the database's replicas.
func (db *DB) Replicas() []*Replica { return db.replicas }

// Pos returns the position of the newest staged file.
func (db *DB) Pos() ltx.Pos { return db.cap.Pos() }

// WaitExists blocks until the database file exists and is not empty, logging
// once that it is waiting.
func (db *DB) WaitExists(ctx context.Context, poll time.Duration) error {
	logged := false
	for {
		fi, err := os.Stat(db.path)
		if err == nil && fi.Size() > 0 {
			return nil
		}
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("database %s: %w", db.path, err)
		}
		if !logged {
			db.setPhase(PhaseWaiting)
			db.log.Info("waiting for the database to be created")
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// Open checks the database, switches it to WAL mode if needed, pins the WAL,
// learns every replica's position and brings the staged state up to date with
// the database. The database file must exist.
func (db *DB) Open(ctx context.Context) (err error) {
	// The database first: a file that is not SQLite leaves nothing behind.
	if err := db.cap.Open(ctx); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			db.cap.Release()
			db.staging.Close()
		}
	}()
	if err := db.staging.Open(); err != nil {
		return err
	}
	w := db.shipWriter()
	for _, r := range db.replicas {
		r.up.SetWriter(w)
	}
	if err := db.loadReplicaPositions(ctx); err != nil {
		return err
	}
	if err := db.acquireLease(ctx, w); err != nil {
		return err
	}
	if err := db.checkLitestream(); err != nil {
		return err
	}
	db.noteLitestreamCompatible()
	db.noteLitestream03(ctx)
	base, baseHeader := db.replicated()
	epoch, unproven, err := db.claimReplicas(ctx)
	if err != nil {
		return err
	}
	if epoch != 0 {
		// A replica taken over: the database's history starts apart
		// from the one it holds, with a snapshot. Nothing staged before
		// it belongs to that history.
		base, baseHeader = &ltx.Pos{TXID: epoch - 1}, nil
		if err := db.staging.DropThrough(ctx, epoch-1); err != nil {
			return err
		}
	}
	pos, at, err := db.staging.Resolve(ctx, base, baseHeader)
	if err != nil {
		return err
	}
	if epoch == 0 && pos.TXID > 0 && pos.PostApplyChecksum == 0 {
		// The replica's newest files are Litestream's: read the state
		// they end with, and go on from it.
		if pos, err = db.continueLitestream(ctx, pos); err != nil {
			return err
		}
	}
	if err := db.levels.Init(ctx, db.replicaLevelMax); err != nil {
		return err
	}
	if err := db.cap.Resume(ctx, pos, at, db.levels.Merged(storage.SnapshotLevel)); err != nil {
		return err
	}
	if err := db.adoptReplicas(ctx, pos, unproven); err != nil {
		return err
	}
	for _, r := range db.replicas {
		if r.up.Known() && r.up.Stopped() == nil {
			r.up.CheckRestorable()
		}
	}
	db.recordStaged(ctx)
	db.lease.awaitFirstWrite(ltx.TXID(db.capturedTXID.Load()))
	db.keepLease()
	return nil
}

// Close syncs what has been committed, releases the database and stops.
func (db *DB) Close(ctx context.Context) error {
	if !db.inRun.Load() {
		defer db.endLease()
	}
	return db.cap.Close(ctx)
}

// Sync captures the transactions committed since the last sync into one staged
// LTX file and returns the new position. When nothing was committed it writes
// nothing.
func (db *DB) Sync(ctx context.Context) (ltx.Pos, error) {
	begun := time.Now()
	staged, err := db.cap.Sync(ctx)
	if err == nil {
		db.timed(event.Sync, begun)
	}
	db.afterStaging(ctx, staged)
	return db.cap.Pos(), err
}

// Checkpoint checkpoints the WAL and restarts it, taking the write barrier
// if the application is writing.
func (db *DB) Checkpoint(ctx context.Context, truncate bool) error {
	return db.cap.Checkpoint(ctx, truncate, true)
}

// Compact merges the staged files of the level below that level does not
// cover yet into one file of that level, and returns it (nil when there was
// nothing new). Every input is verified first, and a problem is an error
// naming the files, with nothing written.
//
// A staged history found broken (a damaged file, or one that does not
// continue the file before it) is not an error: compaction goes on past
// the break, and the engine takes a snapshot after it, from which the
// replicas restore again.
func (db *DB) Compact(ctx context.Context, level int) (*ltx.FileInfo, error) {
	begun := time.Now()
	info, err := db.levels.Compact(ctx, level, db.cap.Pos().TXID)
	if info != nil {
		db.timed(event.Compaction, begun)
		db.wakeReplicas()
	}
	var broken *levels.BreakError
	if errors.As(err, &broken) {
		if db.cap.LastSnapshot() < broken.SnapshotPast() {
			db.log.Error("the staged history is broken; taking a snapshot so that the replicas restore past it. Restore points across the break are lost", "error", err)
			db.requestSnapshot(fmt.Sprintf("the staged history is broken at %s", storage.Describe(broken.File.Level, broken.File.MinTXID, broken.File.MaxTXID)))
		}
		return info, nil
	}
	return info, err
}

// SnapshotIfChanged stages a snapshot if anything was committed since the
// last one.
func (db *DB) SnapshotIfChanged(ctx context.Context) error {
	begun := time.Now()
	staged, err := db.cap.SnapshotIfChanged(ctx)
	if staged && err == nil {
		db.timed(event.Snapshot, begun)
	}
	db.afterStaging(ctx, staged)
	return err
}

// EnforceRetention deletes from every replica the files no retained restore
// point needs.
func (db *DB) EnforceRetention(ctx context.Context) error {
	db.retention.Lock()
	defer db.retention.Unlock()
	policy := levels.Policy{SnapshotRetention: db.opts.SnapshotRetention, L0Retention: db.opts.L0Retention}
	var errs []error
	for _, r := range db.replicas {
		errs = append(errs, r.up.EnforceRetention(ctx, policy, time.Now()))
	}
	return errors.Join(errs...)
}

// afterStaging caps the staging directory and wakes the replicas once a
// file was staged.
func (db *DB) afterStaging(ctx context.Context, staged bool) {
	if !staged {
		return
	}
	db.captured(time.Now())
	db.wakeReplicas()
	if err := db.trimStaging(ctx); err != nil {
		db.log.Warn("cannot check the staging directory's size", "error", err)
	}
}

// requestSnapshot makes the engine stage a snapshot at its next wake-up: a
// replica needs one to continue from.
func (db *DB) requestSnapshot(why string) {
	db.cap.RequestSnapshot(why)
	db.kick()
}

func (db *DB) kick() {
	select {
	case db.kickC <- struct{}{}:
	default:
	}
}
