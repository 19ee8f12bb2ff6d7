package walship_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage/file"
)

// switchable is a directory replica that can be made to fail, as a remote
// destination fails (the conformance suite and the backends' own tests use
// real servers; this only stands in for an outage), and that can run a hook
// after each write.
type switchable struct {
	*file.Client
	down    atomic.Bool
	lists   atomic.Int64 // LTXFiles calls that failed while down
	onWrite func(level int, maxTXID ltx.TXID)
}

var errDown = errors.New("destination unreachable")

func (s *switchable) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	if s.down.Load() {
		s.lists.Add(1)
		return nil, errDown
	}
	return s.Client.LTXFiles(ctx, level)
}

func (s *switchable) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, at time.Time) (*ltx.FileInfo, error) {
	if s.down.Load() {
		return nil, errDown
	}
	info, err := s.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, r, at)
	if err == nil && s.onWrite != nil {
		s.onWrite(level, maxTXID)
	}
	return info, err
}

// restoreEach restores every TXID from first to last and checks it against
// the oracle: exact where the oracle has an image, and never a wrong
// database. It returns how many TXIDs could not be restored.
func restoreEach(t *testing.T, c *file.Client, images map[ltx.TXID]testutil.Image, first, last ltx.TXID) (missing int) {
	t.Helper()
	for txid := first; txid <= last; txid++ {
		out := filepath.Join(t.TempDir(), "r.db")
		res, err := restore.Restore(context.Background(), c, out, restore.Options{Target: restore.Target{TXID: txid}})
		if err != nil {
			missing++
			continue
		}
		if want, ok := images[txid]; ok {
			if got, _ := testutil.FileImage(out, int(res.PageSize)); got != want {
				t.Fatalf("TXID %s restored a wrong database without an error", txid)
			}
		}
	}
	return missing
}

// A snapshot staged while the replica was away, then left behind by a
// restart that continues from the replica's older position, must never be
// shipped: its TXID now belongs to other content.
func TestStaleStagedSnapshotAfterRestart(t *testing.T) {
	h := newHarness(t)
	replica := &switchable{Client: h.replica}
	opts := walship.Options{Logger: quietLogger(), MaxLocalBytes: 1, Levels: []time.Duration{time.Hour}}
	openDB := func() *walship.DB {
		db, err := walship.NewDB(h.path, opts, walship.NewReplica("r", replica))
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Open(h.ctx); err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := openDB()
	step := func() {
		h.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
		if _, err := db.Sync(h.ctx); err != nil {
			t.Fatal(err)
		}
		walship.Upload(h.ctx, db) // fails while the replica is down
	}
	step()
	step()
	replica.down.Store(true)
	step()
	step()
	if err := db.SnapshotIfChanged(h.ctx); err != nil {
		t.Fatal(err)
	}
	step()
	db.Close(h.ctx)
	h.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	replica.down.Store(false)
	db = openDB()
	defer db.Close(h.ctx)
	images := map[ltx.TXID]testutil.Image{}
	for range 6 {
		h.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
		if _, err := db.Sync(h.ctx); err != nil {
			t.Fatal(err)
		}
		img, err := testutil.LogicalImage(h.ctx, h.path)
		if err != nil {
			t.Fatal(err)
		}
		images[db.Pos().TXID] = img
		if err := walship.Upload(h.ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	restoreEach(t, h.replica, images, 1, db.Pos().TXID)
	restoreLatestMatches(t, h.replica, h.path)
}

// Compaction (which holds the compaction lock) and syncs that check the
// staging cap (which hold the engine lock) run at once without deadlock.
func TestCompactionBesideCappedSyncs(t *testing.T) {
	h := newHarness(t)
	replica := &switchable{Client: h.replica}
	db, err := walship.NewDB(h.path, walship.Options{Logger: quietLogger(), MaxLocalBytes: 1, Levels: []time.Duration{time.Hour}}, walship.NewReplica("r", replica))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Open(h.ctx); err != nil {
		t.Fatal(err)
	}
	// No deferred Close: after a deadlock it would block the test forever.
	replica.down.Store(true)
	walship.Upload(h.ctx, db) // the replica is failing: syncs check the cap
	stop := make(chan struct{})
	compacting := make(chan struct{})
	go func() {
		defer close(compacting)
		for {
			select {
			case <-stop:
				return
			default:
				db.Compact(h.ctx, 1)
			}
		}
	}()
	done := make(chan error, 1)
	go func() {
		for range 300 {
			h.exec("INSERT INTO t (v) VALUES (randomblob(20000))")
			if _, err := db.Sync(h.ctx); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("syncs stopped: compaction and the staging cap deadlocked")
	}
	close(stop)
	<-compacting
	if err := db.Close(h.ctx); err != nil {
		t.Fatal(err)
	}
}

// With one replica down and the database larger than max-local-bytes, the
// healthy replica still receives every restore point.
func TestFailingReplicaDoesNotStarveHealthyOne(t *testing.T) {
	h := newHarness(t)
	for range 50 {
		h.exec("INSERT INTO t (v) VALUES (randomblob(4000))")
	}
	healthy := file.New(filepath.Join(t.TempDir(), "a"))
	failing := &switchable{Client: file.New(filepath.Join(t.TempDir(), "b"))}
	db, err := walship.NewDB(h.path, walship.Options{Logger: quietLogger(), MaxLocalBytes: 100 << 10, Levels: []time.Duration{time.Hour}},
		walship.NewReplica("a", healthy), walship.NewReplica("b", failing))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Open(h.ctx); err != nil {
		t.Fatal(err)
	}
	defer db.Close(h.ctx)
	walship.Upload(h.ctx, db)
	failing.down.Store(true)
	images := map[ltx.TXID]testutil.Image{}
	first := db.Pos().TXID
	for i := range 40 {
		h.exec("UPDATE t SET v = randomblob(4000) WHERE id = ?", i%50+1)
		if _, err := db.Sync(h.ctx); err != nil {
			t.Fatal(err)
		}
		img, _ := testutil.LogicalImage(h.ctx, h.path)
		images[db.Pos().TXID] = img
		walship.Upload(h.ctx, db) // b fails
		if err := db.Replicas()[0].Err(); err != nil {
			t.Fatalf("the healthy replica failed: %v", err)
		}
	}
	if missing := restoreEach(t, healthy, images, first, db.Pos().TXID); missing > 0 {
		t.Fatalf("the healthy replica lacks %d restore points", missing)
	}
	staged := file.New(walship.MetaPath(h.path))
	var total int64
	for level := 0; level <= 9; level++ {
		for _, f := range mustList(t, staged, level) {
			total += f.Size
		}
	}
	if snapshot := int64(60 << 10); total > 100<<10+snapshot {
		t.Fatalf("staging holds %d bytes with a cap of %d", total, 100<<10)
	}
}

// A compaction while the uploader ships level 0 must not give the replica a
// compacted file beyond its level-0 chain, nor skip level-0 files.
func TestLevelFileNotShippedPastLevel0(t *testing.T) {
	h := newHarness(t)
	replica := &switchable{Client: h.replica}
	db, err := walship.NewDB(h.path, walship.Options{Logger: quietLogger(), Levels: []time.Duration{time.Hour}}, walship.NewReplica("r", replica))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Open(h.ctx); err != nil {
		t.Fatal(err)
	}
	defer db.Close(h.ctx)
	images := map[ltx.TXID]testutil.Image{}
	if img, err := testutil.LogicalImage(h.ctx, h.path); err != nil {
		t.Fatal(err)
	} else {
		images[db.Pos().TXID] = img
	}
	step := func() {
		h.exec("INSERT INTO t (v) VALUES (randomblob(100))")
		if _, err := db.Sync(h.ctx); err != nil {
			t.Fatal(err)
		}
		img, _ := testutil.LogicalImage(h.ctx, h.path)
		images[db.Pos().TXID] = img
	}
	for range 3 {
		step()
	}
	fired := false
	replica.onWrite = func(level int, maxTXID ltx.TXID) {
		// The first level-0 upload after the snapshot: TXIDs 2 and 3,
		// merged into one file since the replica is behind by two.
		if level == 0 && maxTXID >= 2 && !fired {
			fired = true
			step() // meanwhile: syncs and a compaction
			step()
			if _, err := db.Compact(h.ctx, 1); err != nil {
				t.Error(err)
			}
		}
	}
	if err := walship.Upload(h.ctx, db); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		step()
		if err := walship.Upload(h.ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	if !fired {
		t.Fatal("the hook never ran")
	}
	// Level 0 is one chain up to the newest TXID, and each of its restore
	// points restores exactly.
	points := checkChain(t, h.ctx, h.replica)
	if last := points[len(points)-1]; last != db.Pos().TXID {
		t.Fatalf("level 0 of the replica ends at TXID %s; the database is at %s", last, db.Pos().TXID)
	}
	for _, p := range points {
		restoreTXID(t, h.replica, p, images[p])
	}
}

// After the database is replaced by one with another page size (while
// walship is stopped), compaction goes on, merging up to the change, and
// staging is pruned.
func TestPageSizeChangeKeepsCompacting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	makeDB(t, path, 4096, "old")
	replica := file.New(filepath.Join(dir, "replica"))
	var db *walship.DB
	open := func() {
		var err error
		db, err = walship.NewDB(path, walship.Options{Logger: quietLogger(), Levels: []time.Duration{time.Hour}}, walship.NewReplica("r", replica))
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Open(ctx); err != nil {
			t.Fatal(err)
		}
	}
	write := func() {
		app := openApp(t, path)
		if _, err := app.Exec("INSERT INTO a VALUES ('x')"); err != nil {
			t.Fatal(err)
		}
		app.Close()
		if _, err := db.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if err := walship.Upload(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	open()
	write()
	write()
	db.Close(ctx)
	os.Remove(path + "-wal")
	os.Remove(path + "-shm")
	other := filepath.Join(dir, "other.db")
	makeDB(t, other, 8192, "new")
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	open()
	defer db.Close(ctx)
	write()
	for range 3 {
		if _, err := db.Compact(ctx, 1); err != nil {
			t.Fatalf("compaction after a page size change: %v", err)
		}
		write()
	}
	if _, err := db.Compact(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := walship.Upload(ctx, db); err != nil {
		t.Fatal(err)
	}
	staged := file.New(walship.MetaPath(path))
	if n := len(mustList(t, staged, 0)); n > 1 {
		t.Fatalf("%d level-0 files stay staged after compaction and upload", n)
	}
	restoreLatestMatches(t, replica, path)
}

// A replica that is down when walship starts holds back neither the others nor
// the database while the local staging directory holds the whole history; it
// catches up once it answers. Without that history (the staging directory is
// gone), walship must wait for it: only it can say which TXIDs it holds.
func TestUnreachableReplicaAtStartup(t *testing.T) {
	h := newHarness(t)
	healthy := file.New(filepath.Join(t.TempDir(), "a"))
	flaky := &switchable{Client: file.New(filepath.Join(t.TempDir(), "b"))}
	open := func(ctx context.Context) (*walship.DB, error) {
		db, err := walship.NewDB(h.path, walship.Options{Logger: quietLogger()},
			walship.NewReplica("a", healthy), walship.NewReplica("b", flaky))
		if err != nil {
			t.Fatal(err)
		}
		return db, db.Open(ctx)
	}
	sync := func(db *walship.DB) {
		t.Helper()
		h.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
		if _, err := db.Sync(h.ctx); err != nil {
			t.Fatal(err)
		}
	}

	db, err := open(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		sync(db)
	}
	if err := walship.Upload(h.ctx, db); err != nil {
		t.Fatal(err)
	}
	db.Close(h.ctx)

	// b is down; staging holds the whole history: walship starts at once.
	flaky.down.Store(true)
	db, err = open(h.ctx)
	if err != nil {
		t.Fatalf("open with one replica down: %v", err)
	}
	for range 5 {
		sync(db)
	}
	walship.Upload(h.ctx, db) // b fails
	a, b := db.Replicas()[0], db.Replicas()[1]
	if a.Err() != nil || a.Pos() != db.Pos() {
		t.Fatalf("the healthy replica is at %s (error %v); the database at %s", a.Pos().TXID, a.Err(), db.Pos().TXID)
	}
	if b.Err() == nil || b.Known() {
		t.Fatalf("the replica that is down reports no error (known %v)", b.Known())
	}
	flaky.down.Store(false)
	if err := walship.Upload(h.ctx, db); err != nil {
		t.Fatalf("catch up: %v", err)
	}
	if b.Pos() != db.Pos() {
		t.Fatalf("after it came back, b is at %s; the database at %s", b.Pos().TXID, db.Pos().TXID)
	}
	want, err := testutil.LogicalImage(h.ctx, h.path)
	if err != nil {
		t.Fatal(err)
	}
	points := checkChain(t, h.ctx, flaky)
	last := points[len(points)-1]
	restoreTXID(t, flaky.Client, last, want)
	db.Close(h.ctx)

	// The staging directory is lost and b is down: walship waits for b.
	if err := os.RemoveAll(walship.MetaPath(h.path)); err != nil {
		t.Fatal(err)
	}
	flaky.down.Store(true)
	flaky.lists.Store(0)
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() {
		db, err := open(ctx)
		if err == nil {
			db.Close(h.ctx)
		}
		done <- err
	}()
	for flaky.lists.Load() < 3 {
		select {
		case err := <-done:
			t.Fatalf("open returned %v without b's position", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("open while waiting for b: %v; want it to wait until cancelled", err)
	}
	flaky.down.Store(false)
	db, err = open(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(h.ctx)
	if db.Pos().TXID < last {
		t.Fatalf("reopened at TXID %s, behind the replicas' %s", db.Pos().TXID, last)
	}
	sync(db)
	if err := walship.Upload(h.ctx, db); err != nil {
		t.Fatal(err)
	}
	checkChain(t, h.ctx, healthy)
	checkChain(t, h.ctx, flaky)
}

// Two replicas of one name would share their log lines, metrics and
// verification schedule: NewDB refuses them, and two unnamed replicas of
// one type are two of one name (the config numbers them instead:
// config.DB.ReplicaNames).
func TestReplicaNamesDistinct(t *testing.T) {
	dir := t.TempDir()
	a, b := file.New(filepath.Join(dir, "a")), file.New(filepath.Join(dir, "b"))
	for _, reps := range [][]*walship.Replica{
		{walship.NewReplica("", a), walship.NewReplica("", b)},
		{walship.NewReplica("r", a), walship.NewReplica("r", b)},
	} {
		_, err := walship.NewDB(filepath.Join(dir, "app.db"), walship.Options{Logger: quietLogger()}, reps...)
		if err == nil || !strings.Contains(err.Error(), "two replicas are named") {
			t.Errorf("NewDB(%s, %s): %v, want a refusal", reps[0].Name, reps[1].Name, err)
		}
	}
	db, err := walship.NewDB(filepath.Join(dir, "app.db"), walship.Options{Logger: quietLogger()}, walship.NewReplica("", a), walship.NewReplica("file#2", b))
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{db.Replicas()[0].Name, db.Replicas()[1].Name}; got[0] != "file" || got[1] != "file#2" {
		t.Errorf("replica names %q", got)
	}
}
