package follow

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/crc64iso"
	"github.com/walship/walship/internal/sqliteuri"
)

// copyDB is the follower's connection to the copy. The copy is in
// rollback-journal mode and every change to it is one SQLite write
// transaction that writes whole pages through the sqlite_dbpage virtual
// table, so SQLite itself journals the old pages, takes the EXCLUSIVE lock
// to write the file (readers, with a busy timeout, wait), bumps the change
// counter (readers drop their page cache), and rolls back a commit a crash
// interrupted (the hot journal). The follower never opens the copy's file
// any other way while this connection is open: POSIX locks are released
// when any descriptor of the file in the process is closed.
type copyDB struct {
	db   *sql.DB
	path string
}

// busyTimeoutMS is how long the follower waits for readers to finish
// before a commit gives up (and is retried after a back-off, see
// busyBackoff). While it waits to commit, SQLite holds the PENDING lock,
// which keeps new readers out: they wait with their own busy timeout, so
// it must be shorter than theirs (the README asks readers for 5 s) for
// them never to fail with SQLITE_BUSY because of the follower.
const busyTimeoutMS = 2000

// maxBusyBackoff bounds busyBackoff.
const maxBusyBackoff = 30 * time.Second

// busyBackoff is how long the follower leaves the copy to its readers
// after n commits in a row gave up waiting for them (n >= 1): at least as
// long as it kept them out, doubling, so that readers that open
// transactions back to back are not shut out at every interval.
func busyBackoff(n int) time.Duration {
	d := time.Duration(busyTimeoutMS) * time.Millisecond
	for ; n > 1 && d < maxBusyBackoff; n-- {
		d *= 2
	}
	return min(d, maxBusyBackoff)
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (the driver's error
// has its result code), extended codes included.
func isBusy(err error) bool {
	var c interface{ Code() int }
	return errors.As(err, &c) && c.Code()&0xff == 5
}

func openCopy(path string) (*copyDB, error) {
	db, err := sql.Open("sqlite", sqliteuri.File(path, fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=journal_mode(delete)&_txlock=immediate", busyTimeoutMS)))
	if err != nil {
		return nil, fmt.Errorf("open the copy %s: %w", path, err)
	}
	// One connection: its locks are the follower's, and a transaction's
	// statements run on it.
	db.SetMaxOpenConns(1)
	c := &copyDB{db: db, path: path}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("open the copy %s in rollback-journal mode: %w", path, err)
	}
	if mode != "delete" {
		db.Close()
		return nil, fmt.Errorf("the copy %s stays in journal mode %q: another process holds it in WAL mode; stop it and start the follower again", path, mode)
	}
	return c, nil
}

func (c *copyDB) close() error { return c.db.Close() }

// sums reads the copy in one read transaction and returns the checksum
// of every page but page 1, page 1 itself, and its page size.
func (c *copyDB) sums(ctx context.Context) (sums []ltx.Checksum, page1 []byte, err error) {
	tx, err := c.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, fmt.Errorf("read the copy %s: %w", c.path, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
	if err != nil {
		return nil, nil, fmt.Errorf("read the copy %s: %w", c.path, err)
	}
	defer rows.Close()
	h := crc64iso.New()
	for rows.Next() {
		var pgno uint32
		var data []byte
		if err := rows.Scan(&pgno, &data); err != nil {
			return nil, nil, fmt.Errorf("read the copy %s: %w", c.path, err)
		}
		if pgno != uint32(len(sums))+1 {
			return nil, nil, fmt.Errorf("read the copy %s: page %d after page %d", c.path, pgno, len(sums))
		}
		if pgno == 1 {
			page1 = data
		}
		var sum ltx.Checksum
		if pgno != 1 && pgno != ltx.LockPgno(uint32(len(page1))) {
			sum = ltx.ChecksumPageWithHasher(h, pgno, data)
		}
		sums = append(sums, sum)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read the copy %s: %w", c.path, err)
	}
	if page1 == nil {
		return nil, nil, fmt.Errorf("the copy %s is empty", c.path)
	}
	return sums, page1, nil
}

// batch is what one commit applies: verified LTX files, in order, on the
// state of commit pages before (old), giving the state of commit pages
// after (new).
type batch struct {
	files     []string // the downloaded files, verified
	oldPages  uint32
	newPages  uint32
	pageSize  uint32
	oldHeader []byte // the state's page-1 header before the batch
}

// apply writes a batch in one SQLite write transaction. Before the commit,
// beforeCommit is given the state's page-1 header after the batch (the
// record of both states is written then).
func (c *copyDB) apply(ctx context.Context, b batch, beforeCommit func(header []byte) error) (header []byte, err error) {
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("write the copy %s: %w", c.path, err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return nil, fmt.Errorf("begin a write to the copy %s: %w", c.path, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	put, err := tx.PrepareContext(ctx, "INSERT INTO sqlite_dbpage(pgno, data) VALUES(?, ?)")
	if err != nil {
		return nil, fmt.Errorf("write the copy %s: %w", c.path, err)
	}
	defer put.Close()
	w := &pageWriter{ctx: ctx, put: put, size: b.oldPages, pageSize: b.pageSize}
	var page1 []byte // the state's page 1, when a file of the batch holds it
	for _, name := range b.files {
		p1, err := w.file(name)
		if err != nil {
			return nil, fmt.Errorf("write the copy %s: %w", c.path, err)
		}
		if p1 != nil {
			page1 = p1
		}
	}
	if err := w.resize(b.newPages); err != nil {
		return nil, fmt.Errorf("write the copy %s: %w", c.path, err)
	}
	if page1 == nil {
		// Page 1 is written at every commit (its size field and journal
		// mode are the follower's): the copy's, with the state's bytes.
		var cur []byte
		if err := tx.QueryRowContext(ctx, "SELECT data FROM sqlite_dbpage WHERE pgno = 1").Scan(&cur); err != nil {
			return nil, fmt.Errorf("read page 1 of the copy %s: %w", c.path, err)
		}
		page1 = normalize(cur, b.oldHeader)
	}
	if _, err := put.ExecContext(ctx, 1, patch(page1, b.newPages)); err != nil {
		return nil, fmt.Errorf("write page 1 of the copy %s: %w", c.path, err)
	}
	header = append([]byte(nil), page1[:headerLen]...)
	if err := beforeCommit(header); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit to the copy %s: %w", c.path, err)
	}
	return header, nil
}

// pageWriter writes pages of LTX files through sqlite_dbpage, in the
// order SQLite accepts them: the database grows one page at a time, so
// the pages a file grows the database into without holding them are
// written as zeros first (as a restore leaves them), and it shrinks by a
// NULL written past the new end.
type pageWriter struct {
	ctx      context.Context
	put      *sql.Stmt
	size     uint32 // pages the copy has in this transaction
	pageSize uint32
	zero     []byte
}

func (w *pageWriter) write(pgno uint32, data []byte) error {
	if _, err := w.put.ExecContext(w.ctx, pgno, data); err != nil {
		return fmt.Errorf("write page %d: %w", pgno, err)
	}
	w.size = max(w.size, pgno)
	return nil
}

// grow writes zero pages up to page n-1, past the copy's end.
func (w *pageWriter) grow(n uint32) error {
	if w.zero == nil {
		w.zero = make([]byte, w.pageSize)
	}
	for pgno := w.size + 1; pgno < n; pgno++ {
		if pgno == ltx.LockPgno(w.pageSize) {
			w.size = pgno // SQLite never writes the lock page
			continue
		}
		if err := w.write(pgno, w.zero); err != nil {
			return err
		}
	}
	return nil
}

// resize makes the copy n pages long.
func (w *pageWriter) resize(n uint32) error {
	if n > w.size {
		return w.grow(n + 1)
	}
	if n < w.size {
		if _, err := w.put.ExecContext(w.ctx, n+1, nil); err != nil {
			return fmt.Errorf("truncate to %d pages: %w", n, err)
		}
		w.size = n
	}
	return nil
}

// file writes the pages of one downloaded LTX file and returns its page 1
// (nil if it has none) unwritten: the commit writes page 1 last.
func (w *pageWriter) file(name string) (page1 []byte, err error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := ltx.NewDecoder(f)
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	hdr := dec.Header()
	if hdr.PageSize != w.pageSize {
		return nil, fmt.Errorf("%s has pages of %d bytes, the copy %d", name, hdr.PageSize, w.pageSize)
	}
	data := make([]byte, hdr.PageSize)
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, data); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decode %s: %w", name, err)
		}
		if ph.Pgno == 1 {
			page1 = append([]byte(nil), data...)
			if w.size == 0 {
				// An empty copy grows from page 1 (written again last).
				if err := w.write(1, patch(page1, hdr.Commit)); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err := w.grow(ph.Pgno); err != nil {
			return nil, err
		}
		if err := w.write(ph.Pgno, data); err != nil {
			return nil, err
		}
	}
	if err := dec.Close(); err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	return page1, w.resize(hdr.Commit)
}
