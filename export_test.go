package walship

import (
	"context"
	"time"
)

// CheckpointUnsealed is the checkpoint the monitor takes below
// MaxCheckpointPageN: it never takes the write lock.
func (db *DB) CheckpointUnsealed(ctx context.Context, truncate bool) error {
	return db.cap.Checkpoint(ctx, truncate, false)
}

// SetOwnerRecheck sets how long a replica trusts its claim before it reads
// the owner record again.
func (db *DB) SetOwnerRecheck(d time.Duration) { db.ownerRecheck = d }
