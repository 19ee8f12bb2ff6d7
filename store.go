package walship

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walship/walship/storage"
)

// RunOnce syncs the database once (a full snapshot if the replica is empty),
// uploads what is staged to every replica, and closes it.
func (db *DB) RunOnce(ctx context.Context) error {
	if db.opts.LeaseTTL != 0 {
		// The lease's promise is that a primary that loses it stops its
		// application; a one-shot run starts none and cannot stop the
		// one writing, and once it exits a standby would take the role
		// while that application still writes.
		return fmt.Errorf("database %s has lease-ttl: a one-shot run cannot hold the primary role's lease, since it cannot stop the application once a standby takes the role over; run walship replicate (with -exec) instead, or remove lease-ttl", db.path)
	}
	db.oneShot = true
	if err := db.Open(ctx); err != nil {
		return err
	}
	_, err := db.Sync(ctx)
	if err == nil {
		err = Upload(ctx, db)
	}
	// A one-shot run does the periodic work too, so that running it from
	// cron keeps a replica as a long-running replicator would: merge what
	// is new into the levels (rather than leave it staged until the next
	// run), snapshot when the newest snapshot is older than the interval,
	// and enforce retention.
	for level := 1; err == nil && level <= len(db.opts.Levels); level++ {
		if db.levelDue(level, db.opts.Levels[level-1]) {
			_, err = db.Compact(ctx, level)
		}
	}
	if err == nil && db.levelDue(storage.SnapshotLevel, db.opts.SnapshotInterval) {
		err = db.SnapshotIfChanged(ctx)
	}
	if err == nil {
		err = Upload(ctx, db)
	}
	if err == nil && !db.opts.RetentionDisabled {
		err = db.EnforceRetention(ctx)
	}
	return errors.Join(err, db.Close(ctx))
}

// levelDue reports whether a replica's newest file at a level (a compaction
// level or the snapshot level) is older than the level's interval, as a
// long-running replicator's schedule would have it.
func (db *DB) levelDue(level int, interval time.Duration) bool {
	for _, r := range db.replicas {
		if at, ok := r.up.Newest(level); !ok || time.Since(at) >= interval {
			return true
		}
	}
	return false
}

// Upload ships every staged file to every replica now and returns the first
// error. The long-running replicator does this in the background; Upload is for
// one-shot runs and tests.
func Upload(ctx context.Context, db *DB) error {
	for _, r := range db.replicas {
		if err := r.up.Upload(ctx); err != nil {
			return err
		}
		// A replica that needed a snapshot asked the engine for one.
		staged, err := db.cap.SnapshotIfRequested(ctx)
		db.afterStaging(ctx, staged)
		if err != nil {
			return err
		}
		if staged {
			if err := r.up.Upload(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}
