package testutil

import (
	"context"
	"database/sql"
	"fmt"
	"os"

	"github.com/walship/walship/internal/sqliteuri"
)

// HotJournal captures what a process killed in the middle of a SQLite
// write transaction leaves: the database file with some of the
// transaction's pages already written, and its hot rollback journal. The
// database at path must be in rollback-journal mode (it is left as it
// was). The transaction changes every row of table (and so its pages), on
// a cache of a few pages: SQLite spills them to the file, syncing the
// journal (its page count written) first, as it does before any commit,
// and the files are read at that instant, the transaction still open.
func HotJournal(ctx context.Context, path, table string) (db, journal []byte, err error) {
	conn, err := sql.Open("sqlite", sqliteuri.File(path, "_pragma=journal_mode(delete)&_pragma=cache_size(2)"))
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "UPDATE "+table+" SET rowid = -rowid"); err != nil {
		return nil, nil, fmt.Errorf("change %s of %s: %w", table, path, err)
	}
	if journal, err = os.ReadFile(path + "-journal"); err != nil {
		return nil, nil, fmt.Errorf("no journal while a transaction is open on %s: %w", path, err)
	}
	if db, err = os.ReadFile(path); err != nil {
		return nil, nil, err
	}
	// The journal is hot only once SQLite synced its header with the
	// number of pages: before that a crash leaves nothing to roll back.
	if len(journal) < 28 || journal[8]|journal[9]|journal[10]|journal[11] == 0 {
		return nil, nil, fmt.Errorf("the journal of %s holds no synced page yet (%d bytes): change more pages", path, len(journal))
	}
	return db, journal, nil
}
