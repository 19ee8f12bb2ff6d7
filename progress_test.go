package walship_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/walship/walship"
	"github.com/walship/walship/storage/file"
)

// TestCopyProgress: the first snapshot of a database reports its progress
// up to the size of the database, and counts as the monitor loop's beats.
func TestCopyProgress(t *testing.T) {
	h := newHarness(t)
	for range 50 {
		h.exec("INSERT INTO t (v) VALUES (randomblob(4000))")
	}
	var calls int
	var last, total int64
	db, err := walship.NewDB(h.path, walship.Options{Logger: quietLogger()}, walship.NewReplica("dir", file.New(filepath.Join(h.dir, "copy-replica"))))
	if err != nil {
		t.Fatal(err)
	}
	db.SetProgress(func(done, all int64) {
		if done < last {
			t.Errorf("progress went back from %d to %d", last, done)
		}
		calls, last, total = calls+1, done, all
	})
	before := db.Beats()
	if err := db.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls == 0 || last != total || total < 50*4000 {
		t.Fatalf("%d calls, last %d of %d bytes", calls, last, total)
	}
	if db.Beats() == before {
		t.Fatal("a whole copy did not count as the loop's progress")
	}
}
