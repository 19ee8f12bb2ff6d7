package restore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/crypt"
)

// longHistory returns a history of n transactions over a database with
// 1024-byte pages that grows to about 60 pages and shrinks now and then.
func longHistory(n int) *history {
	h := newHistory(1024)
	commit := uint32(4)
	for i := 1; i <= n; i++ {
		switch {
		case i%11 == 0:
			commit = max(commit/2, 3)
		case i%3 == 0:
			commit += 5
		}
		writes := []uint32{1}
		for pgno := uint32(2 + i%4); pgno <= commit; pgno += uint32(3 + i%5) {
			writes = append(writes, pgno)
		}
		h.tx(commit, writes...)
	}
	return h
}

// longChain writes a replica whose latest restore applies 46 files: a
// snapshot, level-0 files, a compacted file and more level-0 files.
func longChain(t *testing.T) (*history, storage.Client, []fileRef) {
	h := longHistory(54)
	c := newReplica(t)
	files := refs(l9(5), l0Each(1, 54), l1(31, 35))
	writeAll(t, h, c, files)
	plan, err := restore.CalcPlan(context.Background(), c, restore.Target{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Files) != 46 {
		t.Fatalf("the plan applies %d files: %v", len(plan.Files), planRefs(plan))
	}
	return h, c, planRefs(plan)
}

// fetchFiles lists the temporary downloads in dir.
func fetchFiles(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	for _, name := range dirNames(t, dir) {
		if strings.Contains(name, ".tmp-fetch-") {
			names = append(names, name)
		}
	}
	if matches, err := filepath.Glob(filepath.Join(dir, "*.tmp-fetch-*")); err != nil || len(matches) != len(names) {
		t.Fatalf("glob found %v (%v); ReadDir %v", matches, err, names)
	}
	return names
}

// countingClient wraps a replica and counts the readers OpenLTXFile returned
// that are open at once.
type countingClient struct {
	storage.Client
	dir      string        // the output directory, to count temporary downloads
	overlap  bool          // make each reader's first Read wait (briefly) for a second reader
	readWait time.Duration // sleep in every Read

	// onOpen, if set, is called with the number of the OpenLTXFile call
	// (from 1) and the file's description, and may replace the reader.
	onOpen func(n int, name string, rc io.ReadCloser) io.ReadCloser

	mu       sync.Mutex
	open     int
	maxOpen  int
	calls    int
	opened   map[string]int // OpenLTXFile calls per file
	maxFetch int            // temporary downloads seen at once
}

func newCountingClient(c storage.Client, dir string) *countingClient {
	return &countingClient{Client: c, dir: dir, opened: map[string]int{}}
}

func (c *countingClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	fetches := 0
	if entries, err := os.ReadDir(c.dir); err == nil {
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp-fetch-") {
				fetches++
			}
		}
	}
	rc, err := c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.calls++
	n := c.calls
	c.open++
	c.maxOpen = max(c.maxOpen, c.open)
	c.maxFetch = max(c.maxFetch, fetches)
	c.opened[storage.Describe(level, minTXID, maxTXID)]++
	c.mu.Unlock()
	if c.onOpen != nil {
		rc = c.onOpen(n, storage.Describe(level, minTXID, maxTXID), rc)
	}
	return &countingReader{ReadCloser: rc, c: c}, nil
}

func (c *countingClient) openNow() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

type countingReader struct {
	io.ReadCloser
	c      *countingClient
	read   bool
	closed bool
}

func (r *countingReader) Read(p []byte) (int, error) {
	if !r.read && r.c.overlap {
		for i := 0; i < 100 && r.c.openNow() < 2; i++ {
			time.Sleep(time.Millisecond)
		}
	}
	r.read = true
	if r.c.readWait > 0 {
		time.Sleep(r.c.readWait)
	}
	return r.ReadCloser.Read(p)
}

func (r *countingReader) Close() error {
	if !r.closed {
		r.closed = true
		r.c.mu.Lock()
		r.c.open--
		r.c.mu.Unlock()
	}
	return r.ReadCloser.Close()
}

// TestRestoreParallelism: restores with any parallelism give the same,
// verified database; at most that many downloads run at once, more than one
// when allowed, each file is downloaded once, and the temporary downloads are
// deleted as they are applied.
func TestRestoreParallelism(t *testing.T) {
	h, c, chain := longChain(t)
	ctx := context.Background()
	for _, n := range []int{1, 2, 8, 64, 0} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir, out := outPath(t)
			// A download left by an interrupted restore is cleared away.
			stale := out + ".tmp-fetch-3"
			if err := os.WriteFile(stale, []byte("stale"), 0o600); err != nil {
				t.Fatal(err)
			}
			cc := newCountingClient(c, dir)
			cc.overlap = n != 1
			cc.readWait = 20 * time.Microsecond
			opts := noCheck
			opts.Parallelism = n
			res, err := restore.Restore(ctx, cc, out, opts)
			if err != nil {
				t.Fatal(err)
			}
			checkRestored(t, h, h.last(), out, res, len(chain))
			checkNothingWritten(t, dir, "restored.db")

			limit := n
			if n == 0 {
				limit = restore.DefaultParallelism
			}
			if cc.open != 0 {
				t.Errorf("%d readers left open", cc.open)
			}
			if cc.maxOpen > limit {
				t.Errorf("%d downloads ran at once; the limit is %d", cc.maxOpen, limit)
			}
			if limit > 1 && cc.maxOpen < 2 {
				t.Errorf("no two downloads ran at once with parallelism %d", limit)
			}
			if limit == 1 && cc.maxFetch > 0 {
				t.Errorf("%d temporary downloads with parallelism 1", cc.maxFetch)
			}
			// Up to limit files ahead of the one being applied, and that one.
			if cc.maxFetch > limit+1 {
				t.Errorf("%d temporary downloads at once; want at most %d", cc.maxFetch, limit+1)
			}
			if cc.calls != len(chain) || len(cc.opened) != len(chain) {
				t.Errorf("%d downloads of %d distinct files; the plan has %d", cc.calls, len(cc.opened), len(chain))
			}
			for _, f := range chain {
				if k := cc.opened[f.String()]; k != 1 {
					t.Errorf("%s downloaded %d times", f, k)
				}
			}
			t.Logf("parallelism %d: at most %d downloads and %d temporary files at once", limit, cc.maxOpen, cc.maxFetch)
		})
	}
}

// TestRestoreParallelBadFile: a file in the middle of a long chain that fails
// verification, or whose download fails, aborts the restore with the file
// named, and neither OUT.tmp nor any temporary download is left.
func TestRestoreParallelBadFile(t *testing.T) {
	ctx := context.Background()
	const bad = "level 0 file 000000000000001a-000000000000001a.ltx"
	t.Run("corrupt", func(t *testing.T) {
		h := longHistory(54)
		c := newReplica(t)
		writeAll(t, h, c, refs(l9(5), l0Each(6, 25)))
		h.write(t, c, 0, 26, 26, fileOpts{post: h.checksum(26) ^ 0x10})
		writeAll(t, h, c, l0Each(27, 54))
		for _, n := range []int{1, 2, 8, 64} {
			dir, out := outPath(t)
			cc := newCountingClient(c, dir)
			_, err := restore.Restore(ctx, cc, out, restore.Options{IntegrityCheck: "none", Parallelism: n})
			if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "the restored state has checksum") {
				t.Errorf("parallelism %d: error %v; want one naming %s", n, err, bad)
			}
			if names := fetchFiles(t, dir); len(names) != 0 {
				t.Errorf("parallelism %d: left %v", n, names)
			}
			checkNothingWritten(t, dir)
			if cc.open != 0 {
				t.Errorf("parallelism %d: %d readers left open", n, cc.open)
			}
		}
	})

	t.Run("download fails", func(t *testing.T) {
		h := longHistory(54)
		c := newReplica(t)
		writeAll(t, h, c, l0Each(1, 54))
		for _, n := range []int{1, 2, 8, 64} {
			dir, out := outPath(t)
			cc := newCountingClient(c, dir)
			cc.onOpen = func(_ int, name string, rc io.ReadCloser) io.ReadCloser {
				if name == bad {
					return &failingReader{rc, 100}
				}
				return rc
			}
			_, err := restore.Restore(ctx, cc, out, restore.Options{IntegrityCheck: "none", Parallelism: n})
			if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), errNetwork.Error()) {
				t.Errorf("parallelism %d: error %v; want one naming %s", n, err, bad)
			}
			checkNothingWritten(t, dir)
			if cc.open != 0 {
				t.Errorf("parallelism %d: %d readers left open", n, cc.open)
			}
		}
	})

	t.Run("missing file", func(t *testing.T) {
		h := longHistory(54)
		c := newReplica(t)
		writeAll(t, h, c, l0Each(1, 54))
		plan, err := restore.CalcPlan(ctx, c, restore.Target{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteLTXFiles(ctx, plan.Files[25:26]); err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 8} {
			dir, out := outPath(t)
			_, err := restore.Apply(ctx, c, plan, out, restore.Options{IntegrityCheck: "none", Parallelism: n})
			if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), bad) {
				t.Errorf("parallelism %d: error %v; want not found naming %s", n, err, bad)
			}
			checkNothingWritten(t, dir)
		}
	})
}

var errNetwork = errors.New("connection reset by peer")

// failingReader fails after n bytes.
type failingReader struct {
	io.ReadCloser
	n int
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errNetwork
	}
	n, err := r.ReadCloser.Read(p[:min(len(p), r.n)])
	r.n -= n
	return n, err
}

// TestRestoreParallelCanceled: a context canceled in the middle of a restore
// stops it and leaves nothing behind.
func TestRestoreParallelCanceled(t *testing.T) {
	_, c, _ := longChain(t)
	for _, n := range []int{1, 2, 8, 64} {
		for _, at := range []int{1, 2, 20, 46} {
			t.Run(fmt.Sprint(n, "/", at), func(t *testing.T) {
				dir, out := outPath(t)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				cc := newCountingClient(c, dir)
				cc.onOpen = func(k int, _ string, rc io.ReadCloser) io.ReadCloser {
					if k == at {
						cancel()
					}
					return rc
				}
				res, err := restore.Restore(ctx, cc, out, restore.Options{IntegrityCheck: "none", Parallelism: n})
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("error %v, result %+v; want context.Canceled", err, res)
				}
				checkNothingWritten(t, dir)
				if cc.open != 0 {
					t.Errorf("%d readers left open", cc.open)
				}
			})
		}
	}
}

// TestRestoreParallelismInvalid: a negative parallelism is refused.
func TestRestoreParallelismInvalid(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, l0Each(1, 10))
	dir, out := outPath(t)
	if _, err := restore.Restore(context.Background(), c, out, restore.Options{IntegrityCheck: "none", Parallelism: -1}); err == nil || !strings.Contains(err.Error(), "parallelism") {
		t.Fatalf("error %v", err)
	}
	checkNothingWritten(t, dir)
}

// remote makes a directory replica look like a remote one, for which restore
// downloads large files as parallel ranges.
type remote struct{ storage.Client }

func (remote) Type() string { return "remote" }

// A large snapshot on a remote replica is downloaded as parallel ranges; a
// range whose read fails midway is read again; the restore is exact.
func TestRestoreRangedDownload(t *testing.T) {
	ctx := context.Background()
	h := newHistory(65536)
	img := make([]byte, 400*65536) // 25 MiB of incompressible pages: four ranges
	rand.NewChaCha8([32]byte{1}).Read(img)
	h.txImage(img)
	h.tx(400, 3, 399)
	c := newReplica(t)
	writeAll(t, h, c, refs(l9(1), l0Each(2, 2)))

	dir, out := outPath(t)
	cc := newCountingClient(remote{c}, dir)
	var ranges, failed sync.Map
	cc.onOpen = func(_ int, name string, rc io.ReadCloser) io.ReadCloser {
		if name != storage.Describe(storage.SnapshotLevel, 1, 1) {
			return rc
		}
		n, _ := ranges.LoadOrStore(name, new(atomic.Int64))
		if n.(*atomic.Int64).Add(1) == 2 {
			failed.Store(name, true)
			return &failingReader{rc, 1 << 20} // this range fails after 1 MiB
		}
		return rc
	}
	res, err := restore.Restore(ctx, cc, out, restore.Options{IntegrityCheck: "none", Parallelism: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := failed.Load(storage.Describe(storage.SnapshotLevel, 1, 1)); !ok {
		t.Fatal("no read of the snapshot was made to fail")
	}
	if got := cc.opened[storage.Describe(storage.SnapshotLevel, 1, 1)]; got != 5 {
		t.Fatalf("the snapshot was opened %d times; want 4 ranges and one retry", got)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, h.bytes(2)) || res.TXID != 2 {
		t.Fatalf("restored TXID %s, %d bytes, not the database after TXID 2", res.TXID, len(got))
	}
	if names := fetchFiles(t, dir); len(names) != 0 {
		t.Fatalf("left %v", names)
	}
}

// An encrypted large snapshot is downloaded as parallel ranges too, each
// decrypted and authenticated on its own; the restore is exact.
func TestRestoreRangedDownloadEncrypted(t *testing.T) {
	ctx := context.Background()
	h := newHistory(65536)
	img := make([]byte, 400*65536)
	rand.NewChaCha8([32]byte{2}).Read(img)
	h.txImage(img)
	h.tx(400, 3, 399)
	key, err := crypt.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	c := newReplica(t)
	writeAll(t, h, crypt.Wrap(c, crypt.Keys{Current: key}), refs(l9(1), l0Each(2, 2)))

	dir, out := outPath(t)
	cc := newCountingClient(c, dir)
	res, err := restore.Restore(ctx, remote{crypt.Wrap(cc, crypt.Keys{Current: key})}, out, restore.Options{IntegrityCheck: "none", Parallelism: 4})
	if err != nil {
		t.Fatal(err)
	}
	// Four ranges: the first with the header, the others a read of the
	// header each.
	if got := cc.opened[storage.Describe(storage.SnapshotLevel, 1, 1)]; got != 7 {
		t.Fatalf("the snapshot was opened %d times; want 7 (four ranges)", got)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, h.bytes(2)) || res.TXID != 2 {
		t.Fatalf("restored TXID %s, %d bytes, not the database after TXID 2", res.TXID, len(got))
	}
}

// stallingReader serves bad data, then blocks like a stalled connection
// until it is closed.
type stallingReader struct {
	data   []byte
	closed chan struct{}
	once   sync.Once
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(p, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	<-r.closed
	return 0, errors.New("read on a closed connection")
}

func (r *stallingReader) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}

// A streamed file whose data is bad fails the restore at once, even though
// the connection behind it then stalls: the restore closes it rather than
// wait for the transport to give up.
func TestRestoreBadDataOnStalledStream(t *testing.T) {
	ctx := context.Background()
	h := newHistory(4096)
	h.tx(4, 1, 2, 3, 4)
	c := newReplica(t)
	writeAll(t, h, c, refs(l9(1)))
	dir, out := outPath(t)
	cc := newCountingClient(c, dir)
	cc.onOpen = func(_ int, _ string, rc io.ReadCloser) io.ReadCloser {
		rc.Close()
		return &stallingReader{data: bytes.Repeat([]byte{0xff}, 1<<20), closed: make(chan struct{})}
	}
	done := make(chan error, 1)
	go func() {
		_, err := restore.Restore(ctx, cc, out, restore.Options{IntegrityCheck: "none", Parallelism: 1})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), storage.Describe(storage.SnapshotLevel, 1, 1)) {
			t.Fatalf("restore of bad data: %v; want an error naming the file", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the restore hung on a stalled connection after bad data")
	}
	checkNothingWritten(t, dir)
}
