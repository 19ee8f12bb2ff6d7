package restore_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage/file"
)

// TestRestoreProgress: a restore tells its progress up to the plan's size,
// never going back, streamed or downloaded in parallel.
func TestRestoreProgress(t *testing.T) {
	dir := t.TempDir()
	replica := file.New(filepath.Join(dir, "replica"))
	if err := replicateSomeNotes(filepath.Join(dir, "app.db"), replica); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := restore.List(ctx, replica)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := l.Plan(restore.Target{})
	if err != nil {
		t.Fatal(err)
	}
	for _, parallelism := range []int{1, 8} {
		var mu sync.Mutex
		var last, calls int64
		opts := restore.Options{Parallelism: parallelism, Progress: func(done, total int64) {
			mu.Lock()
			defer mu.Unlock()
			if done < last || total != plan.Size() {
				t.Errorf("progress %d of %d after %d (plan of %d bytes)", done, total, last, plan.Size())
			}
			last = done
			calls++
		}}
		out := filepath.Join(t.TempDir(), "app.db")
		if _, err := restore.Restore(ctx, replica, out, opts); err != nil {
			t.Fatal(err)
		}
		if calls == 0 || last != plan.Size() {
			t.Errorf("parallelism %d: %d calls, last at %d of %d bytes", parallelism, calls, last, plan.Size())
		}
	}
}
