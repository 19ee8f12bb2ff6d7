package tail

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/walship/walship/internal/sqliteuri"
)

// inspectAttempts is how many times ReadOnly reads a view again when the log
// restarted under it.
const inspectAttempts = 3

// ReadOnly calls fn with the database at path as of its WAL's end, for a
// check that must neither write to it nor block its application (walship
// verify). It opens the database read-only and holds a read transaction
// while fn runs: no checkpoint can then copy frames past that transaction
// into the database file, so the file and the frames the view reads stay
// one state. If the log restarted while fn read the view (possible when the
// transaction began on a fully checkpointed log), fn runs again on a new view.
//
// A database that is not in WAL mode is refused: a reader of one blocks
// its writers.
func ReadOnly(ctx context.Context, path string, busyTimeout time.Duration, fn func(*View) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer f.Close()
	if _, err := readDBHeader(f, path); err != nil {
		return err
	}
	sqldb, err := sql.Open("sqlite", sqliteuri.File(path, fmt.Sprintf("mode=ro&_pragma=busy_timeout(%d)", busyTimeout.Milliseconds())))
	if err != nil {
		return fmt.Errorf("open database %s: %w", path, err)
	}
	defer sqldb.Close()
	conn, err := sqldb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("open database %s: %w", path, err)
	}
	defer conn.Close()
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("database %s: %w", path, err)
	}
	if mode != "wal" {
		return fmt.Errorf("database %s is not in WAL mode (journal mode %q), so walship has not replicated it: walship replicate switches a database to WAL mode", path, mode)
	}
	tx, err := beginRead(ctx, conn)
	if err != nil {
		return fmt.Errorf("read database %s: %w", path, err)
	}
	defer tx.Rollback()

	t := &Tail{path: path, walPath: path + "-wal", dbFile: f}
	defer func() {
		if t.walFile != nil {
			t.walFile.Close()
		}
	}()
	for attempt := 1; ; attempt++ {
		v, err := t.View()
		if err != nil {
			return err
		}
		err = fn(v)
		if err == nil && v.Restarted() {
			err = ErrRestarted
		}
		if !errors.Is(err, ErrRestarted) || attempt == inspectAttempts {
			return err
		}
	}
}
