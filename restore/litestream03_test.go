package restore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/restore/litestream03"
	"github.com/walship/walship/storage/file"
)

// The tests of package litestream03 prove its reading of every object;
// these prove what restore adds: which backup a restore reads, and that a
// v0.3 restore holds and writes its output as every restore does.

const v03gen = "0123456789abcdef"

// sqliteFile returns the bytes of a SQLite database (rollback journal)
// holding n rows.
func sqliteFile(t *testing.T, n int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := db.Exec("INSERT INTO t (v) VALUES (randomblob(?))", 100+i); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// putV03 writes data, LZ4-compressed, as the object name of c, written at.
func putV03(t *testing.T, c *file.Client, name string, data []byte, at time.Time) {
	t.Helper()
	if err := testutil.WriteV03Object(c.Dir(), name, data, at); err != nil {
		t.Fatal(err)
	}
}

// v03Replica returns a replica holding only a Litestream v0.3 backup: two
// snapshots of one generation, of states one and two, written at t1 and t2.
func v03Replica(t *testing.T, t1, t2 time.Time) (c *file.Client, one, two []byte) {
	t.Helper()
	c = newReplica(t)
	one, two = sqliteFile(t, 10), sqliteFile(t, 40)
	putV03(t, c, litestream03.SnapshotName(v03gen, 0), one, t1)
	putV03(t, c, litestream03.SnapshotName(v03gen, 1), two, t2)
	return c, one, two
}

func TestRestoreLitestream03(t *testing.T) {
	t1, t2 := time.Date(2023, 5, 1, 10, 0, 0, 0, time.UTC), time.Date(2023, 5, 2, 10, 0, 0, 0, time.UTC)
	c, one, two := v03Replica(t, t1, t2)
	ctx := context.Background()
	opts := restore.Options{IntegrityCheck: "full"}
	for _, tc := range []struct {
		target restore.Target
		want   []byte
	}{
		{restore.Target{}, two},
		{restore.Target{Timestamp: t1.Add(time.Hour)}, one},
		{restore.Target{Timestamp: t2}, two},
	} {
		_, out := outPath(t)
		opts.Target = tc.target
		res, err := restore.Restore(ctx, c, out, opts)
		if err != nil {
			t.Fatalf("restore %s: %v", tc.target, err)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, tc.want) {
			t.Fatalf("restore %s: not the state of the snapshot written by then", tc.target)
		}
		if res.Litestream03 == nil || res.Litestream03.Generation != v03gen || res.TXID != 0 || res.Files != 1 || res.Path != out {
			t.Fatalf("restore %s: result %+v", tc.target, res)
		}
		checkOnlyDatabase(t, filepath.Dir(out), "a restore of a Litestream v0.3 backup")
	}

	// A TXID: v0.3 has none.
	dir, out := outPath(t)
	opts.Target = restore.Target{TXID: 3}
	if _, err := restore.Restore(ctx, c, out, opts); err == nil || !strings.Contains(err.Error(), "Litestream v0.3") || !strings.Contains(err.Error(), "-timestamp") {
		t.Fatalf("restore of a TXID: %v; want an error that says to use -timestamp", err)
	}
	checkNothingWritten(t, dir)

	// An existing database is replaced only with Force.
	opts.Target = restore.Target{}
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Restore(ctx, c, out, opts); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("restore over an existing database: %v", err)
	}
	opts.Force = true
	if _, err := restore.Restore(ctx, c, out, opts); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, two) {
		t.Fatal("-force did not replace the database")
	}
	checkOnlyDatabase(t, dir, "a forced restore of a Litestream v0.3 backup")
}

// TestRestoreLitestream03Fails: a damaged backup, or a database SQLite finds
// damaged, leaves nothing at the output path, and no temporary file.
func TestRestoreLitestream03Fails(t *testing.T) {
	t1, t2 := time.Date(2023, 5, 1, 10, 0, 0, 0, time.UTC), time.Date(2023, 5, 2, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()

	c, _, two := v03Replica(t, t1, t2)
	putV03(t, c, litestream03.SegmentName(v03gen, 1, 0), []byte("not a WAL"), t2.Add(time.Minute))
	dir, out := outPath(t)
	_, err := restore.Restore(ctx, c, out, restore.Options{})
	var oe *litestream03.ObjectError
	if !errors.As(err, &oe) || !strings.Contains(err.Error(), litestream03.SegmentName(v03gen, 1, 0)) || !strings.Contains(err.Error(), "no output was written") {
		t.Fatalf("restore of a damaged segment: %v", err)
	}
	checkNothingWritten(t, dir)

	// A snapshot with a database's header over pages that are not a
	// database's: SQLite's check finds it.
	c = newReplica(t)
	bad := bytes.Clone(two)
	for i := 4096; i < len(bad); i++ {
		bad[i] = byte(i * 7)
	}
	putV03(t, c, litestream03.SnapshotName(v03gen, 0), bad, t1)
	dir, out = outPath(t)
	if _, err := restore.Restore(ctx, c, out, restore.Options{IntegrityCheck: "full"}); err == nil || !strings.Contains(err.Error(), "integrity check") {
		t.Fatalf("restore of a damaged database: %v; want SQLite's check to fail it", err)
	}
	checkNothingWritten(t, dir)
}

// TestRestoreBesideLitestream03: a replica where walship's history
// continues an old v0.3 backup restores walship's latest state, and the
// v0.3 backup's for the times before walship's history.
func TestRestoreBesideLitestream03(t *testing.T) {
	h := newHistory(4096)
	for txid := 1; txid <= 6; txid++ {
		h.tx(uint32(txid), uint32(txid))
	}
	c := newReplica(t)
	writeAll(t, h, c, refs(l9(3), l0Each(4, 6)))
	old := h.states[1].at.Add(-48 * time.Hour)
	one := sqliteFile(t, 5)
	putV03(t, c, litestream03.SnapshotName(v03gen, 0), one, old)
	ctx := context.Background()

	_, out := outPath(t)
	res, err := restore.Restore(ctx, c, out, noCheck)
	if err != nil || res.TXID != 6 || res.Litestream03 != nil {
		t.Fatalf("latest: %v, %+v; want walship's TXID 6", err, res)
	}
	_, out = outPath(t)
	res, err = restore.Restore(ctx, c, out, restore.Options{Target: restore.Target{Timestamp: old}})
	if err != nil || res.Litestream03 == nil {
		t.Fatalf("a time before walship's history: %v, %+v; want the v0.3 backup's state", err, res)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, one) {
		t.Fatal("a time before walship's history: not the v0.3 snapshot")
	}
	// Between the v0.3 backup's end and walship's first file, neither
	// shows the state: no restore.
	dir, out := outPath(t)
	_, err = restore.Restore(ctx, c, out, restore.Options{Target: restore.Target{Timestamp: old.Add(time.Hour)}})
	if err == nil || !strings.Contains(err.Error(), "nothing shows what the database held in between") || !strings.Contains(err.Error(), old.UTC().Format(time.RFC3339Nano)) {
		t.Fatalf("a time between the v0.3 backup and walship's history: %v", err)
	}
	checkNothingWritten(t, dir)
	dir, out = outPath(t)
	_, err = restore.Restore(ctx, c, out, restore.Options{Target: restore.Target{Timestamp: old.Add(-time.Hour)}})
	if err == nil || !strings.Contains(err.Error(), "Litestream v0.3 backup holds nothing written at or before") {
		t.Fatalf("a time before both: %v", err)
	}
	checkNothingWritten(t, dir)
	// A TXID is walship's, whatever else the replica holds.
	_, out = outPath(t)
	if res, err := restore.Restore(ctx, c, out, restore.Options{IntegrityCheck: "none", Target: restore.Target{TXID: 5}}); err != nil || res.TXID != 5 {
		t.Fatalf("TXID 5: %v", err)
	}
}
