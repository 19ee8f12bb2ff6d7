package walship_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/pagesum"
)

// TestPastOneGiB grows a database past 1 GiB, so it has a lock page (the page
// holding byte offset 2^30, which SQLite never writes), and changes pages on
// both sides of it. Its page checksums then no longer fit in the memory a
// state keeps (64 chunks of 4,096 pages): syncs read spilled chunks back
// and spill others, and every restore point must still restore exactly.
func TestPastOneGiB(t *testing.T) {
	if testing.Short() {
		t.Fatal("TestPastOneGiB is part of the required suite; run it without -short")
	}
	h := newHarness(t)
	h.open(walship.Options{})
	lock := int(ltx.LockPgno(4096))
	batch := func(n int, blob string) {
		tx, err := h.app.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			if _, err := tx.Exec("INSERT INTO t (v) VALUES (" + blob + ")"); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, err := h.db.Sync(h.ctx); err != nil {
			t.Fatal(err)
		}
		if err := h.db.Checkpoint(h.ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	// Mostly compressible pages to keep the test quick, random ones around
	// the lock page.
	for pageCount(t, h) < lock-3000 {
		batch(64, "zeroblob(1000000)")
	}
	for pageCount(t, h) < lock+3000 {
		batch(4, "randomblob(1000000)")
	}
	h.record()
	h.exec("UPDATE t SET v = randomblob(1000000) WHERE id IN (SELECT id FROM t ORDER BY id DESC LIMIT 8)")
	h.exec("DELETE FROM t WHERE id % 50 = 0")
	h.sync()
	if n := pageCount(t, h); n <= lock {
		t.Fatalf("database has %d pages; the lock page is %d", n, lock)
	}
	spilled, _ := filepath.Glob(filepath.Join(walship.MetaPath(h.path), ".pagesum-*.tmp"))
	if len(spilled) != 1 {
		t.Fatalf("page checksum spill files in the staging directory: %v, want one", spilled)
	}
	if fi, err := os.Stat(spilled[0]); err != nil || fi.Size() == 0 {
		t.Fatalf("the page checksums of %d pages did not spill (%v)", pageCount(t, h), err)
	}
	h.verifyAllWith("quick")
}

// TestSpilledWorkload: with one chunk of page checksums in memory, every
// sync of a database of a few chunks reads and writes spilled ones (a
// small database stands for a large one): random writes, a VACUUM that
// shrinks it, a restart that resumes from the staged checksums, and every
// recorded TXID restores exactly.
func TestSpilledWorkload(t *testing.T) {
	defer pagesum.SetMaxResident(1)()
	h := newHarness(t, "page_size(512)")
	h.open(walship.Options{})
	rng := rand.New(rand.NewPCG(5, 6))
	// Past three chunks of 512-byte pages (6 MiB).
	for range 8 {
		h.exec("INSERT INTO t (v, n) VALUES (randomblob(1000000), 0)")
	}
	h.sync()
	if n := pageCount(t, h); n < 3*pagesum.ChunkPages {
		t.Fatalf("the database has %d pages, fewer than three chunks: nothing would spill", n)
	}
	for round := range 12 {
		h.randomWrites(rng, 1+rng.IntN(20))
		if round == 6 {
			h.exec("DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY id LIMIT 3)")
			h.exec("VACUUM")
		}
		h.sync()
		if round == 8 {
			spilled, _ := filepath.Glob(filepath.Join(walship.MetaPath(h.path), ".pagesum-*.tmp"))
			if len(spilled) != 1 {
				t.Fatalf("page checksum spill files in the staging directory: %v, want one", spilled)
			}
			if fi, err := os.Stat(spilled[0]); err != nil || fi.Size() == 0 {
				t.Fatalf("the page checksums did not spill (%v)", err)
			}
			// A restart: the staged checksums are loaded into a spilled state.
			if err := h.db.Close(h.ctx); err != nil {
				t.Fatal(err)
			}
			h.randomWrites(rng, 5)
			h.open(walship.Options{})
		}
	}
	h.verifyAll()
}
