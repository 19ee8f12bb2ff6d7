package walship_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

func TestNotASQLiteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "notes.txt")
	content := bytes.Repeat([]byte("this is not a database\n"), 100)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	replicaDir := filepath.Join(dir, "replica")
	db, err := walship.NewDB(path, walship.Options{Logger: quietLogger()}, walship.NewReplica("dir", file.New(replicaDir)))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a SQLite database") {
		t.Fatalf("got %v; want an error naming %s as not a SQLite database", err, path)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, content) {
		t.Fatal("the file was modified")
	}
	for _, p := range []string{replicaDir, path + "-wal", walship.MetaPath(path)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s was created", p)
		}
	}
}

func TestWaitsForDatabase(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "later.db")
	var logs testutil.SyncBuffer
	replica := file.New(filepath.Join(dir, "replica"))
	db, err := walship.NewDB(path, walship.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), SyncInterval: 0, SyncIntervalSet: true}, walship.NewReplica("dir", replica))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.Run(ctx, 5*time.Second) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "waiting for the database") {
		if time.Now().After(deadline) {
			t.Fatalf("no waiting message; logs: %s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before the database existed", err)
	case <-time.After(1500 * time.Millisecond): // two polls
	}
	createDB(t, path)
	// Replication starts by itself once the file appears: its first
	// snapshot reaches the replica.
	for {
		files, _ := replica.LTXFiles(ctx, storage.SnapshotLevel)
		if len(files) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing replicated; logs: %s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "waiting for the database"); n != 1 {
		t.Fatalf("said it was waiting %d times", n)
	}
}

// The replica directory disappears (replaced by a file) and comes back: the
// application is unaffected, the error names the directory, and replication
// resumes with no gap.
func TestReplicaUnavailable(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	h.randomWrites(randFor(t), 10)
	h.sync()
	dir := h.replica.Dir()
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 5 {
		h.randomWrites(randFor(t), 5) // the application keeps working
		if _, err := h.db.Sync(h.ctx); err != nil {
			t.Fatalf("staging must not depend on the replica: %v", err)
		}
		lastErr = walship.Upload(h.ctx, h.db)
		if lastErr == nil || !strings.Contains(lastErr.Error(), dir) {
			t.Fatalf("upload error %v does not name %s", lastErr, dir)
		}
	}
	os.Remove(dir)
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	h.randomWrites(randFor(t), 5)
	h.sync() // uploads the backlog
	h.verifyAll()
	h.verifyChain()
}

// The staging directory's file system fills up: syncs fail with an error that
// names the directory, nothing half-written is trusted, and once space is
// freed the chain continues. Needs root to mount a small tmpfs (CI runs as
// root).
func TestStagingDiskFull(t *testing.T) {
	meta := smallTmpfs(t, "512k")
	h := newHarness(t)
	h.open(walship.Options{MetaPath: meta})
	filler := fill(t, meta)
	rng := randFor(t)
	for range 3 {
		h.randomWrites(rng, 20)
		_, err := h.db.Sync(h.ctx)
		if err == nil || !strings.Contains(err.Error(), meta) {
			t.Fatalf("sync on a full disk: %v; want an error naming %s", err, meta)
		}
	}
	// A restart meanwhile must not trust anything the failed syncs left.
	if err := h.db.Close(h.ctx); err == nil {
		t.Fatal("close on a full disk reported no error")
	}
	os.Remove(filler)
	h.open(walship.Options{MetaPath: meta})
	h.randomWrites(rng, 5)
	h.sync()
	h.verifyAll()
	h.verifyChain()
}

func TestRestoreRejectsBadReplica(t *testing.T) {
	build := func(t *testing.T) *harness {
		h := newHarness(t)
		h.open(walship.Options{})
		rng := randFor(t)
		for range 5 {
			h.randomWrites(rng, 5)
			h.sync()
		}
		return h
	}
	level0 := func(h *harness, txid ltx.TXID) string {
		return filepath.Join(h.replica.Dir(), "ltx", "0", ltx.FormatFilename(txid, txid))
	}
	cases := []struct {
		name   string
		damage func(h *harness) string // returns text the error must contain
	}{
		{"truncated", func(h *harness) string {
			p := level0(h, 3)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
			return ltx.FormatFilename(3, 3)
		}},
		{"flipped byte", func(h *harness) string {
			p := level0(h, 4)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0xff
			os.WriteFile(p, b, 0o644)
			return ltx.FormatFilename(4, 4)
		}},
		{"gap", func(h *harness) string {
			os.Remove(level0(h, 3))
			return "missing TXIDs 0000000000000003-0000000000000003"
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := build(t)
			want := c.damage(h)
			dir := t.TempDir()
			out := filepath.Join(dir, "out.db")
			_, err := restore.Restore(h.ctx, h.replica, out, restore.Options{})
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("restore: %v; want an error containing %q", err, want)
			}
			if left, err := os.ReadDir(dir); err != nil || len(left) > 0 {
				t.Fatalf("a failed restore left %v behind (%v)", left, err)
			}
		})
	}
}

// TestStartWithFullStagingDisk: a replicator started while the staging
// directory's disk is full does not exit: it says what is wrong, retries,
// and replicates once space is freed. Needs root to mount a small tmpfs.
func TestStartWithFullStagingDisk(t *testing.T) {
	meta := smallTmpfs(t, "256k")
	filler := fill(t, meta)

	h := newHarness(t)
	h.exec("INSERT INTO t (v) VALUES (randomblob(100000))")
	var logs testutil.SyncBuffer
	db, err := walship.NewDB(h.path, walship.Options{MetaPath: meta, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, walship.NewReplica("dir", h.replica))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- db.Run(ctx, 10*time.Second) }()
	waitUntil(t, "the replicator says it cannot start and retries", func() bool {
		return strings.Contains(logs.String(), "cannot start replicating the database; retrying") && strings.Contains(logs.String(), "no space left on device")
	})
	select {
	case err := <-done:
		t.Fatalf("the replicator exited on a full staging disk: %v\n%s", err, logs.String())
	default:
	}
	os.Remove(filler)
	waitUntil(t, "the replica receives the database once space is freed", func() bool {
		files, err := h.replica.LTXFiles(h.ctx, storage.SnapshotLevel)
		return err == nil && len(files) > 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(logs.String(), "started replicating after the problem cleared") {
		t.Errorf("no line says the problem cleared:\n%s", logs.String())
	}
	want, err := testutil.LogicalImage(h.ctx, h.path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "restored.db")
	if _, err := restore.Restore(h.ctx, h.replica, out, restore.Options{IntegrityCheck: "full"}); err != nil {
		t.Fatal(err)
	}
	if got, err := testutil.LogicalImage(h.ctx, out); err != nil || got != want {
		t.Fatalf("the restore is not the database (%v)", err)
	}
}

// waitUntil polls cond for up to a minute.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// smallTmpfs mounts a tmpfs of size (as mount's size=) on a new directory
// for the test, and returns the directory. It needs root (CI runs as root).
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount a %s tmpfs (this test needs root): %v", size, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	return dir
}

// fill writes a file into dir until its disk is full, and returns the
// file's path: removing it frees the space.
func fill(t *testing.T, dir string) string {
	t.Helper()
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return filler
		}
	}
}
