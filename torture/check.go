package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	_ "modernc.org/sqlite"

	"github.com/walship/walship/internal/sqliteuri"
	"github.com/walship/walship/internal/testutil"
)

// The tables every database of the application holds: meta's one row says
// where in its history the database is; rows holds the content.
const schema = `
CREATE TABLE IF NOT EXISTS meta (
	id        INTEGER PRIMARY KEY CHECK (id = 1),
	c         INTEGER NOT NULL, -- commits applied
	next      INTEGER NOT NULL, -- the next row number
	branch    INTEGER NOT NULL, -- 0: the main history
	branch_at INTEGER NOT NULL  -- the last main commit before the branch
);
CREATE TABLE IF NOT EXISTS rows (n INTEGER PRIMARY KEY, w INTEGER NOT NULL, v BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS rows_w ON rows (w);
INSERT OR IGNORE INTO meta VALUES (1, 0, 1, 0, 0);`

// schemaObjects is what sqlite_schema must list, as "type name", sorted.
var schemaObjects = []string{"index rows_w", "table meta", "table rows"}

// mismatchError says that a database is not what it must be: not a state
// of the application's history, not the source's exact copy, or not a
// sound SQLite database at all. It is what the suite exists to find.
type mismatchError struct {
	path string
	what string
}

func (e *mismatchError) Error() string { return e.path + ": " + e.what }

func mismatchf(path, format string, args ...any) error {
	return &mismatchError{path: path, what: fmt.Sprintf(format, args...)}
}

// isMismatch reports whether err is (or wraps) a mismatch.
func isMismatch(err error) bool {
	var m *mismatchError
	return errors.As(err, &m)
}

// check opens the database at path and proves it is exactly the state of
// the history at the mark its meta row records: the schema, every row with
// its exact content, nothing else, and SQLite's integrity_check. withWAL
// reads it as an application would, its WAL included; otherwise the file
// alone is read (a restored database has no WAL). It returns the mark;
// every way the database can be wrong is a mismatch.
func (h history) check(ctx context.Context, path string, withWAL bool) (mark, error) {
	query := "mode=ro&immutable=1"
	if withWAL {
		query = "mode=ro&_pragma=busy_timeout(10000)"
	}
	if _, err := os.Stat(path); err != nil {
		return mark{}, mismatchf(path, "no database: %v", err)
	}
	db, err := sql.Open("sqlite", sqliteuri.File(path, query))
	if err != nil {
		return mark{}, mismatchf(path, "open: %v", err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return mark{}, mismatchf(path, "open: %v", err)
	}
	defer conn.Close()
	// One read transaction, so that the checks see one state.
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return mark{}, mismatchf(path, "begin: %v", err)
	}
	defer tx.Rollback()
	m, err := h.checkTx(ctx, tx)
	if err != nil {
		if ctx.Err() != nil {
			return m, ctx.Err()
		}
		return m, &mismatchError{path: path, what: err.Error()}
	}
	return m, nil
}

func (h history) checkTx(ctx context.Context, tx *sql.Tx) (mark, error) {
	var m mark
	if err := integrityCheck(ctx, tx); err != nil {
		return m, err
	}
	objects, err := schemaOf(ctx, tx)
	if err != nil {
		return m, err
	}
	if !slices.Equal(objects, schemaObjects) {
		return m, fmt.Errorf("schema holds %q, want %q", objects, schemaObjects)
	}
	var next, branch int64
	err = tx.QueryRowContext(ctx, `SELECT c, next, branch, branch_at FROM meta WHERE id = 1`).Scan(&m.commit, &next, &branch, &m.branchAt)
	if err != nil {
		return m, fmt.Errorf("read the meta row: %w", err)
	}
	m.branch = uint64(branch)
	if m.commit < 0 || m.branchAt < 0 || m.branchAt > m.commit || (m.branch == 0 && m.branchAt != 0) {
		return m, fmt.Errorf("meta row is impossible: commit %d, branch %d at %d", m.commit, m.branch, m.branchAt)
	}
	want := h.replay(m)
	if next != want.next {
		return m, fmt.Errorf("after commit %d (%s) meta says the next row is %d, want %d", m.commit, m, next, want.next)
	}
	return m, h.checkRows(ctx, tx, m, want)
}

// checkRows compares the rows table, in row order, with the state want.
func (h history) checkRows(ctx context.Context, tx *sql.Tx, m mark, want *state) error {
	expected := make([]int64, 0, len(want.rows))
	for n := range want.rows {
		expected = append(expected, n)
	}
	slices.Sort(expected)
	rows, err := tx.QueryContext(ctx, `SELECT n, w, v FROM rows ORDER BY n`)
	if err != nil {
		return fmt.Errorf("read rows: %w", err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var n, w int64
		var v []byte
		if err := rows.Scan(&n, &w, &v); err != nil {
			return fmt.Errorf("read rows: %w", err)
		}
		if i < len(expected) && expected[i] < n {
			return fmt.Errorf("after commit %d (%s): row %d is missing (written by commit %d)", m.commit, m, expected[i], want.rows[expected[i]])
		}
		if i == len(expected) || expected[i] != n {
			return fmt.Errorf("after commit %d (%s): row %d must not exist (its content says commit %d wrote it)", m.commit, m, n, w)
		}
		if ww := want.rows[n]; w != ww {
			return fmt.Errorf("after commit %d (%s): row %d was written by commit %d, want %d", m.commit, m, n, w, ww)
		}
		if p := h.payload(m, w, n); !bytes.Equal(v, p) {
			return fmt.Errorf("after commit %d (%s): row %d (written by commit %d) holds %d bytes that differ from the %d it was written with", m.commit, m, n, w, len(v), len(p))
		}
		i++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read rows: %w", err)
	}
	if i < len(expected) {
		return fmt.Errorf("after commit %d (%s): %d rows are missing, from row %d", m.commit, m, len(expected)-i, expected[i])
	}
	return nil
}

func (m mark) String() string {
	if m.branch == 0 {
		return "main history"
	}
	return fmt.Sprintf("branch %x from commit %d", m.branch, m.branchAt)
}

func integrityCheck(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("integrity_check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("integrity_check: %w", err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity_check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("integrity_check: %s", strings.Join(problems, "; "))
	}
	return nil
}

func schemaOf(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT type || ' ' || name FROM sqlite_schema ORDER BY name, type`)
	if err != nil {
		return nil, fmt.Errorf("read the schema: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("read the schema: %w", err)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out, rows.Err()
}

// sameBytes proves that the restored file is, byte for byte, the
// database at source as SQLite reads it (its WAL applied): what README
// promises of a restore ("you get back the database page for page").
func sameBytes(ctx context.Context, source, restored string) error {
	want, err := testutil.LogicalImage(ctx, source)
	if err != nil {
		return fmt.Errorf("read the source %s: %w", source, err)
	}
	pageSize, err := pageSizeOf(restored)
	if err != nil {
		return mismatchf(restored, "%v", err)
	}
	got, err := testutil.FileImage(restored, pageSize)
	if err != nil {
		return mismatchf(restored, "%v", err)
	}
	if got != want {
		return mismatchf(restored, "is not the source byte for byte: %d pages, sha256 %.12s; the source %s has %d pages, sha256 %.12s",
			got.Pages, got.Hash, source, want.Pages, want.Hash)
	}
	return nil
}

// pageSizeOf reads the page size from a database file's header.
func pageSizeOf(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var hdr [100]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return 0, fmt.Errorf("read the header: %w", err)
	}
	if !bytes.HasPrefix(hdr[:], []byte("SQLite format 3\x00")) {
		return 0, errors.New("not a SQLite database")
	}
	size := int(binary.BigEndian.Uint16(hdr[16:]))
	if size == 1 {
		size = 65536
	}
	return size, nil
}
