package walship

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Store runs the replication of several databases in one process.
type Store struct {
	DBs []*DB
}

// Run replicates every database until ctx ends. A database that cannot be
// replicated (not a SQLite file, say) is reported without stopping the others.
func (s *Store) Run(ctx context.Context, flushTimeout time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, len(s.DBs))
	for i, db := range s.DBs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := db.Run(ctx, flushTimeout); err != nil {
				db.log.Error("replication stopped", "error", err)
				errs[i] = fmt.Errorf("%s: %w", db.path, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// RunOnce syncs the database once (a full snapshot if the replica is empty),
// uploads what is staged to every replica, and closes it.
func (db *DB) RunOnce(ctx context.Context) error {
	db.oneShot = true
	if err := db.Open(ctx); err != nil {
		return err
	}
	_, err := db.Sync(ctx)
	if err == nil {
		err = Upload(ctx, db)
	}
	// Merge what is new into the levels now rather than leave it staged
	// until the next run.
	for level := 1; err == nil && level <= len(db.opts.Levels); level++ {
		_, err = db.Compact(ctx, level)
	}
	if err == nil {
		err = Upload(ctx, db)
	}
	return errors.Join(err, db.Close(ctx))
}
