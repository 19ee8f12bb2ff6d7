package walship_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
)

// TestRetentionProperty runs random write bursts and pauses under random
// retention settings, with compaction, snapshots and retention driven on the
// synctest clock. After every retention pass, every restore point the replica
// still offers — each file's TXID and each file's timestamp — restores to
// exactly the database the application had then, and every TXID written
// inside both the level-0 and the retention window still restores exactly: no
// pass deleted a file a retained point needs.
func TestRetentionProperty(t *testing.T) {
	for trial := range 4 {
		t.Run(fmt.Sprint(trial), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { retentionTrial(t, uint64(trial)) })
		})
	}
}

func retentionTrial(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed*7919+1, 42))
	pick := func(ds ...time.Duration) time.Duration { return ds[rng.IntN(len(ds))] }
	var levels []time.Duration
	for _, iv := range []time.Duration{10 * time.Second, 40 * time.Second, 3 * time.Minute} {
		if len(levels) == 0 || rng.IntN(3) > 0 {
			levels = append(levels, iv)
		}
	}
	opts := walship.Options{
		Levels:            levels,
		SnapshotInterval:  pick(time.Minute, 4*time.Minute, 10*time.Minute),
		SnapshotRetention: pick(2*time.Minute, 8*time.Minute, 20*time.Minute),
		L0Retention:       pick(10*time.Second, 45*time.Second, 3*time.Minute),
	}
	t.Logf("levels %v, snapshots every %s kept %s, level 0 kept %s", levels, opts.SnapshotInterval, opts.SnapshotRetention, opts.L0Retention)

	h := newHarness(t)
	h.open(opts)
	times := map[ltx.TXID]time.Time{}
	last := map[string]time.Time{}
	due := func(name string, every time.Duration) bool {
		if time.Since(last[name]) < every {
			return false
		}
		last[name] = time.Now()
		return true
	}
	for step := range 60 {
		// A burst, or a pause with nothing written.
		for range rng.IntN(4) {
			h.randomWrites(rng, 1+rng.IntN(3))
			if txid := h.sync(); times[txid].IsZero() {
				times[txid] = time.Now()
			}
			time.Sleep(time.Duration(1+rng.IntN(3000)) * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(90)) * time.Second)

		for i, iv := range levels {
			if due(fmt.Sprint("level", i+1), iv) {
				if _, err := h.db.Compact(h.ctx, i+1); err != nil {
					t.Fatal(err)
				}
			}
		}
		if due("snapshot", opts.SnapshotInterval) {
			if err := h.db.SnapshotIfChanged(h.ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := walship.Upload(h.ctx, h.db); err != nil {
			t.Fatal(err)
		}
		if err := h.db.EnforceRetention(h.ctx); err != nil {
			t.Fatal(err)
		}
		checkRetainedPoints(t, h, times, min(opts.L0Retention, opts.SnapshotRetention), step)
	}
	// The passes did delete: the test is about retention that works, not
	// retention that keeps everything.
	if n := len(mustList(t, h.replica, 0)); n >= len(times) {
		t.Fatalf("the replica still holds %d level-0 files for %d TXIDs", n, len(times))
	}
	old := 0
	for _, s := range mustList(t, h.replica, storage.SnapshotLevel) {
		if s.CreatedAt.Before(time.Now().Add(-opts.SnapshotRetention)) {
			old++
		}
	}
	if old > 1 {
		t.Fatalf("%d snapshots older than the retention window remain; only the base of the window should", old)
	}
}

// checkRetainedPoints restores every point the replica offers and compares it
// with the oracle's image.
func checkRetainedPoints(t *testing.T, h *harness, times map[ltx.TXID]time.Time, window time.Duration, step int) {
	t.Helper()
	ctx := context.Background()
	restoreTo := func(target restore.Target) (ltx.TXID, testutil.Image) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "r.db")
		res, err := restore.Restore(ctx, h.replica, out, restore.Options{Target: target, IntegrityCheck: "none"})
		if err != nil {
			t.Fatalf("step %d: restore %s: %v", step, target, err)
		}
		img, err := testutil.FileImage(out, int(res.PageSize))
		if err != nil {
			t.Fatal(err)
		}
		return res.TXID, img
	}
	var snapBase ltx.TXID
	if snaps := mustList(t, h.replica, storage.SnapshotLevel); len(snaps) > 0 {
		snapBase = snaps[0].MaxTXID
	}
	checked := map[ltx.TXID]bool{}
	for level := 0; level <= storage.MaxLevel; level++ {
		for _, f := range mustList(t, h.replica, level) {
			if f.MaxTXID < snapBase {
				continue // kept only as the newest file of its level
			}
			if !checked[f.MaxTXID] {
				checked[f.MaxTXID] = true
				if _, img := restoreTo(restore.Target{TXID: f.MaxTXID}); img != h.images[f.MaxTXID] {
					t.Fatalf("step %d: TXID %s (level %d) restored a different database", step, f.MaxTXID, level)
				}
			}
			txid, img := restoreTo(restore.Target{Timestamp: f.CreatedAt})
			if txid < f.MaxTXID || img != h.images[txid] {
				t.Fatalf("step %d: time of %s restored TXID %s, not the state then", step, storage.Describe(level, f.MinTXID, f.MaxTXID), txid)
			}
		}
	}
	// Every TXID inside the level-0 window (and the retention window) is
	// still a restore point.
	for txid, at := range times {
		if time.Since(at) < window && !checked[txid] {
			if got, img := restoreTo(restore.Target{TXID: txid}); got != txid || img != h.images[txid] {
				t.Fatalf("step %d: TXID %s, written %s ago inside the level-0 window, no longer restores exactly", step, txid, time.Since(at))
			}
		}
	}
}
