package walship_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/crypt"
	"github.com/walship/walship/verify"
)

// TestKeyRotation follows the README's rotation procedure: walship,
// restarted with a new key and the old one listed, goes on from the
// replica's newest file and writes with the new key; restores need both
// keys until a snapshot written with the new key lets retention delete the
// old key's files; then the new key alone verifies the replica whole and
// restores every point it still offers, exactly.
func TestKeyRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		h := newHarness(t)
		k1, k2 := mustKey(t), mustKey(t)
		opts := walship.Options{Logger: quietLogger(), Levels: []time.Duration{time.Minute}, SnapshotInterval: time.Hour, SnapshotRetention: time.Hour, L0Retention: time.Minute}
		open := func(keys crypt.Keys) {
			t.Helper()
			db, err := walship.NewDB(h.path, opts, walship.NewReplica("dir", crypt.Wrap(h.replica, keys)))
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Open(ctx); err != nil {
				t.Fatal(err)
			}
			h.db = db
		}
		rng := randFor(t)
		open(crypt.Keys{Current: k1})
		for range 5 {
			h.randomWrites(rng, 3)
			h.sync()
			time.Sleep(10 * time.Second)
		}
		rotatedAt := h.db.Pos().TXID
		if err := h.db.Close(ctx); err != nil {
			t.Fatal(err)
		}

		open(crypt.Keys{Current: k2, Old: []crypt.Key{k1}})
		for range 5 {
			h.randomWrites(rng, 3)
			h.sync()
			time.Sleep(10 * time.Second)
		}
		if !slices.ContainsFunc(mustList(t, h.replica, 0), func(f *ltx.FileInfo) bool { return f.MinTXID == rotatedAt+1 }) || len(mustList(t, h.replica, storage.SnapshotLevel)) != 1 {
			t.Fatalf("after the rotation the replica does not go on at %s with a delta", rotatedAt+1)
		}
		both := crypt.Wrap(h.replica, crypt.Keys{Current: k2, Old: []crypt.Key{k1}})
		newOnly := crypt.Wrap(h.replica, crypt.Keys{Current: k2})
		checkRestores(t, h, both)
		if _, err := restore.Restore(ctx, newOnly, filepath.Join(t.TempDir(), "r.db"), restore.Options{}); !errors.Is(err, crypt.ErrWrongKey) {
			t.Fatalf("restore with the new key alone, before retention: %v; want the old key asked for", err)
		}

		// The next snapshot, with the new key.
		time.Sleep(opts.SnapshotRetention + time.Minute)
		h.randomWrites(rng, 3)
		h.sync()
		if _, err := h.db.Compact(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if err := h.db.SnapshotIfChanged(ctx); err != nil {
			t.Fatal(err)
		}
		if err := walship.Upload(ctx, h.db); err != nil {
			t.Fatal(err)
		}
		// Once that snapshot is older than the retention window, no
		// point the window holds needs an older one.
		time.Sleep(opts.SnapshotRetention + time.Minute)
		h.randomWrites(rng, 3)
		h.sync()
		if _, err := h.db.Compact(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if err := walship.Upload(ctx, h.db); err != nil {
			t.Fatal(err)
		}
		if err := h.db.EnforceRetention(ctx); err != nil {
			t.Fatal(err)
		}
		rep, err := verify.Replica(ctx, newOnly, verify.Options{})
		if err != nil || !rep.Whole() {
			t.Fatalf("verify with the new key alone after retention: %v, %+v", err, rep)
		}
		checkRestores(t, h, newOnly)
		if err := h.db.Close(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// checkRestores restores every TXID the replica offers through c and
// compares it with the application's database then.
func checkRestores(t *testing.T, h *harness, c storage.Client) {
	t.Helper()
	ctx := context.Background()
	l, err := restore.List(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	snaps := l.Files(storage.SnapshotLevel)
	if len(snaps) == 0 {
		t.Fatal("the replica holds no snapshot")
	}
	n := 0
	for txid, want := range h.images {
		if txid < snaps[0].MaxTXID {
			continue // before the oldest snapshot
		}
		out := filepath.Join(t.TempDir(), "r.db")
		res, err := restore.Restore(ctx, c, out, restore.Options{Target: restore.Target{TXID: txid}, IntegrityCheck: "none"})
		if err != nil {
			t.Fatalf("restore TXID %s: %v", txid, err)
		}
		if got, err := testutil.FileImage(out, int(res.PageSize)); err != nil || got != want {
			t.Fatalf("restore TXID %s: not the database then (%v)", txid, err)
		}
		n++
	}
	if n < 2 {
		t.Fatalf("only %d restore points checked", n)
	}
}

func mustKey(t *testing.T) crypt.Key {
	t.Helper()
	k, err := crypt.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
