package walship

import "context"

// Upload ships every staged file to every replica now and returns the first
// error. The long-running replicator does this in the background; Upload is for
// one-shot runs and tests.
func Upload(ctx context.Context, db *DB) error {
	for _, r := range db.replicas {
		if err := r.upload(ctx); err != nil {
			return err
		}
		// A replica that needed a snapshot asked the engine for one.
		if db.takeSnapshotRequest() {
			if err := db.snapshot(ctx); err != nil {
				return err
			}
			if err := r.upload(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (db *DB) takeSnapshotRequest() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	w := db.wantSnapshot
	db.wantSnapshot = false
	return w
}

func (db *DB) snapshot(ctx context.Context) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.snapshotLocked(ctx)
}
