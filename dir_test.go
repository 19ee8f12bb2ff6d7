package walship_test

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
	"github.com/walship/walship/storage/file"
)

// dirStore returns a store, not running, of a config with one recursive
// dir: entry over dbs, replicating to replica, and its log.
func dirStore(t *testing.T, dbs, replica string) (*walship.Store, *lockedBuffer) {
	t.Helper()
	cfg, err := config.Parse("t.yml", []byte("dbs:\n  - dir: "+dbs+"\n    pattern: \"*.db\"\n    recursive: true\n    sync-interval: 10ms\n    replica:\n      url: file://"+replica+"\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	s, err := walship.FromConfig(context.Background(), cfg, "t.yml", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &logs
}

// TestDirectoryUnreadableSubdir: a subdirectory that cannot be read for a
// moment (EMFILE with many tenants, EACCES) does not stop its databases:
// they are not seen, which does not make them gone. The scan warns once
// and goes on with the rest of the directory.
func TestDirectoryUnreadableSubdir(t *testing.T) {
	root := t.TempDir()
	dbs := filepath.Join(root, "dbs")
	sub := filepath.Join(dbs, "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	s, logs := dirStore(t, dbs, filepath.Join(root, "replica"))
	var failing atomic.Bool
	// Root reads every directory: the walk says what ReadDir would say.
	walship.SetDirWalk(s.Dirs[0], func(dir string, fn fs.WalkDirFunc) error {
		return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if p == sub && err == nil && failing.Load() {
				if err := fn(p, e, nil); err != nil {
					return err
				}
				fn(p, e, &fs.PathError{Op: "readdirent", Path: p, Err: syscall.EMFILE})
				return fs.SkipDir
			}
			return fn(p, e, err)
		})
	})
	stop := runStore(t, s)

	tenant := filepath.Join(sub, "a.db")
	createDB(t, tenant)
	waitUntil(t, "the tenant is replicated", func() bool { return replicated(s, tenant) })

	failing.Store(true)
	// A database created beside it makes a scan run, which reads the
	// subdirectory and fails; it decided what to remove before it adds.
	other := filepath.Join(dbs, "b.db")
	createDB(t, other)
	waitUntil(t, "a scan ran with the subdirectory unreadable", func() bool {
		return replicated(s, other) && strings.Contains(logs.String(), "cannot read a path under the directory")
	})
	if st, ok := status(s, tenant); !ok || st.Phase != walship.PhaseReplicating.String() {
		t.Fatalf("the tenant of the unreadable subdirectory: %+v (listed %t); want it replicating still:\n%s", st, ok, logs.String())
	}
	app := openApp(t, tenant)
	if _, err := app.Exec("INSERT INTO t (v, n) VALUES (randomblob(300), 'while unreadable')"); err != nil {
		t.Fatal(err)
	}
	app.Close()
	waitUntil(t, "the tenant's commit is replicated", func() bool { return replicated(s, tenant) })
	if n := strings.Count(logs.String(), "cannot read a path under the directory"); n != 1 {
		t.Fatalf("%d warnings about the unreadable subdirectory, want 1", n)
	}
	failing.Store(false)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "database removed from the directory") {
		t.Fatalf("a database was taken for removed:\n%s", logs.String())
	}
}

// TestDirectorySkipsListedDatabase: a database listed with path: inside a
// watched directory is replicated by its own entry only; the directory
// skips it with one warning, however often the file changes, rather than
// build a DB (and its clients) for it at each change.
func TestDirectorySkipsListedDatabase(t *testing.T) {
	root := t.TempDir()
	dbs, replica, special := filepath.Join(root, "dbs"), filepath.Join(root, "replica"), filepath.Join(root, "special")
	if err := os.MkdirAll(dbs, 0o755); err != nil {
		t.Fatal(err)
	}
	listed, other := filepath.Join(dbs, "listed.db"), filepath.Join(dbs, "other.db")
	createDB(t, listed)
	cfg, err := config.Parse("t.yml", []byte("dbs:\n  - dir: "+dbs+"\n    pattern: \"*.db\"\n    sync-interval: 10ms\n    replica:\n      url: file://"+replica+
		"\n  - path: "+listed+"\n    sync-interval: 10ms\n    replica:\n      url: file://"+special+"\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	s, err := walship.FromConfig(context.Background(), cfg, "t.yml", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop := runStore(t, s)
	app := openApp(t, listed)
	for i := range 5 {
		if _, err := app.Exec("INSERT INTO t (v, n) VALUES (randomblob(300), ?)", i); err != nil {
			t.Fatal(err)
		}
		createDB(t, filepath.Join(dbs, string(rune('a'+i))+".db")) // a scan each
	}
	createDB(t, other)
	waitUntil(t, "both are replicated", func() bool { return replicated(s, listed) && replicated(s, other) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "another entry replicates already"); n != 1 {
		t.Fatalf("%d warnings about the listed database, want 1:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("an error was logged:\n%s", logs.String())
	}
	restoreLatestMatches(t, file.New(special), listed)
	if _, err := os.Stat(filepath.Join(replica, "listed.db")); !os.IsNotExist(err) {
		t.Fatalf("the directory's replica has a path for the listed database (%v)", err)
	}
}

// TestStoreReadyWithDirectory: what replicate -exec waits for and stops
// on. The store is not Ready before each directory's first scan (else an
// application would start before any of its databases replicates); a
// database of a directory refused by its replica holds nothing back and
// halts nothing (it is reported), where a listed one halts; ScanDirs
// returns once a scan made after it was called is done, so a database
// created just before is in the store.
func TestStoreReadyWithDirectory(t *testing.T) {
	root := t.TempDir()
	dbs, replica := filepath.Join(root, "dbs"), filepath.Join(root, "replica")
	if err := os.MkdirAll(dbs, 0o755); err != nil {
		t.Fatal(err)
	}
	tenant, refused := filepath.Join(dbs, "tenant.db"), filepath.Join(dbs, "refused.db")
	createDB(t, tenant)
	createDB(t, refused)
	another := newHarness(t)
	another.open(walship.Options{})
	another.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	another.sync()
	if err := another.db.Close(another.ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(replica, "refused.db"), os.DirFS(filepath.Join(another.dir, "replica"))); err != nil {
		t.Fatal(err)
	}
	s, _ := dirStore(t, dbs, replica)
	old := walship.DirPoll
	walship.DirPoll = time.Hour // only notifications and ScanDirs scan
	defer func() { walship.DirPoll = old }()
	release := make(chan struct{})
	walship.SetDirWalk(s.Dirs[0], func(dir string, fn fs.WalkDirFunc) error {
		<-release
		return filepath.WalkDir(dir, fn)
	})
	runStore(t, s)
	if s.Ready() {
		t.Fatal("ready before the directory was scanned")
	}
	if got := s.NotReady(); len(got) != 1 || !strings.Contains(got[0], dbs) {
		t.Fatalf("not ready: %q; want the directory named", got)
	}
	close(release)
	waitUntil(t, "ready", s.Ready)
	if st, _ := status(s, tenant); st.Phase != walship.PhaseReplicating.String() {
		t.Fatalf("ready while the directory's database is %s", st.Phase)
	}
	if st, _ := status(s, refused); st.Phase != walship.PhaseStopped.String() {
		t.Fatalf("the refused database: %+v; want it stopped", st)
	}
	if err := s.Halted(); err != nil {
		t.Fatalf("a directory's refused database halts the store: %v", err)
	}

	late := filepath.Join(dbs, "late.db")
	createDB(t, late)
	if err := s.ScanDirs(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := status(s, late); !ok {
		t.Fatal("a database created before ScanDirs is not in the store after it")
	}

	// A database listed by hand that is refused halts the store.
	h := newHarness(t)
	h.replica = replicaOfAnother(t)
	if err := s.Add(context.Background(), storeDB(t, h)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the listed database halts the store", func() bool { return s.Halted() != nil })
	if err := s.Halted(); !strings.Contains(err.Error(), h.path) || strings.Contains(err.Error(), refused) {
		t.Fatalf("halted: %v; want the listed database only", err)
	}
}
