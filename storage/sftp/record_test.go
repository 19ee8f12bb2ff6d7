package sftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
)

// TestRecordLayout checks what a record write leaves on the server: the
// record beside ltx/, versioned by the SHA-256 of its content, and no lock
// or temp file.
func TestRecordLayout(t *testing.T) {
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	c := openTest(t, srv, dir, nil)
	ctx := context.Background()
	data := []byte(`{"owner":"a"}`)
	v, err := c.WriteRecord(ctx, "owner.json", data, "")
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); v != hex.EncodeToString(sum[:]) {
		t.Fatalf("version %q is not the SHA-256 of the content", v)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "owner.json")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the record file holds %q (%v); want %q", got, err, data)
	}
	if _, err := c.WriteRecord(ctx, "owner.json", []byte(`{"owner":"b"}`), v); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "owner.json" {
		t.Fatalf("after two writes %s holds %v; want only owner.json", dir, entries)
	}
	for _, name := range []string{"ltx", ".owner.json.lock"} {
		if _, err := c.WriteRecord(ctx, name, data, ""); err == nil {
			t.Errorf("a record named %q, a name the backend keeps for itself, was written", name)
		}
	}
}

// TestRecordPlainRenameExclusive checks the primitive records rely on: on
// OpenSSH a plain SFTP rename onto an existing file fails and leaves it.
func TestRecordPlainRenameExclusive(t *testing.T) {
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	c := openTest(t, srv, dir, nil)
	os.WriteFile(filepath.Join(dir, "a"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(dir, "b"), []byte("b"), 0o644)
	err := c.do(context.Background(), nil, func(ctx context.Context, cn *conn) error {
		return cn.sftp.Rename(c.recordPath("b"), c.recordPath("a"))
	})
	if err == nil {
		t.Fatal("a plain rename replaced an existing file")
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "a")); string(got) != "a" {
		t.Fatalf("a refused rename changed the target to %q", got)
	}
}

// TestRecordRaceClients races writers on separate clients, so on separate
// connections, each served by its own sftp-server process: exactly one
// must win each round.
func TestRecordRaceClients(t *testing.T) {
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	const writers = 6
	clients := make([]*Client, writers)
	for i := range clients {
		clients[i] = openTest(t, srv, dir, nil)
		if _, _, err := clients[i].ReadRecord(context.Background(), "r"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err) // connects
		}
	}
	version := ""
	for round := range 10 {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins []string
		)
		start := make(chan struct{})
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				v, err := c.WriteRecord(context.Background(), "r", fmt.Appendf(nil, "%d-%d", round, i), version)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					wins = append(wins, v)
				} else if !errors.Is(err, storage.ErrConflict) {
					t.Errorf("round %d: %v", round, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(wins) != 1 {
			t.Fatalf("round %d: %d writers won; want one", round, len(wins))
		}
		version = wins[0]
	}
}

// TestRecordStaleLock leaves a lock as a writer that died would: a fresh
// one makes writes conflict, and once it is staleLockAge old it is broken.
func TestRecordStaleLock(t *testing.T) {
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	c := openTest(t, srv, dir, nil)
	ctx := context.Background()
	v, err := c.WriteRecord(ctx, "r", []byte("one"), "")
	if err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, ".r.lock")
	os.WriteFile(lock, []byte("a dead writer's token"), 0o644)
	if _, err := c.WriteRecord(ctx, "r", []byte("two"), v); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a write while another writer holds the lock: %v; want storage.ErrConflict", err)
	}
	old := time.Now().Add(-staleLockAge - 5*time.Second)
	os.Chtimes(lock, old, old)
	v2, err := c.WriteRecord(ctx, "r", []byte("two"), v)
	if err != nil {
		t.Fatalf("a write with a stale lock in the way: %v", err)
	}
	if data, got, err := c.ReadRecord(ctx, "r"); err != nil || string(data) != "two" || got != v2 {
		t.Fatalf("read %q version %q (%v); want two at %q", data, got, err, v2)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("after breaking the lock %s holds %v; want only the record", dir, entries)
	}
}

// TestRecordReplaceWithoutPosixRename reads a record while a replacement
// without posix-rename@openssh.com is between its renames: the copy aside
// is read, at the old version, and a write interrupted there leaves a
// record the next writer replaces at that version.
func TestRecordReplaceWithoutPosixRename(t *testing.T) {
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	c := openTest(t, srv, dir, nil)
	c.noPosixRename = true
	reader := openTest(t, srv, dir, nil)
	ctx := context.Background()
	v1, err := c.WriteRecord(ctx, "r", []byte("one"), "")
	if err != nil {
		t.Fatal(err)
	}
	interrupt := errors.New("interrupted")
	c.betweenRenames = func(aside string) error {
		if _, err := os.Stat(filepath.Join(dir, "r")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("between the renames the record is still in place: %v", err)
		}
		data, v, err := reader.ReadRecord(ctx, "r")
		if err != nil || string(data) != "one" || v != v1 {
			t.Errorf("between the renames read %q version %q (%v); want the old record", data, v, err)
		}
		return interrupt
	}
	if _, err := c.WriteRecord(ctx, "r", []byte("two"), v1); !errors.Is(err, interrupt) {
		t.Fatalf("interrupted write: %v", err)
	}
	c.betweenRenames = nil
	if _, err := c.WriteRecord(ctx, "r", []byte("x"), ""); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("creating a record whose replacement was interrupted: %v; want storage.ErrConflict", err)
	}
	v3, err := c.WriteRecord(ctx, "r", []byte("three"), v1)
	if err != nil {
		t.Fatalf("replacing a record whose replacement was interrupted: %v", err)
	}
	if data, v, err := reader.ReadRecord(ctx, "r"); err != nil || string(data) != "three" || v != v3 {
		t.Fatalf("read %q version %q (%v); want three", data, v, err)
	}
}
