package walship

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/superfly/ltx"

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
		const (
			step              = 20 * time.Second // one sync per step
			snapshotInterval  = 4 * time.Hour
			snapshotRetention = 6 * time.Hour
		)
		ctx := context.Background()
		replica := file.New(filepath.Join(t.TempDir(), "replica"))
		app, path, db, stop := startScheduled(t, Options{SnapshotInterval: snapshotInterval, SnapshotRetention: snapshotRetention}, replica)
		for i := range 100 {
			if _, err := app.Exec("INSERT INTO t VALUES (?, randomblob(400))", i); err != nil {
				t.Fatal(err)
			}
		}
		r := db.replicas[0]
		r.up.Wake()

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
			r.up.Wake()
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

		stop()
		out := filepath.Join(t.TempDir(), "latest.db")
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

// startScheduled opens an application database (table t) and the engine
// replicating it through client, with the engine's own schedulers —
// compaction, snapshots, retention and uploads — running, for tests on the
// synctest clock. stop ends them and closes the engine.
func startScheduled(t *testing.T, opts Options, client storage.Client) (app *sql.DB, path string, db *DB, stop func()) {
	t.Helper()
	return startScheduledReplica(t, opts, NewReplica("dir", client))
}

// startScheduledReplica is startScheduled with the replica given whole.
func startScheduledReplica(t *testing.T, opts Options, replica *Replica) (app *sql.DB, path string, db *DB, stop func()) {
	t.Helper()
	return startScheduledAt(t, filepath.Join(t.TempDir(), "app.db"), opts, replica)
}

// startScheduledAt is startScheduledReplica for the database at path, new
// or one an earlier start left.
func startScheduledAt(t *testing.T, path string, opts Options, replica *Replica) (app *sql.DB, _ string, db *DB, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	app.SetMaxOpenConns(1)
	t.Cleanup(func() { app.Close() })
	if _, err := app.Exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if db, err = NewDB(path, opts, replica); err != nil {
		t.Fatal(err)
	}
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { db.maintain(ctx); done <- struct{}{} }()
	go func() { db.replicas[0].up.Run(ctx); done <- struct{}{} }()
	return app, path, db, func() {
		cancel()
		<-done
		<-done
		if err := db.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// countingClient counts the requests made to a replica.
type countingClient struct {
	storage.Client
	mu       sync.Mutex
	requests map[string]int
}

func (c *countingClient) count(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests[op]++
}

func (c *countingClient) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.requests {
		n += v
	}
	return n
}

func (c *countingClient) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	c.count("list")
	return c.Client.LTXFiles(ctx, level)
}

func (c *countingClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	c.count("open")
	return c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
}

func (c *countingClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	c.count("write")
	return c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, r, createdAt)
}

func (c *countingClient) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	c.count("delete")
	return c.Client.DeleteLTXFiles(ctx, files)
}

func (c *countingClient) ReadRecord(ctx context.Context, name string) ([]byte, string, error) {
	c.count("read-record")
	return c.Client.ReadRecord(ctx, name)
}

func (c *countingClient) WriteRecord(ctx context.Context, name string, data []byte, version string) (string, error) {
	c.count("write-record")
	return c.Client.WriteRecord(ctx, name, data, version)
}

// TestIdleMeansIdle: once a database stops changing and its history has
// settled, hours pass with the schedulers running and the replica receives
// no request at all, and nothing is written locally.
func TestIdleMeansIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		client := &countingClient{Client: file.New(filepath.Join(t.TempDir(), "replica")), requests: map[string]int{}}
		app, _, db, stop := startScheduled(t, Options{}, client)
		r := db.replicas[0]
		for range 60 { // ten minutes of writes
			if _, err := app.Exec("INSERT INTO t (v) VALUES (randomblob(300))"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			r.up.Wake()
			time.Sleep(10 * time.Second)
		}
		time.Sleep(2 * time.Hour) // compactions and level-0 expiry settle
		synctest.Wait()
		before := client.total()
		if client.requests["write"] == 0 || client.requests["delete"] == 0 {
			t.Fatalf("the busy period should have uploaded, compacted and expired files: %v", client.requests)
		}
		staged := stagedNames(t, db)
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		if n := client.total() - before; n != 0 {
			t.Fatalf("an idle database made %d requests to its replica: %v", n, client.requests)
		}
		if after := stagedNames(t, db); after != staged {
			t.Fatalf("an idle database changed its staging directory:\n%s\n->\n%s", staged, after)
		}
		stop()
	})
}

func stagedNames(t *testing.T, db *DB) string {
	var b strings.Builder
	for level := 0; level <= storage.MaxLevel; level++ {
		files, err := db.staging.LTXFiles(context.Background(), level)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			fmt.Fprintf(&b, "%d/%s ", level, ltx.FormatFilename(f.MinTXID, f.MaxTXID))
		}
	}
	return b.String()
}

// TestSnapshotScheduleSurvivesRestarts: a replicator restarted more often
// than the snapshot interval still takes a snapshot every interval, as one
// that never restarts does: the schedule goes by the replica's newest
// snapshot, not by when the process started.
func TestSnapshotScheduleSurvivesRestarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		dir := filepath.Join(t.TempDir(), "replica")
		path := filepath.Join(t.TempDir(), "app.db")
		opts := Options{SnapshotInterval: time.Hour, SnapshotRetention: 24 * time.Hour}
		for range 10 { // 250 minutes, a restart every 25
			app, _, db, stop := startScheduledAt(t, path, opts, NewReplica("dir", file.New(dir)))
			for range 5 {
				time.Sleep(5 * time.Minute)
				if _, err := app.Exec("INSERT INTO t (v) VALUES (randomblob(1000))"); err != nil {
					t.Fatal(err)
				}
				if _, err := db.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				if err := Upload(ctx, db); err != nil {
					t.Fatal(err)
				}
			}
			synctest.Wait()
			stop()
			app.Close()
		}
		snaps, err := file.New(dir).LTXFiles(ctx, storage.SnapshotLevel)
		if err != nil {
			t.Fatal(err)
		}
		// The first sync's, then one an hour: at 60, 120, 180 and 240
		// minutes (each as soon as its process starts when the hour
		// passed while none ran).
		if len(snaps) < 5 {
			t.Fatalf("%d snapshots in 250 minutes with an hourly interval and a restart every 25 minutes; want at least 5: %v", len(snaps), snaps)
		}
	})
}
