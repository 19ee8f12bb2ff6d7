package follow

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/walship/walship/internal/sqliteuri"
)

// Promote makes the copy at out a database of its own, for a standby's
// promotion: it gives page 1 back the bytes of the state's header that the
// copy altered (see altered: WAL mode, the change counter, the version
// numbers), under SQLite's exclusive lock, so that the file is the
// replica's state byte for byte and replication can go on from it without
// a full copy. Then it removes the follower's record and lock (Forget). It
// reports whether the header was restored: a copy whose record does not
// name one state, or whose page 1 is not that state's, is only forgotten
// (the replicator then writes a full copy, as after any change it cannot
// describe). Run must not be running on it.
func Promote(ctx context.Context, out string) (restored bool, err error) {
	rec, err := readRecord(out)
	if err != nil {
		return false, err
	}
	if rec != nil && len(rec.States) == 1 {
		if restored, err = restoreHeader(ctx, out, rec.States[0].Header); err != nil {
			return false, err
		}
	}
	return restored, Forget(out)
}

// restoreHeader writes header over page 1's header of the database at out
// if page 1 is header's state but for the altered ranges. SQLite cannot
// write it: a commit in either journal mode sets the change counter to the
// file's plus one. So the bytes are written to the file directly, while
// an exclusive SQLite transaction keeps every reader out, and that file
// is closed only after SQLite let go of its locks (closing another
// descriptor of the file would drop them).
func restoreHeader(ctx context.Context, out string, header []byte) (bool, error) {
	if fi, err := os.Stat(out + "-journal"); err == nil && fi.Size() > 0 {
		return false, nil // a journal to roll back first: leave it to SQLite
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	f, err := os.OpenFile(out, os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Errorf("open the copy %s to promote it: %w", out, err)
	}
	defer f.Close() // after db.Close, deferred before it
	db, err := sql.Open("sqlite", sqliteuri.File(out, fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeoutMS)))
	if err != nil {
		return false, fmt.Errorf("open the copy %s to promote it: %w", out, err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("open the copy %s to promote it: %w", out, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		if isBusy(err) {
			// A reader of the copy keeps it: rather than hold the
			// promotion up, leave the header to a full copy.
			return false, nil
		}
		return false, fmt.Errorf("lock the copy %s to promote it: %w", out, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	var page1 []byte
	if err := conn.QueryRowContext(ctx, "SELECT data FROM sqlite_dbpage WHERE pgno = 1").Scan(&page1); err != nil {
		return false, fmt.Errorf("read page 1 of the copy %s: %w", out, err)
	}
	if len(page1) < headerLen || !bytes.Equal(normalize(page1, header)[:headerLen], header) {
		return false, nil // not the state's page 1: nothing to restore
	}
	if _, err := f.WriteAt(header, 0); err != nil {
		return false, fmt.Errorf("write page 1 of the copy %s: %w", out, err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("write page 1 of the copy %s: %w", out, err)
	}
	return true, nil
}
