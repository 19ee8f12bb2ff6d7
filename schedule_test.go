package walship

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// TestSimulatedDay replicates a steady load for a simulated day, with the
// default compaction levels and the real schedulers (compaction, snapshots,
// retention, uploads) running on the fake clock of testing/synctest. At every
// check the replica's file count and bytes stay within bounds that do not
// grow with time, and a restore of the latest state reads one snapshot and a
// handful of files per level, and is exact.
func TestSimulatedDay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		dir := t.TempDir()
		path := filepath.Join(dir, "app.db")
		app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)&_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		app.SetMaxOpenConns(1)
		defer app.Close()
		if _, err := app.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			if _, err := app.Exec("INSERT INTO t VALUES (?, randomblob(400))", i); err != nil {
				t.Fatal(err)
			}
		}

		const (
			step              = 20 * time.Second // one sync per step
			snapshotInterval  = 4 * time.Hour
			snapshotRetention = 6 * time.Hour
		)
		replica := file.New(filepath.Join(dir, "replica"))
		db, err := NewDB(path, Options{
			Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
			SnapshotInterval:  snapshotInterval,
			SnapshotRetention: snapshotRetention,
		}, NewReplica("dir", replica))
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Open(ctx); err != nil {
			t.Fatal(err)
		}
		r := db.replicas[0]
		done := make(chan struct{}, 2)
		go func() { db.maintain(ctx); done <- struct{}{} }()
		go func() { r.run(ctx); done <- struct{}{} }()
		r.wake()

		levels := db.opts.Levels // the defaults: 30s, 5m, 1h
		// Files a level can hold at most: the restore points inside the
		// retention window (plus the snapshot interval, since the base
		// snapshot is older than the window), and some slack for files not
		// yet expired or compacted.
		maxFiles := map[int]int{
			0:                     int((DefaultL0Retention+levels[0])/step) + 3,
			storage.SnapshotLevel: int((snapshotRetention+snapshotInterval)/snapshotInterval) + 2,
		}
		for i, iv := range levels {
			maxFiles[i+1] = int((snapshotRetention+snapshotInterval)/iv) + 3
		}

		rng := rand.New(rand.NewPCG(1, 2))
		var maxBytes, bytesAtHalfDay int64
		var maxPlan int
		steps := int(24 * time.Hour / step)
		for i := range steps {
			// A steady load: the database does not grow.
			if _, err := app.Exec("UPDATE t SET v = randomblob(400) WHERE id = ?", rng.IntN(100)); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			r.wake()
			time.Sleep(step)
			synctest.Wait()
			if err := r.Err(); err != nil {
				t.Fatalf("upload: %v", err)
			}
			if i%30 != 29 && i != steps-1 {
				continue
			}
			// Every 10 simulated minutes: the replica stays bounded.
			var total int64
			for level := 0; level <= storage.MaxLevel; level++ {
				files, err := replica.LTXFiles(ctx, level)
				if err != nil {
					t.Fatal(err)
				}
				if limit, ok := maxFiles[level]; ok && len(files) > limit {
					t.Fatalf("after %s: level %d holds %d files, more than %d", time.Duration(i+1)*step, level, len(files), limit)
				} else if !ok && len(files) > 0 {
					t.Fatalf("level %d is not configured but holds %d files", level, len(files))
				}
				for _, f := range files {
					total += f.Size
				}
			}
			maxBytes = max(maxBytes, total)

			// A restore of the latest state reads one snapshot and a
			// handful of files per level.
			plan, err := restore.CalcPlan(ctx, replica, restore.Target{})
			if err != nil {
				t.Fatal(err)
			}
			perLevel := map[int]int{}
			for _, f := range plan.Files {
				perLevel[f.Level]++
			}
			if perLevel[storage.SnapshotLevel] != 1 {
				t.Fatalf("after %s: the latest restore reads %d snapshots", time.Duration(i+1)*step, perLevel[storage.SnapshotLevel])
			}
			bound := []time.Duration{step, levels[0], levels[1], levels[2], snapshotInterval}
			for level := 0; level <= len(levels); level++ {
				if n, limit := perLevel[level], int(bound[level+1]/bound[level])+2; n > limit {
					t.Fatalf("after %s: the latest restore reads %d files of level %d; want at most %d", time.Duration(i+1)*step, n, level, limit)
				}
			}
			maxPlan = max(maxPlan, len(plan.Files))
			if i == steps/2-1 {
				bytesAtHalfDay = total
			}
		}
		// Steady load, steady storage: the second half of the day needs
		// no more room than the first.
		if maxBytes > bytesAtHalfDay*3/2 {
			t.Fatalf("the replica grew to %d bytes; it held %d at mid-day", maxBytes, bytesAtHalfDay)
		}

		t.Logf("replica peak %d bytes, %d at mid-day; latest restore plans read up to %d files", maxBytes, bytesAtHalfDay, maxPlan)

		cancel()
		<-done
		<-done
		if err := db.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "latest.db")
		res, err := restore.Restore(context.Background(), replica, out, restore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		want, err := testutil.LogicalImage(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := testutil.FileImage(out, int(res.PageSize)); err != nil || got != want {
			t.Fatalf("latest restore: %v, %v; want %v", got, err, want)
		}
	})
}
