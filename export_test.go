package walship

import "context"

// CheckpointUnsealed is the checkpoint the monitor takes below
// MaxCheckpointPageN: it never takes the write lock.
func (db *DB) CheckpointUnsealed(ctx context.Context, truncate bool) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.checkpointLocked(ctx, truncate, false)
}
