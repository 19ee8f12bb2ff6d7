package walship

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/walship/walship/internal/event"
	"github.com/walship/walship/storage/file"
)

// TestIdlePollStepsOnlyOnChange: on a file system that reports no changes,
// the fallback poll alone syncs a commit within one poll; then, idle for
// an hour, the database makes no sync at all (it made one every 10 s once
// checkpoint-interval had passed since its last checkpoint), except the
// one that checkpoints the frames it read, once the interval has passed.
func TestIdlePollStepsOnlyOnChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var syncs, checkpoints atomic.Int64
		opts := Options{Events: func(e Event) {
			switch e.Kind {
			case event.Sync:
				syncs.Add(1)
			case event.Checkpoint:
				checkpoints.Add(1)
			}
		}}
		app, _, db, stop := startScheduled(t, opts, file.New(filepath.Join(t.TempDir(), "replica")))
		defer stop()
		db.unwatched = true
		ctx, cancel := context.WithCancel(context.Background())
		monitored := make(chan struct{})
		go func() { defer close(monitored); db.monitor(ctx) }()
		defer func() { cancel(); <-monitored }()

		time.Sleep(time.Second) // the first sync, at start
		synctest.Wait()
		before := db.Pos().TXID
		if _, err := app.Exec("INSERT INTO t (v) VALUES (randomblob(100))"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(fallbackPoll + db.opts.SyncInterval)
		synctest.Wait()
		if got := db.Pos().TXID; got != before+1 {
			t.Fatalf("TXID %s one poll after a commit no notification reported; want %s", got, before+1)
		}
		// The frames read are checkpointed once checkpoint-interval has
		// passed, by a sync the poll asks for; after that, nothing.
		time.Sleep(db.opts.CheckpointInterval + 2*fallbackPoll)
		synctest.Wait()
		if checkpoints.Load() == 0 {
			t.Fatal("the frames read were not checkpointed on checkpoint-interval while the database was idle")
		}
		idle := syncs.Load()
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := syncs.Load() - idle; n != 0 {
			t.Fatalf("an idle, unchanged database synced %d times in an hour", n)
		}
	})
}
