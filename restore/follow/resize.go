package follow

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/superfly/ltx"
	"modernc.org/sqlite"

	"github.com/walship/walship/internal/sqliteuri"
	"github.com/walship/walship/restore"
)

// resize brings the copy to the replica's newest state when that state
// has another page size than the copy (the primary ran PRAGMA page_size
// and VACUUM): sqlite_dbpage writes pages of the copy's size only.
//
// The copy is changed in place, through SQLite, never replaced: a file
// renamed over the copy would leave its readers on the old file for good,
// and the old file's readers would take the new file's journal for a hot
// journal of their own (SQLite's "how to corrupt" list: a database renamed
// while in use). Instead the newest state is restored into a file beside
// the copy, and SQLite's backup API copies it over the copy in one write
// transaction, journaled like any other commit: readers wait (their busy
// timeout) and then see the old state or the new one; a reader's next
// transaction reads page 1 again and takes the new page size (btree.c,
// lockBtree), as after a VACUUM by another connection. The backup sets the
// schema cookie to the copy's plus one, so a second transaction gives page
// 1 the state's own bytes. The record names the states before, after and
// in between, so a crash anywhere leaves a copy the next start proves.
func (f *follower) resize(ctx context.Context, l *restore.Listing) error {
	tmp := resizePath(f.out)
	removeDB(tmp)
	defer removeDB(tmp)
	plan, err := l.Plan(restore.Target{})
	if err != nil {
		return err
	}
	res, next, sums, page1, err := f.restoreBeside(ctx, l, plan, tmp)
	if err != nil {
		return err
	}
	header := next.Header
	// The state between the two transactions: the new state, with the
	// schema cookie the backup gives the copy.
	mid := next
	mid.Header = append([]byte(nil), header...)
	binary.BigEndian.PutUint32(mid.Header[40:44], binary.BigEndian.Uint32(f.header[40:44])+1)
	midPage1 := normalize(page1, header)
	copy(midPage1[40:44], mid.Header[40:44]) // not a range normalize puts back
	midSum := ltx.ChecksumPage(1, midPage1)
	mid.Checksum = uint64(ltx.ChecksumFlag | (next.checksum() ^ sums[0] ^ midSum))
	old := recordedState{TXID: uint64(f.st.TXID), Checksum: uint64(f.st.Checksum), PageSize: f.st.PageSize, Pages: uint32(len(f.st.Sums)), Header: f.header}
	if err := writeRecord(f.out, f.c.String(), old, next, mid); err != nil {
		return err
	}
	oldSize := f.st.PageSize
	f.proved = false
	err = nil
	if beforeBackup != nil {
		err = beforeBackup()
	}
	if err == nil {
		err = f.copy.restoreFrom(ctx, tmp)
	}
	if err != nil {
		// Rolled back, as a rule; which state the copy holds is read
		// from its pages rather than assumed.
		if perr := f.proveCopy(ctx, &record{States: []recordedState{old, next, mid}}); perr != nil {
			return fmt.Errorf("%w; and then: %w", err, perr)
		}
		return err
	}
	// The copy holds mid now: should the next transaction fail, the next
	// step finds that mid is not the replica's state and rebases.
	midSums := slices.Clone(sums)
	midSums[0] = midSum
	f.st = &restore.State{TXID: res.TXID, PageSize: res.PageSize, Sums: midSums, Checksum: mid.checksum()}
	f.header = mid.Header
	if afterRestore != nil {
		if err := afterRestore(); err != nil {
			return err
		}
	}
	// Not cancelled with ctx: the two transactions are one change, and a
	// follower stopped in between (a standby stops it to promote) would
	// leave the copy in a state of no TXID (the backup's schema cookie).
	// SQLite's busy timeout bounds the wait.
	if err := f.copy.writePage1(context.WithoutCancel(ctx), patch(normalize(page1, header), next.Pages)); err != nil {
		return err
	}
	f.st = &restore.State{TXID: res.TXID, PageSize: res.PageSize, Sums: sums, Checksum: res.Checksum}
	f.header, f.proved = header, true
	if err := writeRecord(f.out, f.c.String(), next); err != nil {
		return err
	}
	last := plan.Files[len(plan.Files)-1]
	st := Status{TXID: res.TXID, Newest: l.Newest(), Lag: time.Since(last.CreatedAt), Rebased: true}
	f.log.Warn("follow: the replica's database changed its page size; the copy was rebuilt in place at the new page size, in one transaction its readers see whole", "old_page_size", oldSize, "page_size", res.PageSize, "txid", res.TXID)
	if f.opts.Applied != nil {
		f.opts.Applied(st)
	}
	return nil
}

// afterRestore, when set (by tests), is called between resize's two
// transactions; an error stops resize there, as a crash would.
var afterRestore func() error

// beforeBackup, when set (by tests), is called just before the backup
// that changes the copy's page size; an error is taken for the backup's.
var beforeBackup func() error

// restoreBeside restores plan, made from l, into a file of its own at
// path, switched to rollback-journal mode as the copy is, and returns the
// restore's result, the state the file holds (with its header as the
// restore wrote it), its page checksums (page 1's as the state's) and its
// page 1 as SQLite left it: proved to add up to the checksum the restore
// gave, so that nothing changed it meanwhile.
func (f *follower) restoreBeside(ctx context.Context, l *restore.Listing, plan *restore.Plan, path string) (*restore.Result, recordedState, []ltx.Checksum, []byte, error) {
	res, err := restore.ApplyListing(ctx, f.c, l, plan, path, restore.Options{IntegrityCheck: f.opts.IntegrityCheck, Parallelism: f.opts.Parallelism})
	if err != nil {
		return nil, recordedState{}, nil, nil, err
	}
	// The restored file is the state exactly: its header is the state's,
	// read before SQLite switches the file to rollback journal (and so
	// before any SQLite connection has it open).
	header, err := readHeader(path)
	if err != nil {
		return nil, recordedState{}, nil, nil, err
	}
	cp, err := openCopy(path) // switches it to rollback-journal mode
	if err != nil {
		return nil, recordedState{}, nil, nil, err
	}
	sums, page1, err := cp.sums(ctx)
	cp.close()
	if err != nil {
		return nil, recordedState{}, nil, nil, err
	}
	st := recordedState{TXID: uint64(res.TXID), Checksum: uint64(res.Checksum), PageSize: res.PageSize, Pages: res.Pages, Header: header}
	sums[0] = ltx.ChecksumPage(1, normalize(page1, header))
	if total := sumOf(sums); total != st.checksum() || uint32(len(sums)) != st.Pages {
		return nil, recordedState{}, nil, nil, fmt.Errorf("the state restored beside the copy has checksum %s over %d pages, the restore gave %s over %d: it was changed while it was restored", total, len(sums), st.checksum(), st.Pages)
	}
	return res, st, sums, page1, nil
}

// sumOf is the database checksum of page checksums.
func sumOf(sums []ltx.Checksum) ltx.Checksum {
	var total ltx.Checksum
	for _, s := range sums {
		total ^= s
	}
	return ltx.ChecksumFlag | total
}

// resizePath is where resize restores the new state.
func resizePath(out string) string {
	return filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".follow-resize")
}

func removeDB(path string) {
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		os.Remove(p)
	}
}

// restorer is the driver's connection that copies a database over its own
// (sqlite3_backup from another file into it).
type restorer interface {
	NewRestore(srcURI string) (*sqlite.Backup, error)
}

// restoreFrom copies the database at path over the copy, page size and
// all, in one SQLite write transaction (sqlite3_backup): it waits for
// readers as a commit does (the busy timeout), and a crash in it leaves a
// hot journal that rolls it back.
func (c *copyDB) restoreFrom(ctx context.Context, path string) error {
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("write the copy %s: %w", c.path, err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		r, ok := dc.(restorer)
		if !ok {
			return fmt.Errorf("the SQLite driver cannot copy a database (%T)", dc)
		}
		b, err := r.NewRestore(sqliteuri.File(path, "mode=ro"))
		if err != nil {
			return err
		}
		_, err = b.Step(-1)
		if ferr := b.Finish(); err == nil {
			err = ferr
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("copy the new state over the copy %s: %w", c.path, err)
	}
	return nil
}

// writePage1 writes page 1 of the copy in one transaction.
func (c *copyDB) writePage1(ctx context.Context, page1 []byte) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin a write to the copy %s: %w", c.path, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO sqlite_dbpage(pgno, data) VALUES(1, ?)", page1); err != nil {
		return fmt.Errorf("write page 1 of the copy %s: %w", c.path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit to the copy %s: %w", c.path, err)
	}
	return nil
}
