package control

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
	"github.com/walship/walship/storage/crypt"
)

// register, unregister, stop and start translate to the Process's
// methods, with Litestream's statuses, and the engine's errors to the
// statuses that say what they are.
func TestVerbEndpoints(t *testing.T) {
	dir := t.TempDir()
	a := &fakeDB{path: filepath.Join(dir, "a.db"), pos: 5, phase: walship.PhaseReplicating}
	paused := &fakeDB{path: filepath.Join(dir, "p.db"), pos: 3, phase: walship.PhaseStopped}
	running := &fakeDB{path: filepath.Join(dir, "r.db"), pos: 4, phase: walship.PhaseReplicating}
	proc := &fakeProcess{dbs: []*fakeDB{a, paused, running}, errs: map[string]error{
		a.path:                        nil,
		paused.path:                   fmt.Errorf("%s: %w", paused.path, walship.ErrPaused),
		running.path:                  fmt.Errorf("%s: %w", running.path, walship.ErrReplicating),
		filepath.Join(dir, "late.db"): fmt.Errorf("add: %w", walship.ErrNotRunning),
	}}
	path := filepath.Join(dir, "ws.sock")
	listenT(t, path, proc)
	c := NewClient(path)
	ctx := context.Background()
	var e *Error

	// register: a new path reaches the process, with the replica made
	// absolute; a known one is refused before.
	reg, err := c.Register(ctx, RegisterRequest{Path: filepath.Join(dir, "new.db"), ReplicaURL: "file:///backups/new"})
	if err != nil || reg.Status != "registered" || reg.Path != filepath.Join(dir, "new.db") {
		t.Fatalf("register: %+v, %v", reg, err)
	}
	proc.errs[a.path] = fmt.Errorf("%s: %w", a.path, walship.ErrDuplicate)
	_, err = c.Register(ctx, RegisterRequest{Path: a.path, ReplicaURL: "file:///backups/a"})
	if !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Message, "already replicated") || !strings.Contains(e.Message, "unregister it first") {
		t.Fatalf("register of a registered database: %v", err)
	}
	proc.errs[a.path] = nil
	// The same file by another name is refused before the process.
	if err := os.WriteFile(a.path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(a.path, link); err != nil {
		t.Fatal(err)
	}
	_, err = c.Register(ctx, RegisterRequest{Path: link, ReplicaURL: "file:///backups/a"})
	if !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Message, a.path) {
		t.Fatalf("register of a registered database by a link: %v", err)
	}
	_, err = c.Register(ctx, RegisterRequest{Path: filepath.Join(dir, "late.db"), ReplicaURL: "file:///x"})
	if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable {
		t.Fatalf("register while the store stops: %v", err)
	}
	for _, req := range []RegisterRequest{{ReplicaURL: "file:///x"}, {Path: filepath.Join(dir, "b.db")}} {
		if _, err := c.Register(ctx, req); !errors.As(err, &e) || e.Status != http.StatusBadRequest || !strings.Contains(e.Message, "required") {
			t.Fatalf("register %+v: %v", req, err)
		}
	}

	// stop, start, unregister.
	if st, err := c.Stop(ctx, a.path, 0); err != nil || st.Status != "stopped" || st.TXID != 5 || st.ReplicatedTXID != 5 {
		t.Fatalf("stop: %+v, %v", st, err)
	}
	if st, err := c.Stop(ctx, paused.path, 0); err != nil || st.Status != "already_stopped" {
		t.Fatalf("stop of a paused database: %+v, %v", st, err)
	}
	if st, err := c.Start(ctx, a.path, 0); err != nil || st.Status != "started" || st.TXID != 5 || st.Phase != "replicating" {
		t.Fatalf("start: %+v, %v", st, err)
	}
	if st, err := c.Start(ctx, running.path, 0); err != nil || st.Status != "already_running" {
		t.Fatalf("start of a replicating database: %+v, %v", st, err)
	}
	if st, err := c.Unregister(ctx, a.path, time.Second); err != nil || st.Status != "unregistered" || st.Path != a.path {
		t.Fatalf("unregister: %+v, %v", st, err)
	}
	for name, f := range map[string]func(context.Context, string, time.Duration) (StateResponse, error){"stop": c.Stop, "start": c.Start, "unregister": c.Unregister} {
		_, err := f(ctx, filepath.Join(dir, "nope.db"), 0)
		if !errors.As(err, &e) || e.Status != http.StatusNotFound || !strings.Contains(e.Message, "nope.db") || !strings.Contains(e.Message, "walship list") {
			t.Fatalf("%s of an unknown database: %v", name, err)
		}
	}
	want := []string{"register " + filepath.Join(dir, "new.db") + " file:///backups/new", "register " + a.path + " file:///backups/a", "register " + filepath.Join(dir, "late.db") + " file:///x",
		"stop " + a.path, "stop " + paused.path, "start " + a.path, "start " + running.path, "unregister " + a.path}
	if strings.Join(proc.calls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(proc.calls, "\n"), strings.Join(want, "\n"))
	}
}

// Through a running Store: a registered database is replicated as one of
// the config file (its Entry), a duplicate and a bad replica are refused,
// stop and start pause and resume it, unregister forgets it, and the
// store runs on with none (KeepRunning).
func TestVerbsOnStore(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if _, err := app.Exec("CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	store := &walship.Store{KeepRunning: true, Entry: walship.EntryFunc(&config.Config{}, "walship register", quiet())}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- store.Run(ctx, 5*time.Second) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("store: %v", err)
		}
		store.Close()
	}()
	sock := filepath.Join(dir, "ws.sock")
	listenT(t, sock, FromStore(store))
	c := NewClient(sock)
	var e *Error

	// Run may not have begun: register until it is.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = c.Register(ctx, RegisterRequest{Path: dbPath, ReplicaURL: filepath.Join(dir, "replica")})
		if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if _, err := c.Register(ctx, RegisterRequest{Path: dbPath, ReplicaURL: filepath.Join(dir, "other")}); !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Fatalf("second register: %v", err)
	}
	_, err = c.Register(ctx, RegisterRequest{Path: filepath.Join(dir, "b.db"), ReplicaURL: "nosuch://bucket/x"})
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || !strings.Contains(e.Message, "cannot replicate") {
		t.Fatalf("register with a bad replica: %v", err)
	}
	synced := func(n int) uint64 {
		t.Helper()
		if _, err := app.Exec("INSERT INTO t VALUES (?)", n); err != nil {
			t.Fatal(err)
		}
		resp, err := c.Sync(ctx, dbPath, true, 30*time.Second)
		if err != nil {
			t.Fatalf("sync -wait of row %d: %v", n, err)
		}
		return resp.ReplicatedTXID
	}
	before := synced(2)

	st, err := c.Stop(ctx, dbPath, 0)
	if err != nil || st.Status != "stopped" || st.ReplicatedTXID != st.TXID || st.TXID < before {
		t.Fatalf("stop: %+v, %v", st, err)
	}
	if st, err := c.Stop(ctx, dbPath, 0); err != nil || st.Status != "already_stopped" {
		t.Fatalf("second stop: %+v, %v", st, err)
	}
	list, err := c.List(ctx)
	if err != nil || len(list.Databases) != 1 || list.Databases[0].Status != walship.StatePaused {
		t.Fatalf("list while stopped: %+v, %v", list, err)
	}
	if _, err := app.Exec("INSERT INTO t VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Start(ctx, dbPath, 0); err != nil || st.Status != "started" {
		t.Fatalf("start: %+v, %v", st, err)
	}
	if st, err := c.Start(ctx, dbPath, 0); err != nil || st.Status != "already_running" {
		t.Fatalf("second start: %+v, %v", st, err)
	}
	if after := synced(4); after <= before {
		t.Fatalf("after start, the replicas hold TXID %d, not past %d", after, before)
	}
	st, err = c.Unregister(ctx, dbPath, 0)
	if err != nil || st.Status != "unregistered" || st.ReplicatedTXID != st.TXID {
		t.Fatalf("unregister: %+v, %v", st, err)
	}
	if _, err := c.Unregister(ctx, dbPath, 0); !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Fatalf("second unregister: %v", err)
	}
	if list, err := c.List(ctx); err != nil || len(list.Databases) != 0 {
		t.Fatalf("list after unregister: %+v, %v", list, err)
	}
	select {
	case err := <-ran:
		t.Fatalf("the store returned with no database left, KeepRunning set: %v", err)
		ran <- err
	default:
	}
}

// register's encryption key file is read by the process, as a config
// replica's encryption-key-path: what reaches the replica is sealed; a
// key file that cannot be read refuses the register, naming it.
func TestRegisterEncrypted(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if _, err := app.Exec("CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "replica.key")
	key, err := crypt.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := crypt.WriteKeyFile(keyPath, key); err != nil {
		t.Fatal(err)
	}
	store := &walship.Store{KeepRunning: true, Entry: walship.EntryFunc(&config.Config{}, "walship register", quiet())}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- store.Run(ctx, 5*time.Second) }()
	defer func() {
		cancel()
		<-ran
		store.Close()
	}()
	sock := filepath.Join(dir, "ws.sock")
	listenT(t, sock, FromStore(store))
	c := NewClient(sock)
	replica := filepath.Join(dir, "replica")

	var e *Error
	_, err = c.Register(ctx, RegisterRequest{Path: dbPath, ReplicaURL: replica, EncryptionKeyPath: filepath.Join(dir, "missing.key")})
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || !strings.Contains(e.Message, "missing.key") {
		t.Fatalf("register with a missing key file: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = c.Register(ctx, RegisterRequest{Path: dbPath, ReplicaURL: replica, EncryptionKeyPath: keyPath})
		if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if _, err := c.Sync(ctx, dbPath, true, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var files int
	filepath.WalkDir(replica, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".ltx") {
			return err
		}
		files++
		if b, err := os.ReadFile(p); err != nil || strings.HasPrefix(string(b), "LTX1") {
			t.Errorf("%s is not sealed (%v)", p, err)
		}
		return nil
	})
	if files == 0 {
		t.Fatal("no LTX file reached the replica")
	}
}
