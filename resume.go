package walship

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/wal"
	"github.com/walship/walship/storage"
)

// resolvePos sets db.pos to the newest position that continues every replica:
// the newest replica position, extended by staged files that chain onto it.
// Staged files that do not chain were never published and are removed. It
// returns the header of the file at db.pos, whose WAL fields say where in the
// WAL that state was captured.
//
// Replicas that were unreachable at start-up count only when no replica was
// reached: then the local history (staged files, position file) is the base,
// which loadReplicaPositions checked is whole.
func (db *DB) resolvePos(ctx context.Context) (*walHint, error) {
	var pos ltx.Pos
	var hint *walHint
	known := false
	for _, r := range db.replicas {
		if !r.Known() {
			continue
		}
		if p := r.Pos(); p.TXID > pos.TXID || !known {
			pos, hint = p, hintFromHeader(r.lastHeader)
		}
		known = true
	}
	if !known {
		base, err := db.localBase(ctx)
		if err != nil {
			return nil, err
		}
		pos = base
	}
	walk, err := db.walkStaged(ctx, pos, hint)
	if err != nil {
		return nil, err
	}
	pos, hint = walk.end, walk.hint
	if rest := walk.unchained; len(rest) > 0 {
		if walk.unreadable {
			db.log.Warn("discarding an unreadable staged file", "file", storage.Describe(0, rest[0].MinTXID, rest[0].MaxTXID))
		} else {
			db.log.Warn("discarding staged files that do not continue the replica's history",
				"first", storage.Describe(0, rest[0].MinTXID, rest[0].MaxTXID), "replica_txid", pos.TXID.String())
		}
		if err := db.staging.DeleteLTXFiles(ctx, rest); err != nil {
			return nil, err
		}
	}
	db.pos = pos
	// Compacted files and snapshots staged beyond that position belong to
	// a history that was discarded: shipping one would give a TXID two
	// contents.
	for level := 1; level <= storage.MaxLevel; level++ {
		staged, err := db.staging.LTXFiles(ctx, level)
		if err != nil {
			return nil, fmt.Errorf("list staged files in %s: %w", db.opts.MetaPath, err)
		}
		var beyond []*ltx.FileInfo
		for _, f := range staged {
			if f.MaxTXID > pos.TXID {
				beyond = append(beyond, f)
			}
		}
		if err := db.staging.DeleteLTXFiles(ctx, beyond); err != nil {
			return nil, err
		}
	}
	if p, h, err := db.readPositionFile(); err == nil && p == pos {
		hint = h
	}
	return hint, nil
}

// resume establishes the page state that matches db.pos, so that the next sync
// can write a delta. It tries, in order: the WAL position recorded for db.pos,
// then the database as it is now. If neither reproduces the replicated
// checksum, the database changed in a way no delta can describe and a full copy
// is staged.
func (db *DB) resume(ctx context.Context, hint *walHint) error {
	if db.pos.TXID == 0 {
		return db.writeFull(ctx, "first sync")
	}
	base, err := db.sums.load(db.pos)
	if err != nil {
		db.log.Debug("no usable page checksums for the replicated state", "reason", err)
		db.sums.stale = true // rewrite it whole at the next save
	}
	for range 3 {
		ok, restarted, err := db.tryResume(hint)
		if err != nil || ok {
			return err
		}
		if !restarted {
			break
		}
	}
	// The WAL no longer shows the way from the replicated state; the
	// recorded page checksums of that state, if valid, let writeFull stage
	// only the pages that differ.
	db.state = base
	if base != nil {
		db.commit = base.commit()
	}
	return db.writeFull(ctx, "the database changed while walship was not running in a way the WAL no longer shows")
}

// tryResume is one attempt of resume. It reads the whole current WAL
// generation first, so that the frames past the replicated position are known
// before anything can restart the log: they become pending, and if the log
// restarts later the pin guarantees they were backfilled, so the next sync
// reads their pages from the database file.
func (db *DB) tryResume(hint *walHint) (resumed, restartedMeanwhile bool, err error) {
	scan, walf, err := db.readWAL(wal.Position{})
	if err != nil {
		return false, false, err
	}
	// restarted reports whether the log restarted since scan, which would make
	// pages just read from it suspect.
	restarted := func() bool { return scan != nil && walRestarted(walf, scan.Header) }
	if hint != nil && scan != nil && scan.Header.Salt1 == hint.Salt1 && scan.Header.Salt2 == hint.Salt2 {
		at, err := wal.Read(walf, scan.Header, wal.Start(scan.Header), hint.End)
		if err != nil {
			return false, false, err
		}
		if at.End.Offset == hint.End && hint.End <= scan.End.Offset {
			st, err := db.computeState(at, walf, 0)
			if err != nil {
				return false, false, err
			}
			if restarted() {
				return false, true, nil
			}
			if st.total == db.pos.PostApplyChecksum {
				db.state, db.commit = st, st.commit()
				db.walHdr, db.deltaStart = scan.Header, hint.End
				clear(db.inWAL)
				for _, f := range scan.Frames {
					if f.Offset >= hint.End {
						db.inWAL[f.Pgno] = f.DataOffset()
						db.pending[f.Pgno] = struct{}{}
						if f.Commit != 0 {
							db.commit = f.Commit
						}
					}
				}
				db.walPos = scan.End
				db.log.Info("resuming from the replicated position", "txid", db.pos.TXID.String(), "pending_pages", len(db.pending))
				return true, false, nil
			}
		}
	}
	st, err := db.computeState(scan, walf, 0)
	if err != nil {
		return false, false, err
	}
	if restarted() {
		return false, true, nil
	}
	if st.total != db.pos.PostApplyChecksum {
		return false, false, nil
	}
	db.state, db.commit = st, st.commit()
	if scan != nil {
		db.walPos, db.walHdr, db.deltaStart = scan.End, scan.Header, scan.End.Offset
	}
	db.log.Info("resuming: the database matches the replicated position", "txid", db.pos.TXID.String())
	return true, false, nil
}

// requestSnapshot makes the engine stage a snapshot at its next wake-up.
func (db *DB) requestSnapshot(why string) {
	db.mu.Lock()
	if !db.wantSnapshot {
		db.log.Warn("a snapshot will be staged", "reason", why)
	}
	db.wantSnapshot = true
	db.mu.Unlock()
	db.kick()
}

// stagedWalk is the outcome of walking the staged level-0 files from a
// position.
type stagedWalk struct {
	end        ltx.Pos
	hint       *walHint
	unchained  []*ltx.FileInfo // files from the first that does not continue end
	unreadable bool            // the first of unchained could not be read
}

// walkStaged extends pos by the staged level-0 files that chain onto it, in
// order, and reports the files from the first that does not.
func (db *DB) walkStaged(ctx context.Context, pos ltx.Pos, hint *walHint) (stagedWalk, error) {
	files, err := db.staging.LTXFiles(ctx, 0)
	if err != nil {
		return stagedWalk{}, fmt.Errorf("list staged files in %s: %w", db.opts.MetaPath, err)
	}
	for i, f := range files {
		hdr, trailer, err := ReadHeaderTrailer(ctx, db.staging, f)
		if err != nil {
			return stagedWalk{end: pos, hint: hint, unchained: files[i:], unreadable: true}, nil
		}
		if f.MaxTXID <= pos.TXID {
			if f.MaxTXID == pos.TXID && trailer.PostApplyChecksum == pos.PostApplyChecksum {
				hint = hintFromHeader(&hdr)
			}
			continue
		}
		chains := f.MinTXID == pos.TXID+1 &&
			(hdr.PreApplyChecksum == pos.PostApplyChecksum || (pos.TXID == 0 && hdr.IsSnapshot()))
		if !chains {
			return stagedWalk{end: pos, hint: hint, unchained: files[i:]}, nil
		}
		pos, hint = ltx.NewPos(f.MaxTXID, trailer.PostApplyChecksum), hintFromHeader(&hdr)
	}
	return stagedWalk{end: pos, hint: hint}, nil
}

// localBase is where the local history begins: the state before the oldest
// staged level-0 file, or, when nothing is staged, the position file's.
func (db *DB) localBase(ctx context.Context) (ltx.Pos, error) {
	files, err := db.staging.LTXFiles(ctx, 0)
	if err != nil {
		return ltx.Pos{}, fmt.Errorf("list staged files in %s: %w", db.opts.MetaPath, err)
	}
	if len(files) > 0 {
		hdr, _, err := ReadHeaderTrailer(ctx, db.staging, files[0])
		if err != nil || hdr.IsSnapshot() {
			return ltx.Pos{TXID: files[0].MinTXID - 1}, nil
		}
		return ltx.NewPos(files[0].MinTXID-1, hdr.PreApplyChecksum), nil
	}
	if p, _, err := db.readPositionFile(); err == nil {
		return p, nil
	}
	return ltx.Pos{}, nil
}

// localHistoryWhole reports whether the local staging directory holds the
// whole history any replica can have: the staged files chain from the
// reachable replicas' newest position (or, with none reachable, from the
// oldest staged file) up to the position file's TXID. Every file is staged
// before it is uploaded, so then no replica can hold a TXID beyond it.
func (db *DB) localHistoryWhole(ctx context.Context) (bool, error) {
	var pos ltx.Pos
	known := false
	for _, r := range db.replicas {
		if r.Known() && (r.Pos().TXID > pos.TXID || !known) {
			pos, known = r.Pos(), true
		}
	}
	if !known {
		base, err := db.localBase(ctx)
		if err != nil {
			return false, err
		}
		pos = base
	}
	walk, err := db.walkStaged(ctx, pos, nil)
	if err != nil {
		return false, err
	}
	if len(walk.unchained) > 0 {
		return false, nil
	}
	recorded, _, err := db.readPositionFile()
	if err != nil {
		return false, nil // no record of how far the history went
	}
	return walk.end.TXID >= recorded.TXID && walk.end.TXID > 0, nil
}

// startupProbe bounds the first attempt to read each replica's position.
const startupProbe = 30 * time.Second

// loadReplicaPositions reads every replica's position, all at once. A replica
// that does not answer holds back the others, and the database, only when it
// must: when the local staging directory does not hold the whole history, the
// engine cannot know the next TXID without every replica's newest, and waits.
// Otherwise it starts without that replica, which catches up when it
// answers.
func (db *DB) loadReplicaPositions(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, r := range db.replicas {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, startupProbe)
			defer cancel()
			r.loadPosOnce(pctx)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	var missing []*Replica
	for _, r := range db.replicas {
		if !r.Known() {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if db.oneShot {
		return missing[0].Err()
	}
	whole, err := db.localHistoryWhole(ctx)
	if err != nil {
		return err
	}
	if whole {
		for _, r := range missing {
			r.log.Warn("replica unreachable at start-up; replicating to the others and staging locally, it catches up when it answers", "error", r.Err())
		}
		return nil
	}
	errs := make(chan error, len(missing))
	for _, r := range missing {
		r.log.Warn("waiting for the replica: the local staging directory does not hold the whole history, so walship must read every replica's newest TXID before it continues", "error", r.Err())
		go func() { errs <- r.loadPos(ctx) }()
	}
	for range missing {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// walHint is where in the WAL a replicated state was captured: the end of the
// frames it includes, in the generation with these salts.
type walHint struct {
	Salt1, Salt2 uint32
	End          int64
}

func hintFromHeader(h *ltx.Header) *walHint {
	if h == nil || h.WALOffset == 0 {
		return nil
	}
	return &walHint{Salt1: h.WALSalt1, Salt2: h.WALSalt2, End: h.WALOffset + h.WALSize}
}
