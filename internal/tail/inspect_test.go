package tail

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/walship/walship/internal/testutil"
)

// TestReadOnly: the view is the database as its application sees it; while
// it is read, the application writes without waiting and cannot restart the
// log under it; and nothing of the database is written.
func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)&_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	app.SetMaxOpenConns(1)
	for _, q := range []string{
		"PRAGMA wal_autocheckpoint=0",
		"CREATE TABLE t (v BLOB)",
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 200) INSERT INTO t SELECT randomblob(3000) FROM n",
	} {
		if _, err := app.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	want, err := testutil.LogicalImage(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	files := func() [2][]byte {
		var b [2][]byte
		for i, p := range []string{path, path + "-wal"} {
			if b[i], err = os.ReadFile(p); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	before := files()
	if len(before[1]) == 0 {
		t.Fatal("the test database has no WAL frames: the view would read the database file alone")
	}

	calls := 0
	err = ReadOnly(ctx, path, time.Second, func(v *View) error {
		calls++
		pageSize, commit, err := v.Layout()
		if err != nil {
			return err
		}
		if int(commit) != want.Pages {
			t.Errorf("the view holds %d pages; SQLite reads %d", commit, want.Pages)
		}
		got, err := imageOf(v, pageSize, commit)
		if err != nil {
			return err
		}
		if got != want.Hash {
			t.Error("the view's pages are not the ones SQLite reads")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("fn ran %d times", calls)
	}
	if after := files(); !bytes.Equal(before[0], after[0]) || !bytes.Equal(before[1], after[1]) {
		t.Error("reading the view changed the database or its WAL")
	}

	// While a view is read, the application writes without waiting (its
	// busy timeout is zero), but cannot restart the log under it.
	err = ReadOnly(ctx, path, time.Second, func(v *View) error {
		if _, err := app.Exec("INSERT INTO t VALUES (randomblob(100))"); err != nil {
			t.Errorf("the application could not write while the view was read: %v", err)
		}
		var busy, logFrames, done int
		if err := app.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done); err != nil {
			t.Fatal(err)
		}
		if busy == 0 {
			t.Error("a truncating checkpoint succeeded while the view was read: the log was not pinned")
		}
		if v.Restarted() {
			t.Error("the log restarted under the view")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// imageOf hashes the pages of a view as testutil.LogicalImage hashes
// SQLite's.
func imageOf(v *View, pageSize, commit uint32) (string, error) {
	dir, err := os.MkdirTemp("", "view")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	copyPath := filepath.Join(dir, "copy.db")
	f, err := os.Create(copyPath)
	if err != nil {
		return "", err
	}
	pr := v.Pages(pageSize, true)
	buf := make([]byte, pageSize)
	for pgno := uint32(1); pgno <= commit; pgno++ {
		if err := pr.ReadPage(pgno, buf); err != nil {
			f.Close()
			return "", err
		}
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return "", err
		}
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	img, err := testutil.FileImage(copyPath, int(pageSize))
	return img.Hash, err
}

// TestReadOnlyRefusesRollbackJournal: reading a database in rollback-journal
// mode would block its writers.
func TestReadOnlyRefusesRollbackJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (v)"); err != nil {
		t.Fatal(err)
	}
	err = ReadOnly(context.Background(), path, time.Second, func(*View) error {
		t.Error("fn ran on a database in rollback-journal mode")
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "not in WAL mode") {
		t.Fatalf("error %v; want a refusal", err)
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "delete" {
		t.Fatalf("journal mode %q, %v: the check changed it", mode, err)
	}
}
