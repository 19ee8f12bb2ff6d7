package walship

import (
	"context"
	"fmt"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/wal"
	"github.com/walship/walship/storage"
)

// resolvePos sets db.pos to the newest position that continues every replica:
// the newest replica position, extended by staged files that chain onto it.
// Staged files that do not chain were never published and are removed. It
// returns the header of the file at db.pos, whose WAL fields say where in the
// WAL that state was captured.
func (db *DB) resolvePos(ctx context.Context) (*walHint, error) {
	var pos ltx.Pos
	var hint *walHint
	for i, r := range db.replicas {
		if p := r.Pos(); p.TXID > pos.TXID || i == 0 {
			pos, hint = p, hintFromHeader(r.lastHeader)
		}
	}
	files, err := db.staging.LTXFiles(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("list staged files in %s: %w", db.opts.MetaPath, err)
	}
	for i, f := range files {
		hdr, trailer, err := ReadHeaderTrailer(ctx, db.staging, f)
		if err != nil {
			db.log.Warn("discarding an unreadable staged file", "error", err)
			if err := db.staging.DeleteLTXFiles(ctx, files[i:]); err != nil {
				return nil, err
			}
			break
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
			db.log.Warn("discarding staged files that do not continue the replica's history",
				"first", storage.Describe(0, f.MinTXID, f.MaxTXID), "replica_txid", pos.TXID.String())
			if err := db.staging.DeleteLTXFiles(ctx, files[i:]); err != nil {
				return nil, err
			}
			break
		}
		pos, hint = ltx.NewPos(f.MaxTXID, trailer.PostApplyChecksum), hintFromHeader(&hdr)
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
