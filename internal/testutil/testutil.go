// Package testutil holds the test oracle: an independent reading of a
// database's pages through SQLite itself, to compare restores against.
package testutil

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	_ "modernc.org/sqlite"

	"github.com/walship/walship/internal/sqliteuri"
)

// Image is the identity of a database's logical content: the hash of all its
// pages, in order, as SQLite reads them (the WAL applied).
type Image struct {
	Pages int
	Hash  string
}

// LogicalImage reads every page of the database at path through SQLite's
// sqlite_dbpage table in one read transaction. It is independent of walship's
// WAL reader.
func LogicalImage(ctx context.Context, path string) (Image, error) {
	db, err := sql.Open("sqlite", sqliteuri.File(path, "mode=ro"))
	if err != nil {
		return Image{}, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return Image{}, err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return Image{}, err
	}
	defer tx.Rollback()
	return imageFromRows(ctx, tx)
}

// ImageOf is LogicalImage on an open connection or transaction, so a caller can
// take it inside its own read transaction.
func ImageOf(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) (Image, error) {
	return imageFromRows(ctx, q)
}

func imageFromRows(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) (Image, error) {
	rows, err := q.QueryContext(ctx, "SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
	if err != nil {
		return Image{}, err
	}
	defer rows.Close()
	h := sha256.New()
	n := 0
	for rows.Next() {
		var pgno int
		var data []byte
		if err := rows.Scan(&pgno, &data); err != nil {
			return Image{}, err
		}
		n++
		if pgno != n {
			return Image{}, fmt.Errorf("sqlite_dbpage returned page %d, want %d", pgno, n)
		}
		h.Write(data)
	}
	if err := rows.Err(); err != nil {
		return Image{}, err
	}
	return Image{Pages: n, Hash: hex.EncodeToString(h.Sum(nil))}, nil
}

// FileImage hashes a database file byte for byte (for a restored file, which
// has no WAL).
func FileImage(path string, pageSize int) (Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return Image{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Image{}, err
	}
	if n%int64(pageSize) != 0 {
		return Image{}, fmt.Errorf("%s: size %d is not a multiple of the page size %d", path, n, pageSize)
	}
	return Image{Pages: int(n / int64(pageSize)), Hash: hex.EncodeToString(h.Sum(nil))}, nil
}

// IntegrityCheck runs PRAGMA integrity_check on the database at path.
func IntegrityCheck(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", sqliteuri.File(path, "mode=ro&immutable=1"))
	if err != nil {
		return err
	}
	defer db.Close()
	var s string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&s); err != nil {
		return err
	}
	if s != "ok" {
		return fmt.Errorf("integrity_check: %s", s)
	}
	return nil
}

// Strings returns the one text column of each row of query, run on the
// database at path opened read-only (the WAL applied).
func Strings(ctx context.Context, path, query string) ([]string, error) {
	db, err := sql.Open("sqlite", sqliteuri.File(path, "mode=ro"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}
