package walship_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage/file"
)

// makeDB creates a WAL-mode database with one table a(v) holding v.
func makeDB(t *testing.T, path string, pageSize int, v string) {
	t.Helper()
	d, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, q := range []string{fmt.Sprintf("PRAGMA page_size=%d", pageSize), "CREATE TABLE a(v TEXT)", "INSERT INTO a VALUES('" + v + "')", "PRAGMA journal_mode=WAL"} {
		if _, err := d.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

// openEngine opens the engine on the database at path, replicating to a
// directory.
func openEngine(t *testing.T, path, replicaDir string) (*walship.DB, *file.Client) {
	t.Helper()
	replica := file.New(replicaDir)
	db, err := walship.NewDB(path, walship.Options{Logger: quietLogger()}, walship.NewReplica("r", replica))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return db, replica
}

// restoreLatestMatches restores the latest state of replica and compares it
// page for page with the database at path.
func restoreLatestMatches(t *testing.T, replica *file.Client, path string) {
	t.Helper()
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "latest.db")
	res, err := restore.Restore(ctx, replica, out, restore.Options{IntegrityCheck: "full"})
	if err != nil {
		t.Fatalf("restore latest: %v", err)
	}
	want, err := testutil.LogicalImage(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := testutil.FileImage(out, int(res.PageSize))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("restored TXID %s: %d pages %s; the database has %d pages %s", res.TXID, got.Pages, got.Hash[:12], want.Pages, want.Hash[:12])
	}
}

// While the engine is down, pages change again and a checkpoint backfills
// them without restarting the log. On resume, the frames past the replicated
// position must become pending before the application's next write restarts
// the log, or those changes are lost from the replica.
func TestResumeKeepsFramesPastThePosition(t *testing.T) {
	h := newHarness(t)
	h.exec("CREATE TABLE b (v TEXT)")
	h.exec("INSERT INTO b VALUES ('b1')")
	h.exec("PRAGMA wal_autocheckpoint=0")
	h.open(walship.Options{})
	h.exec("UPDATE t SET n = 1")
	h.exec("INSERT INTO t (n) VALUES (2)")
	h.exec("UPDATE b SET v = 'b2'")
	h.sync()
	if err := h.db.Close(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.exec("INSERT INTO t (n) VALUES (3)")
	h.exec("UPDATE b SET v = 'b3'")
	h.exec("PRAGMA wal_checkpoint(PASSIVE)")
	h.open(walship.Options{})
	h.exec("INSERT INTO t (n) VALUES (4)") // restarts the log
	h.sync()
	h.verifyAll()
	restoreLatestMatches(t, h.replica, h.path)
}

// The database is replaced by one with another page size: the engine stages
// a full copy and a snapshot, and the latest state restores.
func TestReplacedWithAnotherPageSize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	makeDB(t, path, 4096, "old")
	db, replica := openEngine(t, path, filepath.Join(dir, "replica"))
	ctx := context.Background()
	if err := walship.Upload(ctx, db); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.db")
	makeDB(t, other, 8192, "new")
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := walship.Upload(ctx, db); err != nil {
		t.Fatal(err)
	}
	restoreLatestMatches(t, replica, path)
	// The state before the replacement still restores too.
	if _, err := restore.Restore(ctx, replica, filepath.Join(dir, "first.db"), restore.Options{Target: restore.Target{TXID: 1}}); err != nil {
		t.Fatal(err)
	}
}

// The database disappears for a moment while an operator swaps in another
// copy: syncs fail meanwhile and replication continues once it is back.
func TestDatabaseMissingDuringReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	makeDB(t, path, 4096, "old")
	db, replica := openEngine(t, path, filepath.Join(dir, "replica"))
	ctx := context.Background()
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Sync(ctx); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("sync with the database missing: %v; want an error naming it", err)
	}
	makeDB(t, filepath.Join(dir, "new.db"), 4096, "new")
	if err := os.Rename(filepath.Join(dir, "new.db"), path); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Sync(ctx); err != nil {
		t.Fatalf("replication did not recover: %v", err)
	}
	if err := walship.Upload(ctx, db); err != nil {
		t.Fatal(err)
	}
	restoreLatestMatches(t, replica, path)
}

// cancelAfter is a context that is cancelled at its k-th look at Done or Err,
// to interrupt a checkpoint at every point in turn.
type cancelAfter struct {
	context.Context
	n, k int64
	once sync.Once
	c    chan struct{}
}

func (c *cancelAfter) tick() {
	if atomic.AddInt64(&c.n, 1) >= c.k {
		c.once.Do(func() { close(c.c) })
	}
}
func (c *cancelAfter) Done() <-chan struct{} { c.tick(); return c.c }
func (c *cancelAfter) Err() error {
	c.tick()
	select {
	case <-c.c:
		return context.Canceled
	default:
		return nil
	}
}
func (c *cancelAfter) Deadline() (time.Time, bool) { return time.Time{}, false }

// A checkpoint cancelled at any point must neither leave the application's
// write lock taken nor lose the pin; replication carries on correctly.
func TestCheckpointCancelledAnywhere(t *testing.T) {
	completed := false
	for k := int64(1); k < 400 && !completed; k++ {
		h := newHarness(t)
		h.exec("PRAGMA busy_timeout=2000")
		h.open(walship.Options{})
		h.exec("INSERT INTO t (n) VALUES (1)")
		err := h.db.Checkpoint(&cancelAfter{Context: h.ctx, k: k, c: make(chan struct{})}, false)
		completed = err == nil
		h.exec("INSERT INTO t (n) VALUES (2)") // fails if the write lock leaked
		h.sync()
		if err := h.db.Checkpoint(h.ctx, false); err != nil {
			t.Fatalf("k=%d: checkpoint after a cancelled one: %v", k, err)
		}
		h.exec("INSERT INTO t (n) VALUES (3)")
		h.sync()
		h.verifyAll()
		h.db.Close(h.ctx)
	}
	if !completed {
		t.Fatal("no checkpoint ran to completion: the test never passed the last cancellation point")
	}
}

// When the WAL no longer shows the way from the replicated state (the
// application checkpointed and truncated it while walship was stopped), the
// engine stages only the pages that differ, found by the page checksums it
// recorded, rather than a full copy.
func TestResumeStagesOnlyChangedPages(t *testing.T) {
	h := newHarness(t)
	rng := randFor(t)
	for range 200 {
		h.exec("INSERT INTO t (v) VALUES (?)", randBytes(rng, 1000))
	}
	h.open(walship.Options{})
	if err := h.db.Close(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.exec("UPDATE t SET n = 7 WHERE id = 3")
	h.exec("PRAGMA wal_checkpoint(TRUNCATE)")
	h.open(walship.Options{})
	pages := pagesInFile(t, h.replica, 0, h.db.Pos().TXID)
	if total := pageCount(t, h); pages == 0 || pages > 5 {
		t.Fatalf("the resumed file holds %d of the database's %d pages; want only the changed ones", pages, total)
	}
	h.verifyAll()
	h.verifyChain()

	// A stale record (from an older TXID) is not trusted: a full copy follows.
	sums := filepath.Join(walship.MetaPath(h.path), "checksums")
	old, err := os.ReadFile(sums)
	if err != nil {
		t.Fatal(err)
	}
	h.exec("UPDATE t SET n = 8 WHERE id = 4")
	h.sync()
	if err := h.db.Close(h.ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sums, old, 0o644); err != nil {
		t.Fatal(err)
	}
	h.exec("UPDATE t SET n = 9 WHERE id = 5")
	h.exec("PRAGMA wal_checkpoint(TRUNCATE)")
	h.open(walship.Options{})
	if pages, total := pagesInFile(t, h.replica, 0, h.db.Pos().TXID), pageCount(t, h); pages != total {
		t.Fatalf("with a stale checksum record the file holds %d of %d pages; want a full copy", pages, total)
	}
	h.verifyAll()
	h.verifyChain()
}

// pagesInFile counts the pages of one replica file.
func pagesInFile(t *testing.T, c *file.Client, level int, txid ltx.TXID) int {
	t.Helper()
	rc, err := c.OpenLTXFile(context.Background(), level, txid, txid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	dec := ltx.NewDecoder(rc)
	if err := dec.Verify(); err != nil {
		t.Fatal(err)
	}
	return dec.PageN()
}
