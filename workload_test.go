package walship_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/storage"
)

func TestPageSizes(t *testing.T) {
	for _, ps := range []int{512, 4096, 65536} {
		t.Run(fmt.Sprint(ps), func(t *testing.T) {
			h := newHarness(t, fmt.Sprintf("page_size(%d)", ps))
			h.open(walship.Options{MinCheckpointPageN: 20})
			rng := rand.New(rand.NewPCG(uint64(ps), 1))
			for range 15 {
				h.randomWrites(rng, 1+rng.IntN(10))
				h.sync()
				if err := h.db.Checkpoint(h.ctx, rng.IntN(2) == 0); err != nil {
					t.Fatal(err)
				}
			}
			var got int
			if err := h.app.QueryRow("PRAGMA page_size").Scan(&got); err != nil || got != ps {
				t.Fatalf("page size %d, %v; want %d", got, err, ps)
			}
			h.verifyAll()
		})
	}
}

// A transaction larger than the WAL the engine lets build up between its
// checkpoints.
func TestTransactionLargerThanWAL(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{MinCheckpointPageN: 50, TruncatePageN: 200})
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 4 {
		tx, err := h.app.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for range 400 { // ~1.2 MB, about 300 pages
			if _, err := tx.Exec("INSERT INTO t (v, n) VALUES (?, ?)", randBytes(rng, 3000), i); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		h.sync()
		if err := h.db.Checkpoint(h.ctx, true); err != nil {
			t.Fatal(err)
		}
		h.randomWrites(rng, 5)
		h.sync()
	}
	h.verifyAll()
}

func TestVacuumShrinks(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	rng := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		h.exec("INSERT INTO t (v) VALUES (?)", randBytes(rng, 2000))
	}
	h.sync()
	before := pageCount(t, h)
	h.exec("DELETE FROM t WHERE id % 10 != 0")
	h.sync()
	h.exec("VACUUM")
	h.sync()
	if after := pageCount(t, h); after >= before/2 {
		t.Fatalf("VACUUM left %d of %d pages", after, before)
	}
	h.randomWrites(rng, 10)
	h.sync()
	if err := h.db.Checkpoint(h.ctx, true); err != nil {
		t.Fatal(err)
	}
	h.randomWrites(rng, 10)
	h.sync()
	h.verifyAll()
}

func TestAutoVacuum(t *testing.T) {
	h := newHarness(t, "auto_vacuum(full)")
	h.open(walship.Options{})
	rng := rand.New(rand.NewPCG(7, 8))
	for range 10 {
		for range 30 {
			h.exec("INSERT INTO t (v) VALUES (?)", randBytes(rng, 1500))
		}
		h.sync()
		h.exec("DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 25)")
		h.sync()
	}
	h.verifyAll()
}

func pageCount(t *testing.T, h *harness) int {
	var n int
	if err := h.app.QueryRow("PRAGMA page_count").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The application checkpoints the WAL itself, in every mode, between writes,
// both while the engine's pin holds the log and right after the engine's own
// checkpoint, when SQLite may restart or truncate it.
func TestApplicationCheckpoints(t *testing.T) {
	for _, mode := range []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t)
			h.exec("PRAGMA busy_timeout=50")
			h.open(walship.Options{})
			rng := rand.New(rand.NewPCG(9, uint64(len(mode))))
			for i := range 12 {
				h.randomWrites(rng, 1+rng.IntN(8))
				if i%3 == 0 {
					h.sync()
				}
				if i%4 == 1 {
					if err := h.db.Checkpoint(h.ctx, false); err != nil {
						t.Fatal(err)
					}
				}
				if i%4 == 3 {
					if err := h.db.CheckpointUnsealed(h.ctx, i%8 == 3); err != nil {
						t.Fatal(err)
					}
				}
				h.exec("PRAGMA wal_checkpoint(" + mode + ")")
				h.randomWrites(rng, 1+rng.IntN(3))
				h.exec("PRAGMA wal_checkpoint(" + mode + ")")
				h.sync()
			}
			h.verifyAll()
		})
	}
}

// The application closes its last connection (SQLite checkpoints and deletes
// the WAL if it can) and reopens, while the engine runs and while it is
// stopped.
func TestApplicationReopens(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	rng := rand.New(rand.NewPCG(11, 12))
	reopen := func() {
		h.app.Close()
		h.app = openApp(t, h.path)
	}
	for range 3 {
		h.randomWrites(rng, 5)
		reopen()
		h.randomWrites(rng, 5)
		h.sync()
	}
	// Stop the engine; the application closes (deleting the WAL) and writes
	// more while it is away, then the engine comes back.
	for _, writeWhileAway := range []bool{false, true} {
		if err := h.db.Close(h.ctx); err != nil {
			t.Fatal(err)
		}
		h.randomWrites(rng, 3)
		reopen()
		if writeWhileAway {
			h.randomWrites(rng, 4)
		}
		h.app.Close()
		h.open(walship.Options{})
		h.app = openApp(t, h.path)
		h.randomWrites(rng, 5)
		h.sync()
	}
	h.verifyAll()
}

// The engine restarts (cleanly) while the application keeps writing, with and
// without its staging directory.
func TestEngineRestart(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	rng := rand.New(rand.NewPCG(13, 14))
	for i := range 8 {
		h.randomWrites(rng, 5)
		h.sync()
		if err := h.db.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		h.randomWrites(rng, 5)
		h.open(walship.Options{})
		if i%2 == 0 {
			h.sync()
		}
	}
	h.verifyAll()
}

// The application changes the page size while walship is down: on restart
// walship stages a full copy at the new size as the next TXID, then a
// snapshot. Until that snapshot is in the replica (its upload still to
// come, or failed) every restore point from the change on is reached
// through the full copy, and walship verify finds the replica whole.
func TestPageSizeChangeWhileDown(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	rng := rand.New(rand.NewPCG(9, 10))
	for range 3 {
		h.randomWrites(rng, 5)
		h.sync()
	}
	if err := h.db.Close(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.app.Close()
	d, err := sql.Open("sqlite", "file:"+h.path)
	if err != nil {
		t.Fatal(err)
	}
	d.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA journal_mode=DELETE", "PRAGMA page_size=1024", "VACUUM", "PRAGMA journal_mode=WAL"} {
		if _, err := d.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	d.Close()
	h.app = openApp(t, h.path)
	h.open(walship.Options{})
	change := h.db.Pos().TXID
	for range 3 {
		h.randomWrites(rng, 5)
		h.sync()
	}
	var after []*ltx.FileInfo
	for _, f := range mustList(t, h.replica, storage.SnapshotLevel) {
		if f.MaxTXID >= change {
			after = append(after, f)
		}
	}
	if len(after) == 0 {
		t.Fatal("walship took no snapshot after the page size changed")
	}
	if err := h.replica.DeleteLTXFiles(h.ctx, after); err != nil {
		t.Fatal(err)
	}
	h.verifyAll()
}
