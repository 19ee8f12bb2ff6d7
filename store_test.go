package walship_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
	"github.com/walship/walship/storage/file"
)

// runStore runs s until the returned stop is called, which returns Run's
// error.
func runStore(t *testing.T, s *walship.Store) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, 10*time.Second) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// storeDB returns a new DB of the harness's database and replica, not
// opened.
func storeDB(t *testing.T, h *harness) *walship.DB {
	t.Helper()
	db, err := walship.NewDB(h.path, walship.Options{Logger: quietLogger(), SyncInterval: 10 * time.Millisecond, SyncIntervalSet: true},
		walship.NewReplica("dir", h.replica))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// status returns the store's status of the database at path.
func status(s *walship.Store, path string) (walship.DBStatus, bool) {
	for _, st := range s.Status(context.Background(), time.Now()) {
		if st.Path == path {
			return st, true
		}
	}
	return walship.DBStatus{}, false
}

// replicated reports whether every replica of the database at path holds
// what was captured of it, and something was.
func replicated(s *walship.Store, path string) bool {
	st, ok := status(s, path)
	if !ok || st.TXID == 0 || st.Phase != walship.PhaseReplicating.String() {
		return false
	}
	for _, r := range st.Replicas {
		if r.TXID < st.TXID {
			return false
		}
	}
	return true
}

// TestStoreAddRemove: a database added to a running store is replicated
// as one it started with; removing it captures its last commits and ships
// them before Remove returns, and the others go on.
func TestStoreAddRemove(t *testing.T) {
	a, b := newHarness(t), newHarness(t)
	a.exec("INSERT INTO t (v) VALUES (randomblob(1000))")
	s := &walship.Store{DBs: []*walship.DB{storeDB(t, a)}}
	stop := runStore(t, s)
	waitUntil(t, "a is replicated", func() bool { return replicated(s, a.path) })

	ctx := context.Background()
	if err := s.Add(ctx, storeDB(t, b)); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, storeDB(t, b)); !errors.Is(err, walship.ErrDuplicate) {
		t.Fatalf("adding b twice: %v, want ErrDuplicate", err)
	}
	for i := range 20 {
		b.exec("INSERT INTO t (v, n) VALUES (randomblob(500), ?)", i)
	}
	waitUntil(t, "b is replicated", func() bool { return replicated(s, b.path) })
	if got := len(s.Databases()); got != 2 {
		t.Fatalf("%d databases, want 2", got)
	}
	// Committed just before Remove: Remove captures and ships it.
	b.exec("INSERT INTO t (v, n) VALUES (randomblob(500), 99)")
	if err := s.Remove(ctx, b.path); err != nil {
		t.Fatal(err)
	}
	restoreLatestMatches(t, b.replica, b.path)
	if _, ok := status(s, b.path); ok {
		t.Fatal("b is still listed after Remove")
	}
	if err := s.Remove(ctx, b.path); !errors.Is(err, walship.ErrUnknownDB) || !strings.Contains(err.Error(), b.path) {
		t.Fatalf("removing b again: %v, want ErrUnknownDB naming it", err)
	}

	a.exec("INSERT INTO t (v) VALUES (randomblob(1000))")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	restoreLatestMatches(t, a.replica, a.path)
}

// TestStorePauseResume: while a database's replication is paused the
// application goes on writing; on resume every commit made meanwhile
// reaches the replica, from the WAL, or, when the application checkpointed
// the WAL away meanwhile, from the snapshot the engine takes.
func TestStorePauseResume(t *testing.T) {
	for _, checkpoint := range []bool{false, true} {
		name := "wal"
		if checkpoint {
			name = "checkpointed"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.exec("INSERT INTO t (v) VALUES (randomblob(1000))")
			var logs lockedBuffer
			db, err := walship.NewDB(h.path, walship.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), SyncInterval: 10 * time.Millisecond, SyncIntervalSet: true},
				walship.NewReplica("dir", h.replica))
			if err != nil {
				t.Fatal(err)
			}
			s := &walship.Store{DBs: []*walship.DB{db}}
			stop := runStore(t, s)
			waitUntil(t, "the database is replicated", func() bool { return replicated(s, h.path) })
			ctx := context.Background()
			if err := s.Pause(ctx, h.path); err != nil {
				t.Fatal(err)
			}
			if err := s.Pause(ctx, h.path); err == nil {
				t.Fatal("pausing a paused database succeeded")
			}
			// Stopped on request: not halted (-exec would stop the
			// application).
			if err := s.Halted(); err != nil {
				t.Fatalf("a paused database makes the store halted: %v", err)
			}
			st, _ := status(s, h.path)
			paused := st.TXID
			if st.Phase != walship.StatePaused {
				t.Fatalf("state %q while paused", st.Phase)
			}
			for i := range 50 {
				h.exec("INSERT INTO t (v, n) VALUES (randomblob(700), ?)", i)
				h.exec("UPDATE t SET n = n + 1 WHERE id = 1")
			}
			if checkpoint {
				h.exec("PRAGMA wal_checkpoint(TRUNCATE)")
				h.exec("INSERT INTO t (v, n) VALUES (randomblob(700), -1)")
			}
			time.Sleep(50 * time.Millisecond) // a paused database must not move; checked below
			if st, _ := status(s, h.path); st.TXID != paused {
				t.Fatalf("TXID moved from %s to %s while paused", paused, st.TXID)
			}
			if err := s.Resume(ctx, h.path); err != nil {
				t.Fatal(err)
			}
			if err := s.Resume(ctx, h.path); err == nil {
				t.Fatal("resuming a running database succeeded")
			}
			// Listed once after a Pause and a Resume (/list, /status).
			if got := len(s.Databases()); got != 1 {
				t.Fatalf("%d databases after Pause and Resume, want 1", got)
			}
			if got := len(s.Status(ctx, time.Now())); got != 1 {
				t.Fatalf("%d statuses after Pause and Resume, want 1", got)
			}
			// Past the paused TXID: the resumed database starts at it, in
			// sync with its replica, before it reads the gap from the WAL.
			waitUntil(t, "the gap is replicated", func() bool {
				st, _ := status(s, h.path)
				return st.TXID > paused && replicated(s, h.path)
			})
			restoreLatestMatches(t, h.replica, h.path)
			// From the WAL, or, once it was checkpointed away, by the
			// divergence check's delta of pages (invariant 4).
			if diverged := strings.Contains(logs.String(), "staged the pages that differ"); diverged != checkpoint {
				t.Fatalf("resumed with a delta of pages: %t, want %t:\n%s", diverged, checkpoint, logs.String())
			}
			h.exec("INSERT INTO t (v) VALUES (randomblob(100))")
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			restoreLatestMatches(t, h.replica, h.path)
			h.verifyChain()
		})
	}
}

// TestStoreFailureStaysLocal: a database that is not SQLite, and one
// whose replica belongs to another database, are stopped and reported
// with their reason; the other database goes on replicating, and Run
// goes on until it is cancelled.
func TestStoreFailureStaysLocal(t *testing.T) {
	good := newHarness(t)
	good.exec("INSERT INTO t (v) VALUES (randomblob(1000))")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 500), 0o644); err != nil {
		t.Fatal(err)
	}
	bad, err := walship.NewDB(garbage, walship.Options{Logger: quietLogger()}, walship.NewReplica("dir", file.New(filepath.Join(dir, "replica"))))
	if err != nil {
		t.Fatal(err)
	}
	refused := newHarness(t)
	refused.replica = replicaOfAnother(t)
	s := &walship.Store{DBs: []*walship.DB{bad, storeDB(t, good), storeDB(t, refused)}}
	stop := runStore(t, s)

	for _, p := range []string{garbage, refused.path} {
		waitUntil(t, p+" is reported stopped", func() bool {
			st, _ := status(s, p)
			return st.Phase == walship.PhaseStopped.String() && st.Error != ""
		})
	}
	waitUntil(t, "the good database is replicated", func() bool { return replicated(s, good.path) })
	before, _ := status(s, good.path)
	for i := range 30 {
		good.exec("INSERT INTO t (v, n) VALUES (randomblob(300), ?)", i)
	}
	waitUntil(t, "the good database is replicated past the failures", func() bool {
		st, _ := status(s, good.path)
		return replicated(s, good.path) && st.TXID > before.TXID
	})
	err = stop()
	if err == nil || !strings.Contains(err.Error(), garbage) || !strings.Contains(err.Error(), refused.path) || strings.Contains(err.Error(), good.path) {
		t.Fatalf("Run: %v; want the failures of the two broken databases only", err)
	}
	restoreLatestMatches(t, good.replica, good.path)
}

// lockedBuffer is a log destination shared by goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDirectory: a config's dir: entry replicates every database created
// in the directory while the store runs, each to its own path under the
// replica; a file matching the pattern that is not SQLite is skipped with
// one warning, an empty one is waited for, a removed database is stopped,
// and each restores exactly, found by its path in the config.
func TestDirectory(t *testing.T) {
	root := t.TempDir()
	dbs, replica := filepath.Join(root, "dbs"), filepath.Join(root, "replica")
	if err := os.MkdirAll(filepath.Join(dbs, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("t.yml", []byte("dbs:\n  - dir: "+dbs+"\n    pattern: \"*.db\"\n    recursive: true\n    sync-interval: 10ms\n    replica:\n      url: file://"+replica+"\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s, err := walship.FromConfig(context.Background(), cfg, "t.yml", log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old := walship.DirPoll
	walship.DirPoll = time.Hour // notifications alone must find them
	defer func() { walship.DirPoll = old }()
	stop := runStore(t, s)

	junk := filepath.Join(dbs, "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("x"), 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dbs, "later.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i := range 12 {
		p := filepath.Join(dbs, string(rune('a'+i))+".db")
		if i%3 == 0 {
			p = filepath.Join(dbs, "sub", string(rune('a'+i))+".db")
		}
		createDB(t, p)
		paths = append(paths, p)
	}
	// Written after creation, while replicated.
	for _, p := range paths {
		app := openApp(t, p)
		if _, err := app.Exec("INSERT INTO t (v, n) VALUES (randomblob(200), 'x')"); err != nil {
			t.Fatal(err)
		}
		app.Close()
	}
	createDB(t, empty) // the empty file becomes a database
	paths = append(paths, empty)
	for _, p := range paths {
		waitUntil(t, p+" is replicated", func() bool { return replicated(s, p) })
	}
	if n := strings.Count(logs.String(), "not a SQLite database"); n != 1 {
		t.Fatalf("%d warnings about the file that is not a database, want 1:\n%s", n, logs.String())
	}
	// A database removed from the directory is stopped and forgotten.
	gone := paths[1]
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(gone + suffix)
	}
	waitUntil(t, "the removed database is stopped", func() bool { _, ok := status(s, gone); return !ok })
	paths = paths[2:]
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		c := cfg.Database(p)
		if c == nil {
			t.Fatalf("the config does not find %s", p)
		}
		rel, _ := filepath.Rel(dbs, p)
		if want := "file://" + filepath.Join(replica, rel); c.Replica.URL != want {
			t.Fatalf("replica of %s: %s, want %s", p, c.Replica.URL, want)
		}
		restoreLatestMatches(t, file.New(filepath.Join(replica, rel)), p)
	}
}

// TestStoreRunsOn: a store whose databases all stopped on failures
// returns, with their errors; with KeepRunning it waits for its context,
// and a database added then is replicated.
func TestStoreRunsOn(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("x"), 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := func() *walship.DB {
		db, err := walship.NewDB(garbage, walship.Options{Logger: quietLogger()}, walship.NewReplica("dir", file.New(filepath.Join(dir, "replica"))))
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	err := (&walship.Store{DBs: []*walship.DB{bad()}}).Run(context.Background(), time.Second)
	if err == nil || !strings.Contains(err.Error(), garbage) {
		t.Fatalf("Run with only a broken database: %v", err)
	}

	s := &walship.Store{DBs: []*walship.DB{bad()}, KeepRunning: true}
	stop := runStore(t, s)
	waitUntil(t, "the broken database is reported", func() bool {
		st, _ := status(s, garbage)
		return st.Phase == walship.PhaseStopped.String() && st.Error != ""
	})
	h := newHarness(t)
	h.exec("INSERT INTO t (v) VALUES (randomblob(1000))")
	if err := s.Add(context.Background(), storeDB(t, h)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the added database is replicated", func() bool { return replicated(s, h.path) })
	if err := stop(); err == nil || !strings.Contains(err.Error(), garbage) {
		t.Fatalf("Run: %v", err)
	}
	restoreLatestMatches(t, h.replica, h.path)
	if err := s.Add(context.Background(), storeDB(t, newHarness(t))); !errors.Is(err, walship.ErrNotRunning) {
		t.Fatalf("Add after Run returned: %v, want ErrNotRunning", err)
	}
}

// closing is a directory replica that counts its Close calls and the
// calls made after one, as a remote client's closed connection would
// fail them.
type closing struct {
	*file.Client
	closes    atomic.Int64
	afterward atomic.Int64
}

func (c *closing) Close() error { c.closes.Add(1); return nil }

func (c *closing) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	if c.closes.Load() > 0 {
		c.afterward.Add(1)
	}
	return c.Client.LTXFiles(ctx, level)
}

// TestStoreClosesClients: the store closes the clients of a database it
// drops, once, and never those a running database uses: Add replacing a
// database that stopped on a failure closes the old one's; Remove racing
// Resume (whose DB shares the clients) closes them only once the resumed
// DB stopped too.
func TestStoreClosesClients(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 500), 0o644); err != nil {
		t.Fatal(err)
	}
	failed := &closing{Client: file.New(filepath.Join(dir, "r1"))}
	bad, err := walship.NewDB(garbage, walship.Options{Logger: quietLogger()}, walship.NewReplica("dir", failed))
	if err != nil {
		t.Fatal(err)
	}
	s := &walship.Store{DBs: []*walship.DB{bad}, KeepRunning: true}
	runStore(t, s)
	waitUntil(t, "the garbage database stopped", func() bool { st, _ := status(s, garbage); return st.Phase == walship.PhaseStopped.String() })
	again := &closing{Client: file.New(filepath.Join(dir, "r2"))}
	db2, err := walship.NewDB(garbage, walship.Options{Logger: quietLogger()}, walship.NewReplica("dir", again))
	if err != nil {
		t.Fatal(err)
	}
	// Its phase says stopped a moment before the store sees its Run
	// return: until then it is a duplicate.
	waitUntil(t, "the stopped database is replaced", func() bool {
		err := s.Add(ctx, db2)
		if err != nil && !errors.Is(err, walship.ErrDuplicate) {
			t.Fatal(err)
		}
		return err == nil
	})
	if n := failed.closes.Load(); n != 1 {
		t.Fatalf("the replaced database's client closed %d times, want 1", n)
	}
	if n := again.closes.Load(); n != 0 {
		t.Fatalf("the new database's client closed %d times, want 0", n)
	}

	for i := range 10 {
		h := newHarness(t)
		h.exec("INSERT INTO t (v) VALUES (randomblob(1000))")
		c := &closing{Client: h.replica}
		db, err := walship.NewDB(h.path, walship.Options{Logger: quietLogger(), SyncInterval: 10 * time.Millisecond, SyncIntervalSet: true}, walship.NewReplica("dir", c))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Add(ctx, db); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the database is replicated", func() bool { return replicated(s, h.path) })
		if err := s.Pause(ctx, h.path); err != nil {
			t.Fatal(err)
		}
		resumed := make(chan error, 1)
		go func() { resumed <- s.Resume(ctx, h.path) }()
		if err := s.Remove(ctx, h.path); err != nil {
			t.Fatal(err)
		}
		<-resumed // either: resumed then removed, or removed first
		if _, ok := status(s, h.path); ok {
			t.Fatalf("round %d: the database is listed after Remove", i)
		}
		if n, after := c.closes.Load(), c.afterward.Load(); n != 1 || after != 0 {
			t.Fatalf("round %d: the client closed %d times and used %d times after, want once and never", i, n, after)
		}
	}
}
