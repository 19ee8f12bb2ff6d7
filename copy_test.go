package walship_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/walship/walship"
)

// A database of a few thousand pages goes through the pipelined copy (pages
// read and checksummed in one goroutine, encoded in another): its snapshot,
// a large transaction, and a resume that compares every page, all restore
// exactly.
func TestLargeCopiesRestoreExactly(t *testing.T) {
	h := newHarness(t)
	for i := range 3000 {
		h.exec("INSERT INTO t (v, n) VALUES (randomblob(3000), ?)", i)
	}
	h.open(walship.Options{})
	h.exec("UPDATE t SET v = randomblob(2500)") // every page changes in one transaction
	h.sync()
	if err := h.db.Close(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.exec("DELETE FROM t WHERE n % 3 = 0")
	h.open(walship.Options{}) // resumes with a diff of every page
	h.verifyAll()
	h.verifyChain()
}

// A snapshot larger than the encoder's in-memory page index spills it to the
// staging directory, restores exactly, and leaves nothing behind; an index,
// a merged upload or a page checksums' spill file left by a crash is
// removed at the next start.
func TestSpilledPageIndex(t *testing.T) {
	h := newHarness(t, "page_size(512)")
	// A page of 512 bytes a row: past the spill threshold (65,536 pages).
	h.exec(`WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r LIMIT 80000)
		INSERT INTO t (v, n) SELECT randomblob(400), i FROM r`)
	meta := walship.MetaPath(h.path)
	if err := os.MkdirAll(meta, 0o755); err != nil {
		t.Fatal(err)
	}
	stales := []string{".ltx-page-index-123.tmp", ".merge-456.tmp", ".pagesum-789.tmp"}
	for _, stale := range stales {
		if err := os.WriteFile(filepath.Join(meta, stale), []byte("left by a crash"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.open(walship.Options{})
	for _, pattern := range []string{".ltx-page-index-*", ".merge-*"} {
		if left, _ := filepath.Glob(filepath.Join(meta, pattern)); len(left) > 0 {
			t.Fatalf("temporary files left in the staging directory: %v", left)
		}
	}
	// The page checksums' spill file is the running engine's own; the
	// one a crash left is gone.
	if _, err := os.Stat(filepath.Join(meta, stales[2])); !os.IsNotExist(err) {
		t.Fatalf("%s left by a crash is still in the staging directory (%v)", stales[2], err)
	}
	h.exec("UPDATE t SET v = randomblob(300)") // a delta past the threshold too
	h.sync()
	h.verifyAll()
}
