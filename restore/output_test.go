package restore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
)

// TestConcurrentRestoresToOnePath: restores to one output at the same time
// never mix: each either succeeds alone or is refused at once, naming the
// other; the output is then exactly the state one of them restored, and
// nothing else is left beside it.
func TestConcurrentRestoresToOnePath(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, l0Each(1, 10))
	dir, out := outPath(t)
	ctx := context.Background()
	for round := range 5 {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			won  []ltx.TXID
			errs []error
		)
		start := make(chan struct{})
		for txid := ltx.TXID(3); txid <= 10; txid++ {
			wg.Go(func() {
				<-start
				opts := noCheck
				opts.Force = true
				opts.Target = restore.Target{TXID: txid}
				_, err := restore.Restore(ctx, c, out, opts)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					won = append(won, txid)
				} else {
					errs = append(errs, err)
				}
			})
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			if !strings.Contains(err.Error(), "another restore") || !strings.Contains(err.Error(), "is writing") {
				t.Fatalf("round %d: a restore racing others failed otherwise: %v", round, err)
			}
		}
		if len(won) == 0 {
			t.Fatalf("round %d: every restore was refused", round)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		match := false
		for _, txid := range won {
			match = match || bytes.Equal(got, h.bytes(txid))
		}
		if !match {
			t.Fatalf("round %d: the output is none of the states restored (TXIDs %v)", round, won)
		}
		checkNothingWritten(t, dir, "restored.db")
	}
}

// replaceSteps are the steps of a replacement of restored.db.
var replaceSteps = []string{"journal", "aside restored.db-wal", "aside restored.db-shm", "aside restored.db-journal", "renamed"}

// oldDatabases are the databases a replacement must not lose, at path:
// one whose newest commits are in its WAL, and one a writer killed in the
// middle of a commit left with its hot rollback journal. Each returns the
// image its committed state reads.
var oldDatabases = map[string]func(t *testing.T, path string) testutil.Image{
	"wal":         oldDatabaseWithWAL,
	"hot journal": oldDatabaseWithHotJournal,
}

// TestForceKilled: a restore with Force killed after any step of the
// replacement of an existing database whose newest commits live in its WAL
// loses nothing. The kill is the directory as it was at that step, linked
// aside; RecoverOutput there (which every later restore runs first) leaves
// either the old database, every commit of it readable, or the restored
// one, and nothing beside it.
func TestForceKilled(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, l0Each(1, 10))
	for kind, oldDatabase := range oldDatabases {
		t.Run(kind, func(t *testing.T) {
			dir, out := outPath(t)
			old := oldDatabase(t, out)
			killed := map[string]string{} // step: a copy of the directory then
			opts := restore.WithReplaceStep(restore.Options{Force: true, IntegrityCheck: "none", Target: restore.Target{TXID: 7}}, func(step string) error {
				killed[step] = t.TempDir()
				linkFiles(t, dir, killed[step])
				return nil
			})
			if _, err := restore.Restore(context.Background(), c, out, opts); err != nil {
				t.Fatal(err)
			}
			for _, step := range replaceSteps {
				kdir := killed[step]
				if kdir == "" {
					t.Fatalf("the replacement has no step %q", step)
				}
				kout := filepath.Join(kdir, "restored.db")
				if err := restore.RecoverOutput(kout); err != nil {
					t.Fatalf("killed after %q: recover: %v", step, err)
				}
				if step == "renamed" {
					if got, err := os.ReadFile(kout); err != nil || !bytes.Equal(got, h.bytes(7)) {
						t.Fatalf("killed once the new file was in place: the output is not the restored TXID 7 (%v)", err)
					}
					if _, err := os.Stat(kout + "-journal"); err == nil {
						t.Fatal("killed once the new file was in place: the old database's journal is beside it")
					}
				} else if got := committedImage(t, kout); got != old {
					t.Fatalf("killed after %q: the old database reads %d pages %s after recovery; it had %d pages %s", step, got.Pages, got.Hash, old.Pages, old.Hash)
				}
				checkOnlyDatabase(t, kdir, step)
			}
		})
	}
}

// TestForceStepFails: a step of a replacement that fails puts the old
// database back at once, every commit of it readable.
func TestForceStepFails(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, l0Each(1, 10))
	for kind, oldDatabase := range oldDatabases {
		for _, step := range replaceSteps[:4] {
			t.Run(kind+"/"+step, func(t *testing.T) {
				dir, out := outPath(t)
				old := oldDatabase(t, out)
				failed := errors.New("injected")
				opts := restore.WithReplaceStep(restore.Options{Force: true, IntegrityCheck: "none", Target: restore.Target{TXID: 7}}, func(s string) error {
					if s == step {
						return failed
					}
					return nil
				})
				if _, err := restore.Restore(context.Background(), c, out, opts); !errors.Is(err, failed) {
					t.Fatalf("restore failing at %q: %v", step, err)
				}
				if got := committedImage(t, out); got != old {
					t.Fatalf("failed at %q: the old database reads %d pages %s; it had %d pages %s", step, got.Pages, got.Hash, old.Pages, old.Hash)
				}
				checkOnlyDatabase(t, dir, step)
			})
		}
	}
}

// TestForceOverHotJournal: a restore with Force over a database that a
// writer killed mid-commit left with its hot rollback journal (a real
// one, captured from an open SQLite transaction) gives the restored
// database exactly, and SQLite, opening it read-write as an application
// does, finds no journal to roll back into it. Without Force, the journal
// alone (its database deleted) is refused as a database is.
func TestForceOverHotJournal(t *testing.T) {
	ctx := context.Background()
	h, _ := realHistory(t)
	last := h.last()
	c := newReplica(t)
	writeAll(t, h, c, l0Each(1, last))
	dir, out := outPath(t)
	oldDatabaseWithHotJournal(t, out)

	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}
	journal, err := os.ReadFile(out + "-journal")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Restore(ctx, c, out, noCheck); err == nil || !strings.Contains(err.Error(), "-journal already exists") {
		t.Fatalf("a restore beside another database's hot journal: %v", err)
	}
	if b, err := os.ReadFile(out + "-journal"); err != nil || !bytes.Equal(b, journal) {
		t.Fatalf("the refused restore changed the journal (%v)", err)
	}

	for _, withDB := range []bool{false, true} {
		if withDB {
			oldDatabaseWithHotJournal(t, out)
		}
		opts := noCheck
		opts.Force = true
		if _, err := restore.Restore(ctx, c, out, opts); err != nil {
			t.Fatal(err)
		}
		openReadWrite(t, out)
		if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, h.bytes(last)) {
			t.Fatalf("with the old database %v: once opened by SQLite, the restored database is not TXID %s: the old journal was rolled back into it (%v)", withDB, last, err)
		}
		checkNothingWritten(t, dir, "restored.db")
		if err := os.Remove(out); err != nil {
			t.Fatal(err)
		}
	}
}

// openReadWrite opens the database at path read-write and reads it, as an
// application does: SQLite rolls back a hot journal it finds beside it.
func openReadWrite(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
}

// committedImage is the image of the database at path once SQLite rolled
// back a hot journal beside it (a read-only reader cannot).
func committedImage(t *testing.T, path string) testutil.Image {
	t.Helper()
	openReadWrite(t, path)
	return imageOf(t, path)
}

// oldDatabaseWithHotJournal writes at path a database that a writer
// killed in the middle of a commit left: some pages of the transaction
// written, and the hot journal that SQLite rolls back at the next open. It
// returns the image of its committed state.
func oldDatabaseWithHotJournal(t *testing.T, path string) testutil.Image {
	t.Helper()
	src := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=journal_mode(delete)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	for i, q := range []string{
		"CREATE TABLE t (v TEXT)",
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 400) INSERT INTO t SELECT 'committed ' || hex(randomblob(100)) FROM c",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
	}
	db.Close()
	img := imageOf(t, src)
	b, journal, err := testutil.HotJournal(context.Background(), src, "t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+"-journal", journal, 0o644); err != nil {
		t.Fatal(err)
	}
	return img
}

// checkOnlyDatabase fails if dir holds anything a restore leaves only
// while it runs: a lock, a journal, a temporary file, a file moved aside.
func checkOnlyDatabase(t *testing.T, dir, when string) {
	t.Helper()
	for _, name := range dirNames(t, dir) {
		if strings.Contains(name, ".restore-") || strings.Contains(name, ".tmp") || strings.HasSuffix(name, ".replaced") {
			t.Fatalf("after %q: %s is left: %v", when, name, dirNames(t, dir))
		}
	}
}

// linkFiles links the files of dir into to: the directory as a kill would
// leave it, the same files (inodes) under the same names, since a
// replacement only renames them.
func linkFiles(t *testing.T, dir, to string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Link(filepath.Join(dir, e.Name()), filepath.Join(to, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// oldDatabaseWithWAL writes at path a database whose newest commits are in
// its WAL only, and returns its image.
func oldDatabaseWithWAL(t *testing.T, path string) testutil.Image {
	t.Helper()
	src := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=journal_mode(wal)&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for i, q := range []string{"CREATE TABLE t (v TEXT)", "PRAGMA wal_checkpoint(TRUNCATE)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
	}
	for i := range 20 {
		if _, err := db.Exec("INSERT INTO t VALUES (?)", fmt.Sprintf("only in the WAL %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	img, err := testutil.LogicalImage(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(src + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if suffix == "-wal" && len(b) == 0 {
			t.Fatal("the old database's WAL is empty")
		}
		if err := os.WriteFile(path+suffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func imageOf(t *testing.T, path string) testutil.Image {
	t.Helper()
	img, err := testutil.LogicalImage(context.Background(), path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return img
}

// TestForceRollbackRefusedThenDone: a replacement that fails after moving
// the old WAL aside, when a WAL appeared meanwhile (the application opened
// the database), keeps both and says so; once the new WAL is moved away,
// the next recovery puts the old one back. Nothing is deleted.
func TestForceRollbackRefusedThenDone(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, l0Each(1, 10))
	_, out := outPath(t)
	old := oldDatabaseWithWAL(t, out)
	failed := errors.New("injected")
	opts := restore.WithReplaceStep(restore.Options{Force: true, IntegrityCheck: "none", Target: restore.Target{TXID: 7}}, func(s string) error {
		if s == "aside restored.db-wal" {
			if err := os.WriteFile(out+"-wal", nil, 0o644); err != nil {
				return err
			}
			return failed
		}
		return nil
	})
	_, err := restore.Restore(context.Background(), c, out, opts)
	if !errors.Is(err, failed) || !strings.Contains(err.Error(), "exists again") {
		t.Fatalf("restore: %v; want the step's error and the refused rollback", err)
	}
	if err := restore.RecoverOutput(out); err == nil {
		t.Fatal("recovery with two WALs went ahead")
	}
	if err := os.Remove(out + "-wal"); err != nil {
		t.Fatal(err)
	}
	if err := restore.RecoverOutput(out); err != nil {
		t.Fatalf("recover: %v", err)
	}
	if got := imageOf(t, out); got != old {
		t.Fatalf("the old database reads %d pages %s; it had %d pages %s", got.Pages, got.Hash, old.Pages, old.Hash)
	}
}

// TestDamagedJournalBeforeAnyMove: a journal written part way, before
// anything was moved aside, is nothing to recover: it is removed, and the
// next restore goes on.
func TestDamagedJournalBeforeAnyMove(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, l0Each(1, 10))
	dir, out := outPath(t)
	if err := os.WriteFile(filepath.Join(dir, ".restored.db.restore-journal"), []byte(`{"te`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Restore(context.Background(), c, out, noCheck); err != nil {
		t.Fatalf("restore after a damaged journal: %v", err)
	}
	checkNothingWritten(t, dir, "restored.db")
}

// TestStaleShmOnly: a shared-memory index left alone at the output is no
// database: a restore without Force writes the database, and the stale
// index is gone (SQLite would otherwise read it with the new file).
func TestStaleShmOnly(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, l0Each(1, 10))
	dir, out := outPath(t)
	if err := os.WriteFile(out+"-shm", make([]byte, 32768), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := noCheck
	opts.Target = restore.Target{TXID: 9}
	if _, err := restore.Restore(context.Background(), c, out, opts); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, h.bytes(9)) {
		t.Fatalf("the output is not TXID 9 (%v)", err)
	}
	checkNothingWritten(t, dir, "restored.db")
}
