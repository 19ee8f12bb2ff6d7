package walship

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// pruneStaging removes staged files that are no longer needed: a file every
// replica holds, that the next compaction level (if any) has consumed. Staged
// snapshots go once every replica holds them.
func (db *DB) pruneStaging(ctx context.Context) error {
	var old []*ltx.FileInfo
	for level := 0; level <= storage.MaxLevel; level++ {
		files, err := db.staging.LTXFiles(ctx, level)
		if err != nil {
			return err
		}
		consumed := ltx.TXID(1<<63 - 1)
		if level < len(db.opts.Levels) {
			consumed = db.compactedTo(level + 1)
		}
		for _, f := range files {
			if f.MaxTXID <= consumed && db.allReplicasHold(f) {
				old = append(old, f)
			}
		}
	}
	if len(old) == 0 {
		return nil
	}
	return db.staging.DeleteLTXFiles(ctx, old)
}

// allReplicasHold reports whether every replica has f or has moved past it.
func (db *DB) allReplicasHold(f *ltx.FileInfo) bool {
	for _, r := range db.replicas {
		if !r.holds(f) {
			return false
		}
	}
	return true
}

// positionFile is a small file in the staging directory that records the WAL
// position of the newest staged state, so a restart can resume with a delta
// without reading a file back from the replica. It is a hint: resume checks it
// by recomputing the database checksum, so it is not fsynced.
func (db *DB) positionFile() string { return filepath.Join(db.opts.MetaPath, "position") }

func (db *DB) writePositionFile() {
	line := fmt.Sprintf("%s %s %d %d %d\n", db.pos.TXID, db.pos.PostApplyChecksum, db.walHdr.Salt1, db.walHdr.Salt2, db.walPos.Offset)
	if db.walPos.Offset == 0 {
		line = fmt.Sprintf("%s %s 0 0 0\n", db.pos.TXID, db.pos.PostApplyChecksum)
	}
	tmp := db.positionFile() + ".tmp"
	if err := os.WriteFile(tmp, []byte(line), 0o644); err != nil {
		db.log.Debug("cannot record the wal position", "error", err)
		return
	}
	if err := os.Rename(tmp, db.positionFile()); err != nil {
		db.log.Debug("cannot record the wal position", "error", err)
	}
}

func (db *DB) readPositionFile() (ltx.Pos, *walHint, error) {
	b, err := os.ReadFile(db.positionFile())
	if err != nil {
		return ltx.Pos{}, nil, err
	}
	var txid, sum string
	var h walHint
	if _, err := fmt.Sscanf(string(b), "%s %s %d %d %d", &txid, &sum, &h.Salt1, &h.Salt2, &h.End); err != nil {
		return ltx.Pos{}, nil, err
	}
	t, err := ltx.ParseTXID(txid)
	if err != nil {
		return ltx.Pos{}, nil, err
	}
	c, err := ltx.ParseChecksum(sum)
	if err != nil {
		return ltx.Pos{}, nil, err
	}
	if h.End == 0 {
		return ltx.NewPos(t, c), nil, nil
	}
	return ltx.NewPos(t, c), &h, nil
}

// capStaging drops the staged history when it outgrows MaxLocalBytes while a
// replica is behind, rather than fill the disk the application needs. The
// replicas that lag get a snapshot when they are back.
func (db *DB) capStaging(ctx context.Context) error {
	failing := false
	for _, r := range db.replicas {
		failing = failing || r.Err() != nil
	}
	if !failing {
		return nil // staged files leave as soon as they are uploaded
	}
	var total int64
	var drop []*ltx.FileInfo
	for level := 0; level <= storage.SnapshotLevel; level++ {
		files, err := db.staging.LTXFiles(ctx, level)
		if err != nil {
			return err
		}
		for _, f := range files {
			total += f.Size
			// Drop only what the healthy replicas hold already: the
			// history is kept for the failing ones alone. The newest
			// snapshot is what a lagging replica restarts from.
			if level != storage.SnapshotLevel && db.healthyReplicasHold(f) {
				drop = append(drop, f)
			}
		}
	}
	if total <= db.opts.MaxLocalBytes || len(drop) == 0 {
		return nil
	}
	if err := db.staging.DeleteLTXFiles(ctx, drop); err != nil {
		return err
	}
	// The next compaction of each level starts after what was dropped.
	db.cmu.Lock()
	for _, f := range drop {
		if next := f.Level + 1; next < storage.SnapshotLevel {
			db.compacted[next] = max(db.compacted[next], f.MaxTXID)
		}
	}
	db.cmu.Unlock()
	db.log.Error("the staging directory outgrew max-local-bytes while a replica was unreachable: dropped the history staged for it; "+
		"the replica gets a snapshot when it is back, and the dropped restore points will not exist in it",
		"staging", db.opts.MetaPath, "bytes", total, "max_local_bytes", db.opts.MaxLocalBytes, "files", len(drop))
	return nil
}

// healthyReplicasHold reports whether every replica that is not failing has
// f or has moved past it.
func (db *DB) healthyReplicasHold(f *ltx.FileInfo) bool {
	for _, r := range db.replicas {
		if r.Err() == nil && !r.holds(f) {
			return false
		}
	}
	return true
}
