package walship

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/wal"
	"github.com/walship/walship/storage"
)

// reopen opens the database at its path again after it was replaced.
func (db *DB) reopen(ctx context.Context) error {
	db.closeLocked()
	f, err := os.Open(db.path)
	if err != nil {
		return fmt.Errorf("reopen database: %w", err)
	}
	if _, err := readDBHeader(f, db.path); err != nil {
		f.Close()
		return err
	}
	db.dbFile, db.dbIno = f, inode(f)
	if err := db.openSQL(ctx); err != nil {
		db.closeLocked()
		return err
	}
	return nil
}

// writeFull stages a full copy of the database as the next file: a snapshot
// when the replica is empty, otherwise a level-0 file holding every page (so the
// TXID chain stays contiguous). It reads the state under the pin, so backfill
// cannot change a page under it.
func (db *DB) writeFull(ctx context.Context, why string) error {
	db.setNeedFull(why)
	if err := db.ensurePinned(ctx); err != nil {
		return err
	}
	scan, walf, err := db.readWAL(wal.Position{})
	if err != nil {
		return err
	}
	if db.pos.TXID > 0 && db.state != nil && db.state.total == db.pos.PostApplyChecksum {
		info, next, changed, err := db.stageDiff(ctx, scan, walf)
		if err == nil {
			db.afterCopy(scan)
			db.commitStaged(info, next)
			db.log.Info("staged the pages that differ from the replicated state", "reason", why, "txid", info.MaxTXID.String(), "pages", changed, "size", info.Size)
			return nil
		}
		if !errors.Is(err, errNoDiff) {
			return err
		}
	}
	if db.pos.TXID > 0 {
		db.log.Warn("writing a full copy of the database", "reason", why)
	}
	minTXID, pre := db.pos.TXID+1, db.pos.PostApplyChecksum
	if db.pos.TXID == 0 {
		minTXID, pre = 1, 0
	}
	info, next, err := db.stageCopy(ctx, 0, minTXID, db.pos.TXID+1, pre, scan, walf)
	if err != nil {
		return err
	}
	db.afterCopy(scan)
	db.commitStaged(info, next)
	db.log.Info("staged a full copy of the database", "txid", info.MaxTXID.String(), "pages", next.commit(), "size", info.Size)
	if info.MinTXID == 1 {
		db.lastSnapshot = info.MaxTXID
		return nil // it is a snapshot already, shipped to both levels
	}
	// Restores after this point start from a snapshot rather than replay the
	// chain through a full copy (whose page size may even differ).
	if err := db.stageSnapshot(ctx); err != nil {
		db.log.Warn("cannot stage a snapshot after the full copy; the next request will retry", "error", err)
		db.wantSnapshot = true
	}
	return nil
}

// afterCopy positions the WAL reader after a file that holds the whole state
// of scan.
func (db *DB) afterCopy(scan *wal.Scan) {
	clear(db.inWAL)
	db.walPos = wal.Position{}
	if scan != nil {
		db.walPos, db.walHdr = scan.End, scan.Header
		for _, f := range scan.Frames {
			db.inWAL[f.Pgno] = f.DataOffset()
		}
	}
}

// errNoDiff means the current state cannot be described as a diff from the
// staged one (the page size changed).
var errNoDiff = errors.New("no diff possible")

// stageDiff stages, as the next file, the pages in which the current state
// (after scan) differs from the staged state db.state: it compares the
// checksum of every page, then reads and encodes the pages that differ.
func (db *DB) stageDiff(ctx context.Context, scan *wal.Scan, walf *os.File) (*ltx.FileInfo, *pageState, int, error) {
	cur, err := db.computeState(scan, walf, 0)
	if err != nil {
		return nil, nil, 0, err
	}
	if cur.pageSize != db.state.pageSize {
		return nil, nil, 0, errNoDiff
	}
	lock := ltx.LockPgno(cur.pageSize)
	base := db.state
	var pgnos []uint32
	for i, c := range cur.sums {
		if pgno := uint32(i + 1); pgno != lock && (i >= len(base.sums) || base.sums[i] != c) {
			pgnos = append(pgnos, pgno)
		}
	}
	var frames []wal.Frame
	if scan != nil {
		frames = scan.Frames
	}
	pr := newPageReader(db.dbFile, walf, cur.pageSize, scan, frames)
	next := base.clone()
	next.truncate(cur.commit())
	hdr := db.header(db.pos.TXID+1, db.pos.TXID+1, cur.commit(), db.pos.PostApplyChecksum)
	setWALFields(&hdr, scan)
	info, err := db.stage(ctx, 0, hdr, func(enc *ltx.Encoder) error {
		if err := encodePages(enc, pr, pgnos, next, cur.sums); err != nil {
			return err
		}
		if next.total != cur.total {
			return fmt.Errorf("the diff does not reproduce the database's checksum")
		}
		if scan != nil && walRestarted(walf, scan.Header) {
			return errRestarted
		}
		enc.SetPostApplyChecksum(next.total)
		return nil
	})
	if err != nil {
		return nil, nil, 0, err
	}
	return info, next, len(pgnos), nil
}

// setWALFields records in hdr which WAL frames a file holding the state after
// scan was read from.
func setWALFields(hdr *ltx.Header, scan *wal.Scan) {
	if scan != nil && len(scan.Frames) > 0 {
		hdr.WALOffset, hdr.WALSize = wal.HeaderSize, scan.End.Offset-wal.HeaderSize
		hdr.WALSalt1, hdr.WALSalt2 = scan.Header.Salt1, scan.Header.Salt2
	}
}

// snapshotLocked stages a level-9 snapshot of the current state, for a
// replica whose history the staged files no longer reach.
func (db *DB) snapshotLocked(ctx context.Context) error {
	if _, err := db.syncLocked(ctx); err != nil {
		return err
	}
	return db.stageSnapshot(ctx)
}

// stageSnapshot stages a level-9 snapshot of the state at db.pos, read from the
// WAL up to walPos and the database file, and checks it against db.pos before
// it can be uploaded.
func (db *DB) stageSnapshot(ctx context.Context) error {
	if db.pos.TXID == 0 {
		return nil
	}
	var scan *wal.Scan
	var walf *os.File
	if db.walPos.Offset != 0 {
		var err error
		if walf, err = db.openWAL(); err != nil {
			return err
		}
		// If the log restarted since walPos, the pin guarantees all of it
		// was backfilled and nothing since: the database file alone holds
		// the state at db.pos.
		if walf != nil {
			if hdr, err := wal.ReadHeader(walf); err == nil && db.walPos.SameGeneration(hdr) {
				if scan, err = wal.Read(walf, hdr, wal.Start(hdr), db.walPos.Offset); err != nil {
					return err
				}
			}
		}
	}
	info, st, err := db.stageCopy(ctx, storage.SnapshotLevel, 1, db.pos.TXID, 0, scan, walf)
	if err != nil {
		return err
	}
	if st.total != db.pos.PostApplyChecksum {
		// Never publish a snapshot that differs from the chain it stands for.
		db.staging.DeleteLTXFiles(ctx, []*ltx.FileInfo{info})
		db.setNeedFull("a snapshot did not match the staged checksum")
		return fmt.Errorf("snapshot at TXID %s does not match the staged checksum; a full copy follows", db.pos.TXID)
	}
	db.lastSnapshot = max(db.lastSnapshot, info.MaxTXID)
	// An older staged snapshot that some replica still lacks is of no more
	// use to it than this one.
	if staged, err := db.staging.LTXFiles(ctx, storage.SnapshotLevel); err == nil {
		var older []*ltx.FileInfo
		for _, f := range staged {
			if f.MaxTXID < info.MaxTXID {
				older = append(older, f)
			}
		}
		if err := db.staging.DeleteLTXFiles(ctx, older); err != nil {
			db.log.Warn("cannot remove older staged snapshots", "error", err)
		}
	}
	db.log.Info("staged a snapshot", "txid", info.MaxTXID.String(), "size", info.Size)
	for _, r := range db.replicas {
		r.wake()
	}
	return nil
}

// stageCopy stages every page of the state after the committed frames of scan
// (nil: the database file alone) as one file.
func (db *DB) stageCopy(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, pre ltx.Checksum, scan *wal.Scan, walf *os.File) (*ltx.FileInfo, *pageState, error) {
	pageSize, commit, frames, err := db.layout(scan)
	if err != nil {
		return nil, nil, err
	}
	pr := newPageReader(db.dbFile, walf, pageSize, scan, frames)
	pr.sequential = true
	next := &pageState{pageSize: pageSize, sums: make([]ltx.Checksum, 0, commit)}
	hdr := ltx.Header{
		Version:          ltx.Version,
		PageSize:         pageSize,
		Commit:           commit,
		MinTXID:          minTXID,
		MaxTXID:          maxTXID,
		Timestamp:        time.Now().UnixMilli(),
		PreApplyChecksum: pre,
	}
	setWALFields(&hdr, scan)
	lock := ltx.LockPgno(pageSize)
	pgnos := make([]uint32, 0, commit)
	for pgno := uint32(1); pgno <= commit; pgno++ {
		if pgno == lock {
			next.set(pgno, 0) // never written; its checksum counts as zero
		} else {
			pgnos = append(pgnos, pgno)
		}
	}
	info, err := db.stage(ctx, level, hdr, func(enc *ltx.Encoder) error {
		if err := encodePages(enc, pr, pgnos, next, nil); err != nil {
			return err
		}
		if scan != nil && walRestarted(walf, scan.Header) {
			return errors.New("the wal restarted while the database was being copied; will retry")
		}
		enc.SetPostApplyChecksum(next.total)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return info, next, nil
}

// layout returns the page size, the database size in pages and the committed
// WAL frames of the current state.
func (db *DB) layout(scan *wal.Scan) (pageSize, commit uint32, frames []wal.Frame, err error) {
	hdr, err := readDBHeader(db.dbFile, db.path)
	if err != nil {
		return 0, 0, nil, err
	}
	pageSize = hdr.pageSize
	if scan != nil && len(scan.Frames) > 0 {
		if scan.Header.PageSize != pageSize {
			// The WAL wins: SQLite reads page 1 from it.
			pageSize = scan.Header.PageSize
		}
		return pageSize, scan.Commit, scan.Frames, nil
	}
	commit, err = dbPageCount(db.dbFile, hdr)
	return pageSize, commit, nil, err
}

// computeState computes the page checksums of the state after the committed
// frames of scan up to offset end (the whole scan if end is 0).
func (db *DB) computeState(scan *wal.Scan, walf *os.File, end int64) (*pageState, error) {
	var frames []wal.Frame
	var commit uint32
	hdr, err := readDBHeader(db.dbFile, db.path)
	if err != nil {
		return nil, err
	}
	pageSize := hdr.pageSize
	if scan != nil {
		for _, f := range scan.Frames {
			if end != 0 && f.Offset >= end {
				break
			}
			frames = append(frames, f)
			if f.Commit != 0 {
				commit = f.Commit
			}
		}
		if len(frames) > 0 {
			pageSize = scan.Header.PageSize
		}
	}
	if len(frames) == 0 {
		if commit, err = dbPageCount(db.dbFile, hdr); err != nil {
			return nil, err
		}
	}
	pr := newPageReader(db.dbFile, walf, pageSize, scan, frames)
	pr.sequential = true
	st := &pageState{pageSize: pageSize, sums: make([]ltx.Checksum, 0, commit)}
	buf := make([]byte, pageSize)
	h := ltx.NewHasher()
	lock := ltx.LockPgno(pageSize)
	for pgno := uint32(1); pgno <= commit; pgno++ {
		if pgno == lock {
			st.set(pgno, 0)
			continue
		}
		if err := pr.read(pgno, buf); err != nil {
			return nil, err
		}
		st.set(pgno, ltx.ChecksumPageWithHasher(h, pgno, buf))
	}
	return st, nil
}
