package sqlitemem_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/walship/walship/internal/sqlitemem"
)

// NoLookaside works before the process's first connection, and says so when
// it is too late.
func TestNoLookaside(t *testing.T) {
	if err := sqlitemem.NoLookaside(); err != nil {
		t.Fatalf("before any connection: %v", err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatalf("a connection without lookaside: %v", err)
	}
	if err := sqlitemem.NoLookaside(); err == nil {
		t.Fatal("after SQLite initialised, NoLookaside reported success")
	}
}
