package walship_test

import (
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
