// Package filerecordtest is the test suite of a backend whose records
// storage/filerecord keeps, run against its real server: the files a write
// leaves, stale locks told by the server's clock, the copy an interrupted
// replacement left aside, and writers on connections of their own racing.
// The storage conformance suite proves the rest of storage.Records.
package filerecordtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/storage"
)

// Dir is an empty directory of the server under test, for one test.
type Dir struct {
	// Path is the directory on the local disk that the server serves: the
	// suite lists it there, and reads the files a write left.
	Path string

	// Open returns a new client of the directory, with a connection of its
	// own.
	Open func() storage.Records

	// Put stores data as the file name of the directory, modified at mtime,
	// through the server, for servers that would not see a file placed on
	// their disk at once (rclone's directory cache). When nil, the suite
	// writes the file into Path itself.
	Put func(name string, data []byte, mtime time.Time)
}

// Run runs the suite, each test in a directory newDir returns.
func Run(t *testing.T, newDir func(t *testing.T) Dir) {
	t.Run("Layout", func(t *testing.T) { testLayout(t, newDir(t)) })
	t.Run("StaleLock", func(t *testing.T) { testStaleLock(t, newDir(t)) })
	t.Run("Aside", func(t *testing.T) { testAside(t, newDir(t)) })
	t.Run("RaceClients", func(t *testing.T) { testRaceClients(t, newDir(t)) })
}

// staleAge is past the age at which filerecord breaks a lock (30 s).
const staleAge = 35 * time.Second

// testLayout checks what a record write leaves on the server: the record,
// versioned by the SHA-256 of its content, and no lock or temp file.
func testLayout(t *testing.T, d Dir) {
	c := d.Open()
	ctx := context.Background()
	data := []byte(`{"owner":"a"}`)
	v, err := c.WriteRecord(ctx, "owner.json", data, "")
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); v != hex.EncodeToString(sum[:]) {
		t.Fatalf("version %q is not the SHA-256 of the content", v)
	}
	if got, err := os.ReadFile(filepath.Join(d.Path, "owner.json")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the record file holds %q (%v); want %q", got, err, data)
	}
	if _, err := c.WriteRecord(ctx, "owner.json", []byte(`{"owner":"b"}`), v); err != nil {
		t.Fatal(err)
	}
	ExpectFiles(t, d.Path, "owner.json")
	for _, name := range []string{"ltx", ".owner.json.lock"} {
		if _, err := c.WriteRecord(ctx, name, data, ""); err == nil {
			t.Errorf("a record named %q, a name the backend keeps for itself, was written", name)
		}
	}
}

// testStaleLock leaves a lock as a writer that died would: a fresh one
// makes writes conflict, and one staleAge old is broken.
func testStaleLock(t *testing.T, d Dir) {
	c := d.Open()
	ctx := context.Background()
	v, err := c.WriteRecord(ctx, "r", []byte("one"), "")
	if err != nil {
		t.Fatal(err)
	}
	d.put(t, ".r.lock", []byte("a dead writer's token"), time.Now())
	if _, err := c.WriteRecord(ctx, "r", []byte("two"), v); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a write while another writer holds the lock: %v; want storage.ErrConflict", err)
	}
	d.put(t, ".r.lock", []byte("a dead writer's token"), time.Now().Add(-staleAge))
	v2, err := c.WriteRecord(ctx, "r", []byte("two"), v)
	if err != nil {
		t.Fatalf("a write with a stale lock in the way: %v", err)
	}
	ExpectRecord(t, c, "r", "two", v2)
	ExpectFiles(t, d.Path, "r")
}

// testAside leaves the server as a replacement interrupted between its
// moves would: the old record aside, none in place. Readers read the copy
// aside; a create conflicts, and a replace at its version completes.
func testAside(t *testing.T, d Dir) {
	c := d.Open()
	ctx := context.Background()
	d.put(t, ".r.old", []byte("one"), time.Now())
	data, v, err := c.ReadRecord(ctx, "r")
	if err != nil || string(data) != "one" {
		t.Fatalf("read %q (%v); want the record moved aside", data, err)
	}
	if _, err := c.WriteRecord(ctx, "r", []byte("x"), ""); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("creating a record whose replacement was interrupted: %v; want storage.ErrConflict", err)
	}
	v2, err := c.WriteRecord(ctx, "r", []byte("two"), v)
	if err != nil {
		t.Fatalf("replacing a record whose replacement was interrupted: %v", err)
	}
	ExpectRecord(t, d.Open(), "r", "two", v2)
	ExpectFiles(t, d.Path, "r")
}

// testRaceClients has six clients, each with its own connection, write
// the record "r" at once from the same version, ten times: exactly one
// must win each time, and the others fail with storage.ErrConflict.
func testRaceClients(t *testing.T, d Dir) {
	clients := make([]storage.Records, 6)
	for i := range clients {
		clients[i] = d.Open()
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
			wg.Go(func() {
				<-start
				v, err := c.WriteRecord(context.Background(), "r", fmt.Appendf(nil, "%d-%d", round, i), version)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					wins = append(wins, v)
				} else if !errors.Is(err, storage.ErrConflict) {
					t.Errorf("round %d: %v", round, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(wins) != 1 {
			t.Fatalf("round %d: %d writers won; want one", round, len(wins))
		}
		version = wins[0]
	}
}

// put stores a file in the directory, as Dir.Put says.
func (d Dir) put(t *testing.T, name string, data []byte, mtime time.Time) {
	t.Helper()
	if d.Put != nil {
		d.Put(name, data, mtime)
		return
	}
	if err := os.MkdirAll(d.Path, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d.Path, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// ExpectFiles fails t unless the directory dir on the local disk holds
// exactly the files names, hidden ones included, in the order of their
// names.
func ExpectFiles(t testing.TB, dir string, names ...string) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := f.Readdirnames(-1)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Sort(got); !slices.Equal(got, names) {
		t.Fatalf("%s holds %v; want only %v", dir, got, names)
	}
}

// ExpectRecord fails t unless c reads the record name as data at version.
func ExpectRecord(t testing.TB, c storage.Records, name, data, version string) {
	t.Helper()
	got, v, err := c.ReadRecord(context.Background(), name)
	if err != nil || string(got) != data || v != version {
		t.Fatalf("read %q version %q (%v); want %q at %q", got, v, err, data, version)
	}
}
