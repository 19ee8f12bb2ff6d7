package walship

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/wal"
	"github.com/walship/walship/storage"
)

// Sync captures the transactions committed since the last sync into one staged
// LTX file and returns the new position. When nothing was committed it writes
// nothing.
func (db *DB) Sync(ctx context.Context) (ltx.Pos, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.state == nil {
		return ltx.Pos{}, errors.New("database is not open")
	}
	_, err := db.syncLocked(ctx)
	return db.pos, err
}

func (db *DB) syncLocked(ctx context.Context) (bool, error) {
	if err := db.ensurePinned(ctx); err != nil {
		return false, err
	}
	for attempt := 0; ; attempt++ {
		if db.needFull {
			return true, db.writeFull(ctx, db.fullReason)
		}
		if err := db.scanLocked(); err != nil {
			return false, err
		}
		if len(db.pending) == 0 && db.commit == db.state.commit() {
			return false, nil
		}
		err := db.writeDelta(ctx)
		if err == nil {
			if err := db.capStaging(ctx); err != nil {
				db.log.Warn("cannot check the staging directory's size", "error", err)
			}
		}
		if errors.Is(err, errRestarted) && attempt < 3 {
			// The log restarted while pages were read from it. The pin
			// allows that only once every frame was backfilled, so a
			// rescan reads them from the database file.
			continue
		}
		if errors.Is(err, errRestarted) {
			db.setNeedFull(err.Error())
			return true, db.writeFull(ctx, db.fullReason)
		}
		return err == nil, err
	}
}

// setNeedFull makes the next sync stage a full copy of the database.
func (db *DB) setNeedFull(why string) {
	if !db.needFull {
		db.needFull, db.fullReason = true, why
	}
}

// ensurePinned makes sure the engine reads the database it was pointed at,
// under a pin. If the file was replaced, or the pin was lost (a failed
// checkpoint), the WAL may have restarted unseen, so the next file is a full
// copy.
func (db *DB) ensurePinned(ctx context.Context) error {
	if db.dbFile == nil || db.dbReplaced() {
		if err := db.reopen(ctx); err != nil {
			return err
		}
		db.setNeedFull("the database file was replaced")
	}
	if db.pinTx == nil {
		if err := db.pin(ctx); err != nil {
			return err
		}
		db.setNeedFull("the wal pin was lost")
	}
	return nil
}

// errNotPinned means the WAL cannot be read safely until the next sync
// reopens the database or pins the WAL again.
var errNotPinned = errors.New("the database was replaced or its wal is not pinned; the next sync recovers")

// errRestarted means the WAL restarted while pages were being read from it.
var errRestarted = errors.New("the wal restarted while it was being read")

// scanLocked reads the WAL's committed frames past walPos: it records the
// newest copy of each page in inWAL and the page in pending. When the log has
// restarted, it continues from the new generation's first frame: the pin
// guarantees that every frame of the old one was read and backfilled (DESIGN
// §2.1), so pending pages missing from the new generation are current in the
// database file.
func (db *DB) scanLocked() error {
	if db.dbFile == nil || db.pinTx == nil || db.dbReplaced() {
		return errNotPinned
	}
	f, err := db.openWAL()
	if err != nil || f == nil {
		return err
	}
	hdr, err := wal.ReadHeader(f)
	if errors.Is(err, wal.ErrNoHeader) {
		// Empty or truncated: nothing new until the next writer. The pin
		// lets the log be truncated only once every frame was read and
		// backfilled, so pending pages are current in the database file:
		// forget where they were in the log.
		if db.walPos.Offset != 0 {
			clear(db.inWAL)
			db.walPos, db.walPages, db.ckptTried = wal.Position{}, 0, 0
			db.deltaStart = wal.HeaderSize
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("wal %s: %w", db.walPath, err)
	}
	if hdr.PageSize != db.state.pageSize {
		db.setNeedFull("the page size changed")
		return fmt.Errorf("wal %s: page size %d differs from the database's %d; a full copy follows", db.walPath, hdr.PageSize, db.state.pageSize)
	}
	from := db.walPos
	if from.Offset == 0 || !from.SameGeneration(hdr) {
		if from.Offset != 0 {
			db.log.Debug("wal restarted", "salt1", hdr.Salt1)
		}
		from = wal.Start(hdr)
		clear(db.inWAL)
		db.deltaStart = wal.HeaderSize
		db.ckptTried = 0
	}
	scan, err := wal.Read(f, hdr, from, 0)
	if err != nil {
		return fmt.Errorf("wal %s: %w", db.walPath, err)
	}
	for _, fr := range scan.Frames {
		db.inWAL[fr.Pgno] = fr.DataOffset()
		db.pending[fr.Pgno] = struct{}{}
		if fr.Commit != 0 {
			db.commit = fr.Commit
		}
	}
	db.walPos = scan.End
	db.walHdr = hdr
	db.walPages = int((scan.End.Offset - wal.HeaderSize) / hdr.FrameSize())
	return nil
}

// writeDelta stages the pending pages as the next LTX file.
func (db *DB) writeDelta(ctx context.Context) error {
	walf := db.walFile
	pr := &pageReader{db: db.dbFile, wal: walf, pageSize: db.state.pageSize, inWAL: db.inWAL}
	if db.walPos.Offset != 0 {
		pr.walHdr = &db.walHdr
	}
	oldCommit, commit := db.state.commit(), db.commit
	lock := ltx.LockPgno(db.state.pageSize)

	pgnos := make([]uint32, 0, len(db.pending))
	for pgno := range db.pending {
		if pgno <= commit && pgno != lock {
			pgnos = append(pgnos, pgno)
		}
	}
	// Pages that became part of the database without a WAL copy (SQLite
	// allocates by writing, so normally none) are read from the file so the
	// delta alone defines the new state.
	for pgno := oldCommit + 1; pgno <= commit; pgno++ {
		if _, ok := db.pending[pgno]; !ok && pgno != lock {
			pgnos = append(pgnos, pgno)
		}
	}
	slices.Sort(pgnos)

	next := db.state.clone()
	next.truncate(commit)
	hdr := db.header(db.pos.TXID+1, db.pos.TXID+1, commit, db.pos.PostApplyChecksum)
	walHdr, walPos := db.walHdr, db.walPos
	if walPos.Offset != 0 {
		hdr.WALOffset, hdr.WALSize = db.deltaStart, walPos.Offset-db.deltaStart
		hdr.WALSalt1, hdr.WALSalt2 = walHdr.Salt1, walHdr.Salt2
	}

	info, err := db.stage(ctx, 0, hdr, func(enc *ltx.Encoder) error {
		if err := encodePages(enc, pr, pgnos, next, nil); err != nil {
			return err
		}
		if walPos.Offset != 0 && walf != nil && walRestarted(walf, walHdr) {
			return errRestarted
		}
		enc.SetPostApplyChecksum(next.total)
		return nil
	})
	if err != nil {
		return err
	}
	db.commitStaged(info, next)
	return nil
}

func (db *DB) header(minTXID, maxTXID ltx.TXID, commit uint32, pre ltx.Checksum) ltx.Header {
	// Deltas keep the page size of the staged state.
	return ltx.Header{
		Version:          ltx.Version,
		PageSize:         db.state.pageSize,
		Commit:           commit,
		MinTXID:          minTXID,
		MaxTXID:          maxTXID,
		Timestamp:        time.Now().UnixMilli(),
		PreApplyChecksum: pre,
	}
}

// spillPages is how many page index entries (~24 bytes each) an LTX encoder
// keeps in memory before spilling the rest to the staging directory.
const spillPages = 1 << 16

// stage encodes one LTX file into the staging directory, atomically: body
// writes the pages and sets the post-apply checksum; if it fails, nothing is
// left behind.
func (db *DB) stage(ctx context.Context, level int, hdr ltx.Header, body func(*ltx.Encoder) error) (*ltx.FileInfo, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := func() error {
			// The encoder writes a page at a time; the pipe hands each
			// write to the staging goroutine, so gather them.
			bw := bufio.NewWriterSize(pw, 256<<10)
			enc, err := ltx.NewEncoder(bw)
			if err != nil {
				return err
			}
			// The page index of a large copy goes to disk past
			// spillPages entries: memory does not grow with the database.
			enc.SetSpillDir(db.opts.MetaPath)
			enc.SetSpillThreshold(spillPages)
			defer enc.Cleanup()
			if err := enc.EncodeHeader(hdr); err != nil {
				return err
			}
			if err := body(enc); err != nil {
				return err
			}
			if err := enc.Close(); err != nil {
				return err
			}
			return bw.Flush()
		}()
		pw.CloseWithError(err)
		done <- err
	}()
	info, werr := db.staging.WriteLTXFile(ctx, level, hdr.MinTXID, hdr.MaxTXID, pr, time.UnixMilli(hdr.Timestamp))
	pr.CloseWithError(errors.New("staging write ended"))
	encErr := <-done
	if werr != nil || encErr != nil {
		// A file renamed into place before a later step failed (the
		// directory fsync, say) is not part of the history: remove it so
		// nothing uploads it, since the TXID will be written again.
		db.staging.DeleteLTXFiles(context.WithoutCancel(ctx), []*ltx.FileInfo{{Level: level, MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID}})
	}
	switch {
	case errors.Is(encErr, errRestarted):
		return nil, encErr
	case werr != nil:
		// The write's error names the staging path and the cause (a full
		// disk, say); the encoder then only saw its pipe close.
		return nil, fmt.Errorf("stage %s in %s: %w", storage.Describe(level, hdr.MinTXID, hdr.MaxTXID), db.opts.MetaPath, werr)
	case encErr != nil:
		return nil, fmt.Errorf("stage %s: %w", storage.Describe(level, hdr.MinTXID, hdr.MaxTXID), encErr)
	}
	return info, nil
}

// commitStaged makes a staged file the new position: the pending pages are in
// it, and the next delta's WAL segment starts where this one ended.
func (db *DB) commitStaged(info *ltx.FileInfo, next *pageState) {
	if err := db.sums.save(info.MaxTXID, db.state, next); err != nil {
		db.log.Warn("cannot record page checksums; a restart will need a full copy", "error", err)
	}
	db.pos = ltx.NewPos(info.MaxTXID, next.total)
	db.state = next
	db.commit = next.commit()
	clear(db.pending)
	db.deltaStart = db.walPos.Offset
	db.needFull = false
	db.writePositionFile()
	db.log.Debug("staged", "file", storage.Describe(info.Level, info.MinTXID, info.MaxTXID), "size", info.Size)
	for _, r := range db.replicas {
		r.wake()
	}
}
