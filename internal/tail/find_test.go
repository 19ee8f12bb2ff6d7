package tail

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/wal"
)

// TestFindState: from the start of the WAL generation or from any commit
// before, FindState finds the commit after which the database had a given
// checksum, across transactions that grow the database, shrink it (VACUUM)
// and grow it again, and finds nothing for a state the generation never
// had.
func TestFindState(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	app.SetMaxOpenConns(1)
	// The database file holds a state of its own before the generation.
	for _, q := range []string{
		"PRAGMA wal_autocheckpoint=0",
		"CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)",
		"INSERT INTO t (v) SELECT randomblob(2000) FROM (SELECT 1 UNION ALL SELECT 2)",
		"PRAGMA wal_checkpoint(TRUNCATE)",
	} {
		if _, err := app.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	type state struct {
		end int64
		sum ltx.Checksum
	}
	var states []state
	for _, q := range []string{
		"INSERT INTO t (v) SELECT randomblob(3000) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 40) SELECT i FROM n)",
		"UPDATE t SET v = randomblob(100) WHERE id % 3 = 0",
		"DELETE FROM t WHERE id > 10",
		"VACUUM",
		"INSERT INTO t (v) VALUES (randomblob(5000))",
		"INSERT INTO t (v) SELECT randomblob(3000) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 20) SELECT i FROM n)",
		"DELETE FROM t WHERE id = 1",
	} {
		if _, err := app.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, state{fi.Size(), databaseChecksum(t, app)})
	}

	err = ReadOnly(ctx, path, time.Second, func(v *View) error {
		for i, want := range states {
			first := i
			for first > 0 && states[first-1].sum == want.sum {
				first--
			}
			for _, from := range []state{{end: wal.HeaderSize}, states[max(0, i-1)]} {
				if from.end > want.end {
					continue
				}
				end, st, err := v.FindState(from.end, want.sum, nil)
				if err != nil {
					t.Fatal(err)
				}
				if end != max(from.end, states[first].end) || st == nil || st.Total() != want.sum {
					t.Errorf("state %d from offset %d: found at offset %d; want %d", i, from.end, end, states[first].end)
				}
			}
		}
		if end, _, err := v.FindState(wal.HeaderSize, ltx.ChecksumFlag|12345, nil); err != nil || end != 0 {
			t.Errorf("a state the WAL never had: offset %d, %v; want none", end, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// databaseChecksum is the LTX checksum of the database as SQLite reads it.
func databaseChecksum(t *testing.T, db *sql.DB) ltx.Checksum {
	t.Helper()
	rows, err := db.Query("SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var sum ltx.Checksum
	for rows.Next() {
		var pgno uint32
		var data []byte
		if err := rows.Scan(&pgno, &data); err != nil {
			t.Fatal(err)
		}
		sum ^= ltx.ChecksumPage(pgno, data)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ltx.ChecksumFlag | sum
}
