package walship

import "context"

// CheckpointUnsealed is the checkpoint the monitor takes below
// MaxCheckpointPageN: it never takes the write lock.
func (db *DB) CheckpointUnsealed(ctx context.Context, truncate bool) error {
	return db.cap.Checkpoint(ctx, truncate, false)
}
