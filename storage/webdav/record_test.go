package webdav_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	xwebdav "golang.org/x/net/webdav"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/webdav"
)

// putRawAt uploads data to the path p of the server with a plain PUT that
// sets the file's modification time.
func putRawAt(t *testing.T, srv *testserver.WebDAVServer, p string, data []byte, mtime time.Time) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, srv.HTTPURL+p, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(srv.User, srv.Password)
	req.Header.Set("X-OC-Mtime", fmt.Sprint(mtime.Unix()))
	res, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", p, err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("PUT %s: %s", p, res.Status)
	}
}

// TestRecordLayout checks what a record write leaves on the server: the
// record beside ltx/, versioned by the SHA-256 of its content, and no lock
// or temp file.
func TestRecordLayout(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	p := srv.NewPath(t)
	c := open(t, srv, p, nil)
	ctx := context.Background()
	data := []byte(`{"owner":"a"}`)
	v, err := c.WriteRecord(ctx, "owner.json", data, "")
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); v != hex.EncodeToString(sum[:]) {
		t.Fatalf("version %q is not the SHA-256 of the content", v)
	}
	dir := filepath.Join(srv.Dir, filepath.FromSlash(p))
	if got, err := os.ReadFile(filepath.Join(dir, "owner.json")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the record file holds %q (%v); want %q", got, err, data)
	}
	if _, err := c.WriteRecord(ctx, "owner.json", []byte(`{"owner":"b"}`), v); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"owner.json"}) {
		t.Fatalf("after two writes %s holds %v; want only owner.json", dir, names)
	}
	for _, name := range []string{"ltx", ".owner.json.lock"} {
		if _, err := c.WriteRecord(ctx, name, data, ""); err == nil {
			t.Errorf("a record named %q, a name the backend keeps for itself, was written", name)
		}
	}
}

// TestRecordRaceClients races writers on separate clients, so on separate
// connections: exactly one must win each round.
func TestRecordRaceClients(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	p := srv.NewPath(t)
	clients := make([]*webdav.Client, 6)
	for i := range clients {
		clients[i] = open(t, srv, p, nil)
	}
	raceRounds(t, clients, 10)
}

// TestRecordRaceXNetWebDAV races writers on golang.org/x/net/webdav, the
// server rclone's is built on, with no rclone in between.
func TestRecordRaceXNetWebDAV(t *testing.T) {
	h := &xwebdav.Handler{FileSystem: xwebdav.Dir(t.TempDir()), LockSystem: xwebdav.NewMemLS()}
	ts := httptest.NewServer(h)
	defer ts.Close()
	u, _ := url.Parse(strings.Replace(ts.URL, "http://", "webdav://", 1) + "/db")
	clients := make([]*webdav.Client, 6)
	for i := range clients {
		c, err := webdav.Open(context.Background(), storage.Spec{URL: u})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	raceRounds(t, clients, 10)
}

// raceRounds has every client write the record "r" at once from the same
// version, rounds times: exactly one must win each time, and the others
// fail with storage.ErrConflict.
func raceRounds(t *testing.T, clients []*webdav.Client, rounds int) {
	t.Helper()
	version := ""
	for round := range rounds {
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
// one makes writes conflict, and one 30 seconds old is broken.
func TestRecordStaleLock(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	p := srv.NewPath(t)
	c := open(t, srv, p, nil)
	ctx := context.Background()
	v, err := c.WriteRecord(ctx, "r", []byte("one"), "")
	if err != nil {
		t.Fatal(err)
	}
	putRaw(t, srv, p+"/.r.lock", []byte("a dead writer's token"))
	if _, err := c.WriteRecord(ctx, "r", []byte("two"), v); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a write while another writer holds the lock: %v; want storage.ErrConflict", err)
	}
	putRawAt(t, srv, p+"/.r.lock", []byte("a dead writer's token"), time.Now().Add(-35*time.Second))
	v2, err := c.WriteRecord(ctx, "r", []byte("two"), v)
	if err != nil {
		t.Fatalf("a write with a stale lock in the way: %v", err)
	}
	if data, got, err := c.ReadRecord(ctx, "r"); err != nil || string(data) != "two" || got != v2 {
		t.Fatalf("read %q version %q (%v); want two at %q", data, got, err, v2)
	}
	if names := dirNames(t, filepath.Join(srv.Dir, filepath.FromSlash(p))); !slices.Equal(names, []string{"r"}) {
		t.Fatalf("after breaking the lock the replica holds %v; want only the record", names)
	}
}

// TestRecordAside leaves the server as a replacement interrupted between
// its moves would: the old record aside, none in place. Readers read the
// copy aside; a create conflicts, and a replace at its version completes.
func TestRecordAside(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	p := srv.NewPath(t)
	c := open(t, srv, p, nil)
	ctx := context.Background()
	mkcolRaw(t, srv, p)
	putRaw(t, srv, p+"/.r.old", []byte("one"))
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
	if data, got, err := c.ReadRecord(ctx, "r"); err != nil || string(data) != "two" || got != v2 {
		t.Fatalf("read %q version %q (%v); want two", data, got, err)
	}
	if names := dirNames(t, filepath.Join(srv.Dir, filepath.FromSlash(p))); !slices.Equal(names, []string{"r"}) {
		t.Fatalf("the replica holds %v; want only the record", names)
	}
}

// TestRecordRetries writes a chain of records through a proxy that fails a
// share of requests, some after the server acted on them: every write
// succeeds once, and the record ends at the last one.
func TestRecordRetries(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	proxy := testserver.NewFaultProxy(t, srv.HTTPURL, 0.2)
	p := srv.NewPath(t)
	c := openURL(t, strings.Replace(proxy.URL, "http://", "webdav://", 1)+p,
		map[string]string{"user": srv.User, "password": srv.Password})
	ctx := context.Background()
	version := ""
	for i := range 20 {
		v, err := c.WriteRecord(ctx, "r", fmt.Appendf(nil, "%d", i), version)
		if err != nil {
			t.Fatalf("write %d through the fault proxy (%s): %v", i, proxy.Summary(), err)
		}
		version = v
	}
	t.Logf("fault proxy: %s", proxy.Summary())
	direct := open(t, srv, p, nil)
	if data, v, err := direct.ReadRecord(ctx, "r"); err != nil || string(data) != "19" || v != version {
		t.Fatalf("read %q version %q (%v); want 19 at %q", data, v, err, version)
	}
}
