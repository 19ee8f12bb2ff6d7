package walship

import (
	"context"
	"io/fs"
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

// SetDirWalk replaces filepath.WalkDir in the scans of d, for a test
// that makes a directory unreadable (root reads every directory).
func SetDirWalk(d *Dir, walk func(root string, fn fs.WalkDirFunc) error) { d.walkDir = walk }

// Unfinished reports whether a Step of the monitor has work although the
// WAL and the database file are unchanged (capture.Capturer.Unfinished).
func (db *DB) Unfinished() bool { return db.cap.Unfinished() }

// RequestSnapshot asks the capturer for a snapshot, as a replica that needs
// one does, without waking the monitor.
func (db *DB) RequestSnapshot(why string) { db.cap.RequestSnapshot(why) }
