package walship_test

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walship/walship"
)

// walSalt reads the first salt of the WAL's header: it changes each time the
// log restarts. An empty log has none: 0.
func walSalt(t *testing.T, path string) uint32 {
	t.Helper()
	b, err := os.ReadFile(path + "-wal")
	if err == nil && len(b) == 0 {
		return 0
	}
	if err != nil || len(b) < 32 {
		t.Fatalf("read wal header: %v (%d bytes)", err, len(b))
	}
	return binary.BigEndian.Uint32(b[16:20])
}

// The checkpoint taken below MaxCheckpointPageN never locks the application
// out, yet once the application pauses it leaves the log fully backfilled
// and unpinned, so that the next commit restarts the log.
func TestUnsealedCheckpointRestartsTheLog(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	rng := rand.New(rand.NewPCG(5, 6))
	for range 5 {
		h.randomWrites(rng, 20)
		h.sync()
		before := walSalt(t, h.path)
		if err := h.db.CheckpointUnsealed(h.ctx, false); err != nil {
			t.Fatal(err)
		}
		h.exec("INSERT INTO t (v, n) VALUES (randomblob(100), 1)")
		if after := walSalt(t, h.path); after == before {
			t.Fatalf("the log did not restart after an unsealed checkpoint with the application paused (salt %08x)", after)
		}
		h.sync()
	}
	h.verifyAll()
	h.verifyChain()
}

// An idle database wakes the monitor's Step only for work: frames read
// but not yet checkpointed once checkpoint-interval has passed. Once they
// are backfilled, or before the interval, an unchanged database needs no
// Step, so a hundred idle databases do nothing between file changes.
func TestIdleStepOnlyForUnfinishedWork(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		want     bool
	}{
		{"interval passed", time.Nanosecond, true},
		{"interval not passed", time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := idleHarness(t, tc.interval)
			h.exec("INSERT INTO t (v, n) VALUES (randomblob(100), 1)")
			h.sync()
			if got := h.db.Unfinished(); got != tc.want {
				t.Fatalf("frames synced, not checkpointed: Unfinished = %v, want %v", got, tc.want)
			}
			if err := h.db.CheckpointUnsealed(h.ctx, false); err != nil {
				t.Fatal(err)
			}
			if h.db.Unfinished() {
				t.Fatal("a Step is wanted once the frames were checkpointed and nothing changed")
			}
			h.verifyChain()
		})
	}
}

// A snapshot asked for and not yet staged (a replica that needs one, or a
// snapshot whose staging failed after a whole copy) is work the idle poll
// steps for: without a notice, nothing else would retry it on an idle
// database.
func TestIdleStepForAWantedSnapshot(t *testing.T) {
	h := idleHarness(t, time.Hour)
	h.db.RequestSnapshot("the test asks for one")
	if !h.db.Unfinished() {
		t.Fatal("a snapshot was asked for and the idle poll would not step for it")
	}
	h.sync()
	if h.db.Unfinished() {
		t.Fatal("a Step is still wanted once the snapshot was staged")
	}
}

// idleHarness opens a database with checkpoint-interval interval and
// checkpoints it, after which a Step has nothing to do.
func idleHarness(t *testing.T, interval time.Duration) *harness {
	t.Helper()
	h := newHarness(t)
	h.open(walship.Options{CheckpointInterval: interval})
	if err := h.db.CheckpointUnsealed(h.ctx, false); err != nil {
		t.Fatal(err)
	}
	if h.db.Unfinished() {
		t.Fatal("a Step is wanted right after a checkpoint that backfilled everything")
	}
	return h
}

// While the application writes without pause, unsealed checkpoints race with
// its commits: whether or not the log restarts, no frame may be lost.
func TestUnsealedCheckpointsUnderWrites(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	var n atomic.Int64
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			if _, err := h.app.Exec("INSERT INTO t (v, n) VALUES (randomblob(300), ?)", i); err != nil {
				t.Error(err)
				return
			}
			n.Add(1)
		}
	}()
	restarts := 0
	var salt uint32
	// How often the log restarts depends on the scheduler; what is checked
	// is that every state restores exactly, whichever happened.
	for i := range 150 {
		if _, err := h.db.Sync(h.ctx); err != nil {
			t.Fatal(err)
		}
		if err := h.db.CheckpointUnsealed(h.ctx, i%7 == 0); err != nil {
			t.Fatal(err)
		}
		if s := walSalt(t, h.path); s != salt {
			restarts, salt = restarts+1, s
		}
	}
	stop.Store(true)
	wg.Wait()
	h.sync()
	var rows int64
	if err := h.app.QueryRow("SELECT count(*) FROM t").Scan(&rows); err != nil || rows != n.Load() {
		t.Fatalf("%d rows, %v; want %d", rows, err, n.Load())
	}
	t.Logf("%d commits, %d restarts", n.Load(), restarts)
	h.verifyAll()
	h.verifyChain()
}

// A replica that fell behind receives the staged backlog as one merged
// level-0 file, which restores exactly.
func TestBacklogUploadsAsOneFile(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	start := h.db.Pos().TXID
	rng := rand.New(rand.NewPCG(7, 8))
	for range 6 {
		h.randomWrites(rng, 3)
		if _, err := h.db.Sync(h.ctx); err != nil { // staged, not uploaded
			t.Fatal(err)
		}
	}
	end := h.record() // uploads the backlog
	if end != start+6 {
		t.Fatalf("position %s after six syncs from %s", end, start)
	}
	files, err := h.replica.LTXFiles(h.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := files[len(files)-1]
	if last.MinTXID != start+1 || last.MaxTXID != end {
		t.Fatalf("newest level-0 file of the replica is %s-%s; want one file %s-%s", last.MinTXID, last.MaxTXID, start+1, end)
	}
	if left, _ := filepath.Glob(filepath.Join(walship.MetaPath(h.path), ".merge-*")); len(left) > 0 {
		t.Fatalf("the merge left %v", left)
	}
	h.randomWrites(rng, 3)
	h.sync() // and the next file continues it
	h.verifyAll()
	h.verifyChain()
}

// Pages captured from the log but not yet staged when the engine truncates
// the log are read from the database file at the next sync, as a delta.
func TestTruncateWithPendingPages(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	rng := rand.New(rand.NewPCG(11, 12))
	for range 3 {
		h.randomWrites(rng, 10)
		if err := h.db.CheckpointUnsealed(h.ctx, true); err != nil { // scans, then truncates
			t.Fatal(err)
		}
		if fi, err := os.Stat(h.path + "-wal"); err != nil || fi.Size() != 0 {
			t.Fatalf("the log was not truncated: %v, %v", fi, err)
		}
		before := h.db.Pos()
		h.sync()
		if files, err := h.replica.LTXFiles(h.ctx, 0); err != nil || files[len(files)-1].MinTXID != before.TXID+1 || files[len(files)-1].MaxTXID != before.TXID+1 {
			t.Fatalf("the sync after a truncation did not stage one delta after TXID %s: %v", before.TXID, err)
		}
	}
	h.verifyAll()
	h.verifyChain()
}

// A replica behind by fewer than four files gets them one by one: every
// TXID stays a restore point.
func TestShortBacklogKeepsEveryFile(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	start := h.db.Pos().TXID
	rng := rand.New(rand.NewPCG(9, 10))
	for range 3 {
		h.randomWrites(rng, 3)
		if _, err := h.db.Sync(h.ctx); err != nil {
			t.Fatal(err)
		}
	}
	h.record()
	files, err := h.replica.LTXFiles(h.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.MinTXID > start && f.MinTXID != f.MaxTXID {
			t.Fatalf("a backlog of three files was merged into %s-%s", f.MinTXID, f.MaxTXID)
		}
	}
	if last := files[len(files)-1].MaxTXID; last != start+3 {
		t.Fatalf("level 0 ends at %s; want %s", last, start+3)
	}
}
