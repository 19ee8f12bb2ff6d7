package walship

// Restore on first boot (Litestream's restore-if-db-not-exists): a
// database whose file is missing is restored from its replicas before it
// is replicated, and the restored database carries on the replica's
// history as the database the replica belongs to.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/walship/walship/internal/owner"
	"github.com/walship/walship/internal/staging"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
)

// RestoreIfMissing restores the database from its replicas when its file
// does not exist: from the replica that holds the newest state (the
// highest TXID; of equals, the first in order), since the engine goes on
// from the newest TXID of any replica and would roll back, silently, the
// commits an older replica lacks. It returns false, doing nothing, when
// the file exists, or when no replica holds a backup (the application
// creates a fresh database). A replica that cannot be read is an error,
// not an empty replica: starting fresh beside a history walship could not
// read would fork it, and restoring from another could miss its newer
// commits. Call it before Open or Run.
func (db *DB) RestoreIfMissing(ctx context.Context) (bool, error) {
	// A replacement an interrupted restore left half done is finished or
	// rolled back first, as the restore command does.
	if err := restore.RecoverOutput(db.path); err != nil {
		return false, err
	}
	if _, err := os.Stat(db.path); !errors.Is(err, fs.ErrNotExist) {
		if err != nil {
			return false, fmt.Errorf("database %s: %w", db.path, err)
		}
		db.log.Info("database exists; not restored")
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(db.path), 0o755); err != nil {
		return false, fmt.Errorf("create the database's directory: %w", err)
	}
	order, err := db.newestFirst(ctx)
	if err != nil {
		return false, err
	}
	for _, r := range order {
		res, err := restore.Restore(ctx, r.Client, db.path, restore.Options{IntegrityCheck: "quick"})
		if errors.Is(err, restore.ErrNoFiles) {
			db.log.Info("replica holds no backup", "replica", r.Name, "destination", r.Client.String())
			continue
		}
		if err != nil {
			return false, fmt.Errorf("restore the missing database %s from replica %s: %w; walship does not start a new database beside a backup it could not read: fix the replica's access, or restore by hand",
				db.path, r.Client, err)
		}
		if err := RecordRestored(ctx, r.Client, db.opts.MetaPath); err != nil {
			return true, err
		}
		db.log.Info("restored the missing database", "replica", r.Name, "txid", res.TXID.String(), "files", res.Files, "bytes", res.Bytes)
		return true, nil
	}
	db.log.Info("no replica holds a backup: the application creates the database")
	return false, nil
}

// newestFirst returns the replicas by the newest TXID each holds, highest
// first, config order among equals (restore.ByNewest).
func (db *DB) newestFirst(ctx context.Context) ([]*Replica, error) {
	listers := make([]restore.Lister, len(db.replicas))
	for i, r := range db.replicas {
		listers[i] = r.Client
	}
	order, err := restore.ByNewest(ctx, listers)
	if err != nil {
		var le *restore.ListError
		errors.As(err, &le)
		return nil, fmt.Errorf("restore the missing database %s: read replica %s: %w; walship restores from the replica with the newest state and cannot tell which one that is: fix the replica's access (or remove it from the config), or restore by hand",
			db.path, db.replicas[le.Index].Client, err)
	}
	out := make([]*Replica, len(order))
	for i, k := range order {
		out[i] = db.replicas[k]
	}
	return out, nil
}

// RecordRestored records, in the staging directory metaPath of a
// database just restored from the replica behind c, the identity of the
// database the replica belongs to (its owner record's), so that
// replicating the restored database goes on with the replica's history,
// as its owner, with no takeover, even after the application wrote to it
// or on another host. A replica without an owner record (Litestream's)
// records nothing. It is meant for a database that replaces the one the
// replica belongs to: if that one still runs, it stops writing to the
// replica once the restored one claims it.
func RecordRestored(ctx context.Context, c storage.Client, metaPath string) error {
	rec, _, err := owner.Read(ctx, c)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the owner record of replica %s: %w", c, err)
	}
	if err := staging.SetIdentity(metaPath, rec.Database); err != nil {
		return fmt.Errorf("record the restored database's identity: %w", err)
	}
	return nil
}
