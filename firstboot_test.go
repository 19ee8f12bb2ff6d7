package walship_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/owner"
	"github.com/walship/walship/storage/file"
)

// TestRestoreIfMissing: a database missing from a new volume is restored
// from its replica with the identity of the database the replica belongs
// to, so that, even after the application wrote to it before walship
// started and at another path, replicating it continues the replica's
// history as its owner: no takeover, one chain of TXIDs.
func TestRestoreIfMissing(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	h.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	h.sync()
	if err := h.db.Close(h.ctx); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "volume", "app.db")
	db, err := walship.NewDB(path, walship.Options{Logger: quietLogger()}, walship.NewReplica("dir", h.replica))
	if err != nil {
		t.Fatal(err)
	}
	// The replica's owner ran in this very process, which exists: the
	// restored database holds its first write for twice this.
	db.SetOwnerRecheck(50 * time.Millisecond)
	restored, err := db.RestoreIfMissing(h.ctx)
	if err != nil || !restored {
		t.Fatalf("RestoreIfMissing = %v, %v; want the database restored", restored, err)
	}
	rec, _, err := owner.Read(h.ctx, h.replica)
	if err != nil {
		t.Fatal(err)
	}
	id, err := os.ReadFile(filepath.Join(walship.MetaPath(path), "identity"))
	if err != nil || strings.TrimSpace(string(id)) != rec.Database {
		t.Fatalf("the restored database's identity is %q (%v); want the replica owner's, %s", id, err, rec.Database)
	}
	if again, err := db.RestoreIfMissing(h.ctx); err != nil || again {
		t.Fatalf("RestoreIfMissing of a database that exists = %v, %v; want nothing done", again, err)
	}

	app := openApp(t, path)
	if _, err := app.Exec("INSERT INTO t (v) VALUES (randomblob(3000))"); err != nil {
		t.Fatal(err)
	}
	if err := db.RunOnce(h.ctx); err != nil {
		t.Fatalf("replicating the restored database: %v", err)
	}
	if rec, _, err = owner.Read(h.ctx, h.replica); err != nil {
		t.Fatal(err)
	}
	if rec.Path != path || rec.TakenOverFrom != "" || rec.HistoryFrom != 0 {
		t.Fatalf("owner record %+v; want the restored database, with no takeover", rec)
	}
	checkChain(t, h.ctx, h.replica)
}

// TestRestoreIfMissingNewestReplica: with a replica behind another (it
// was down), the missing database is restored from the one that holds the
// newest state, whatever the config order: restoring the older one would
// have the engine go on from the newer one's TXID over the older state,
// rolling back the commits between.
func TestRestoreIfMissingNewestReplica(t *testing.T) {
	h := newHarness(t)
	a, b := filepath.Join(h.dir, "a"), filepath.Join(h.dir, "b")
	runOnce := func() {
		t.Helper()
		db, err := walship.NewDB(h.path, walship.Options{Logger: quietLogger()},
			walship.NewReplica("a", file.New(a)), walship.NewReplica("b", file.New(b)))
		if err != nil {
			t.Fatal(err)
		}
		if err := db.RunOnce(h.ctx); err != nil {
			t.Fatal(err)
		}
	}
	h.exec("INSERT INTO t (v, n) VALUES (randomblob(3000), 1)")
	runOnce()
	behind := filepath.Join(h.dir, "a-behind")
	if err := os.CopyFS(behind, os.DirFS(a)); err != nil {
		t.Fatal(err)
	}
	h.exec("INSERT INTO t (v, n) VALUES (randomblob(3000), 2)")
	runOnce()

	path := filepath.Join(t.TempDir(), "app.db")
	db, err := walship.NewDB(path, walship.Options{Logger: quietLogger()},
		walship.NewReplica("a", file.New(behind)), walship.NewReplica("b", file.New(b)))
	if err != nil {
		t.Fatal(err)
	}
	if restored, err := db.RestoreIfMissing(h.ctx); err != nil || !restored {
		t.Fatalf("RestoreIfMissing = %v, %v; want the database restored", restored, err)
	}
	var n int
	if err := openApp(t, path).QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("restored %d rows (%v); want the newest replica's 2", n, err)
	}
}

// TestRestoreIfMissingEmptyReplica: with no backup anywhere, the database
// is left to the application.
func TestRestoreIfMissingEmptyReplica(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	db, err := walship.NewDB(path, walship.Options{Logger: quietLogger()},
		walship.NewReplica("a", file.New(filepath.Join(dir, "a"))), walship.NewReplica("b", file.New(filepath.Join(dir, "b"))))
	if err != nil {
		t.Fatal(err)
	}
	restored, err := db.RestoreIfMissing(context.Background())
	if err != nil || restored {
		t.Fatalf("RestoreIfMissing on empty replicas = %v, %v; want nothing done", restored, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a database was created: %v", err)
	}
}

// TestRestoreIfMissingUnreadableReplica: a replica that cannot be read is
// an error, not an empty replica: a fresh database beside a backup
// walship could not read would fork its history.
func TestRestoreIfMissingUnreadableReplica(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	if err := os.MkdirAll(replica, 0o755); err != nil {
		t.Fatal(err)
	}
	// Its ltx directory is a file: listing it fails, whoever runs the test.
	if err := os.WriteFile(filepath.Join(replica, "ltx"), []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := walship.NewDB(path, walship.Options{Logger: quietLogger()}, walship.NewReplica("dir", file.New(replica)))
	if err != nil {
		t.Fatal(err)
	}
	if restored, err := db.RestoreIfMissing(context.Background()); err == nil {
		t.Fatalf("RestoreIfMissing from an unreadable replica = %v, nil; want an error", restored)
	}
}

// TestReadyAndHalted: a database whose file does not exist is ready (the
// application creates it), one that replicates is, and one whose Run
// ended is halted.
func TestReadyAndHalted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	db, err := walship.NewDB(path, walship.Options{Logger: quietLogger(), SyncInterval: 10 * time.Millisecond, SyncIntervalSet: true},
		walship.NewReplica("dir", file.New(filepath.Join(dir, "replica"))))
	if err != nil {
		t.Fatal(err)
	}
	if db.Ready() {
		t.Fatal("ready before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- db.Run(ctx, time.Second) }()
	store := &walship.Store{DBs: []*walship.DB{db}}
	waitFor(t, "ready while waiting for the file", store.Ready)
	if got := store.Unopened(); len(got) != 0 {
		t.Fatalf("unopened %q before the file exists", got)
	}
	if db.Phase() != walship.PhaseWaiting {
		t.Fatalf("phase %s, want waiting", db.Phase())
	}
	app := openApp(t, path)
	if _, err := app.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replicating", func() bool { return db.Phase() == walship.PhaseReplicating })
	if !db.Ready() || db.Halted() != nil {
		t.Fatalf("replicating: ready %v, halted %v", db.Ready(), db.Halted())
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if store.Ready() || store.Halted() == nil || len(store.NotReady()) != 1 {
		t.Fatalf("after Run: ready %v, halted %v, not ready %q; want halted", store.Ready(), store.Halted(), store.NotReady())
	}
	if err := store.Unflushed(); err != nil || db.Pos().TXID == 0 {
		t.Fatalf("after Run: TXID %s, unflushed %v; want the database's TXIDs in the replica", db.Pos().TXID, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after 20s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
