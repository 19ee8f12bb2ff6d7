package walship_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/owner"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
	"github.com/walship/walship/verify"
)

// tryOpen opens h's database with opts and returns the error instead of
// failing the test.
func (h *harness) tryOpen(opts walship.Options, setup ...func(*walship.DB)) error {
	h.t.Helper()
	opts.Logger = quietLogger()
	db, err := walship.NewDB(h.path, opts, walship.NewReplica("dir", h.replica))
	if err != nil {
		return err
	}
	for _, f := range setup {
		f(db)
	}
	if err := db.Open(h.ctx); err != nil {
		return err
	}
	h.db = db
	h.t.Cleanup(func() { db.Close(context.Background()) })
	return nil
}

// replicaListing lists every file of a replica, for before/after checks.
func replicaListing(t *testing.T, c storage.Client) string {
	t.Helper()
	var b strings.Builder
	for level := 0; level <= storage.MaxLevel; level++ {
		files, err := c.LTXFiles(context.Background(), level)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b.WriteString(storage.Describe(level, f.MinTXID, f.MaxTXID) + "\n")
		}
	}
	data, version, err := c.ReadRecord(context.Background(), owner.RecordName)
	if err == nil {
		b.WriteString(version + " " + string(data))
	}
	return b.String()
}

// TestReplicaOfAnotherDatabaseRefused: a database whose replica path
// another database owns (a copy-pasted config) refuses to open, writes
// nothing there, and the owner's history restores exactly.
func TestReplicaOfAnotherDatabaseRefused(t *testing.T) {
	a := newHarness(t)
	a.open(walship.Options{})
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()

	b := newHarness(t)
	b.replica = a.replica
	b.exec("INSERT INTO t (v) VALUES (randomblob(5000))")
	before := replicaListing(t, a.replica)
	err := b.tryOpen(walship.Options{})
	if !errors.Is(err, owner.ErrNotOwner) {
		t.Fatalf("opening a database whose replica another owns: %v; want owner.ErrNotOwner", err)
	}
	for _, want := range []string{a.path, "-takeover"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not name %q: %v", want, err)
		}
	}
	if after := replicaListing(t, a.replica); after != before {
		t.Fatalf("the refused database changed the replica:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	a.verifyAll()
}

// TestOneReplicatorPerDatabase: a second replicator of a database that one
// is replicating refuses to open and names the first; once the first
// closes, it opens.
func TestOneReplicatorPerDatabase(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	first := h.db
	err := h.tryOpen(walship.Options{})
	if err == nil || !strings.Contains(err.Error(), "already being replicated") || !strings.Contains(err.Error(), "process") {
		t.Fatalf("a second replicator of one database: %v", err)
	}
	if err := first.Close(h.ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.tryOpen(walship.Options{}); err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	h.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	h.sync()
	h.verifyAll()
}

// TestOwnerWithoutStagingDirectory: the owner whose staging directory was
// deleted (and with it the database's identity) goes on as before.
func TestOwnerWithoutStagingDirectory(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	h.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	h.sync()
	if err := h.db.Close(h.ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(walship.MetaPath(h.path)); err != nil {
		t.Fatal(err)
	}
	h.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	if err := h.tryOpen(walship.Options{}); err != nil {
		t.Fatalf("the owner without its staging directory: %v", err)
	}
	h.sync()
	h.verifyAll()
}

// TestTakeover: a database that takes a replica over while its old owner
// still runs starts a history apart from the old one; the old owner stops
// writing at its next check; both histories restore exactly.
func TestTakeover(t *testing.T) {
	a := newHarness(t)
	// Level-0 files expire as soon as level 1 covers them: the old owner's
	// retention after the takeover has files to delete, and must not.
	if err := a.tryOpen(walship.Options{L0Retention: time.Nanosecond}, func(db *walship.DB) { db.SetOwnerRecheck(time.Nanosecond) }); err != nil {
		t.Fatal(err)
	}
	a.sync()
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	oldLast := a.sync()
	if _, err := a.db.Compact(a.ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := walship.Upload(a.ctx, a.db); err != nil {
		t.Fatal(err)
	}

	b := newHarness(t)
	b.replica = a.replica
	b.exec("INSERT INTO t (v) VALUES (randomblob(5000))")
	if err := b.tryOpen(walship.Options{Takeover: true}); err != nil {
		t.Fatalf("takeover: %v", err)
	}
	first := b.sync()
	if first < 1<<32 {
		t.Fatalf("the new owner's history starts at TXID %s, not apart from the old one (at %s)", first, oldLast)
	}
	b.exec("INSERT INTO t (v) VALUES (randomblob(5000))")
	b.sync()

	// The old owner's next write: refused, for good.
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	if _, err := a.db.Sync(a.ctx); err != nil {
		t.Fatal(err)
	}
	before := replicaListing(t, a.replica)
	err := walship.Upload(a.ctx, a.db)
	if !errors.Is(err, owner.ErrNotOwner) || !strings.Contains(err.Error(), "taken over") {
		t.Fatalf("the old owner's upload after the takeover: %v; want owner.ErrNotOwner", err)
	}
	if after := replicaListing(t, a.replica); after != before {
		t.Fatalf("the old owner wrote after the takeover:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if err := a.db.EnforceRetention(a.ctx); !errors.Is(err, owner.ErrNotOwner) {
		t.Fatalf("the old owner's retention after the takeover: %v; want owner.ErrNotOwner", err)
	}
	delete(a.images, a.db.Pos().TXID) // never uploaded
	a.verifyAll()
	b.verifyAll()

	// Restarted without -takeover, the new owner goes on in its history.
	if err := b.db.Close(b.ctx); err != nil {
		t.Fatal(err)
	}
	b.exec("INSERT INTO t (v) VALUES (randomblob(5000))")
	if err := b.tryOpen(walship.Options{}); err != nil {
		t.Fatalf("the new owner restarted: %v", err)
	}
	if next := b.sync(); next <= first || next > first+10 {
		t.Fatalf("the restarted owner is at TXID %s; it took over at %s", next, first)
	}
	b.verifyAll()
}

// replicaOfAnother returns a replica that another database owns: it
// replicated one commit there and stopped.
func replicaOfAnother(t *testing.T) *file.Client {
	t.Helper()
	a := newHarness(t)
	a.open(walship.Options{})
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	if err := a.db.Close(a.ctx); err != nil {
		t.Fatal(err)
	}
	return a.replica
}

// TestTakeoverCommitsBeforeFirstUpload: the application commits, and
// level 1 merges, after the takeover and before anything reached the
// replica. The full copy the new history starts with goes to the replica
// as its snapshot, so that every restore point of the new history
// restores, the first ones included.
func TestTakeoverCommitsBeforeFirstUpload(t *testing.T) {
	b := newHarness(t)
	b.replica = replicaOfAnother(t)
	b.exec("INSERT INTO t (v) VALUES (randomblob(5000))")
	if err := b.tryOpen(walship.Options{Takeover: true}); err != nil {
		t.Fatalf("takeover: %v", err)
	}
	for i := range 3 {
		if i > 0 {
			b.exec("INSERT INTO t (v) VALUES (randomblob(5000))")
		}
		pos, err := b.db.Sync(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		img, err := testutil.LogicalImage(b.ctx, b.path)
		if err != nil {
			t.Fatal(err)
		}
		b.images[pos.TXID] = img
	}
	if _, err := b.db.Compact(b.ctx, 1); err != nil {
		t.Fatal(err)
	}
	b.record()
	if len(b.images) != 3 {
		t.Fatalf("%d TXIDs recorded; want 3", len(b.images))
	}
	for txid := range b.images {
		if txid < 1<<32 {
			t.Fatalf("TXID %s: the new owner's history does not start apart from the old one", txid)
		}
	}
	b.verifyAll()
}

// TestTakeoverWaitsForTheReplica: with -takeover, a replica that does not
// answer when walship starts is waited for, not left to a later claim that
// could not take it over (the replica would stop, and the process run on
// without it).
func TestTakeoverWaitsForTheReplica(t *testing.T) {
	owned := replicaOfAnother(t)

	// b's staging directory holds its whole history (it replicated to a
	// replica of its own before), so nothing else would make it wait.
	b := newHarness(t)
	b.open(walship.Options{})
	if err := b.db.Close(b.ctx); err != nil {
		t.Fatal(err)
	}
	b.images = map[ltx.TXID]testutil.Image{}
	b.exec("INSERT INTO t (v) VALUES (randomblob(5000))")
	flaky := &switchable{Client: owned}
	flaky.down.Store(true)
	db, err := walship.NewDB(b.path, walship.Options{Logger: quietLogger(), Takeover: true}, walship.NewReplica("r", flaky))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	done := make(chan error, 1)
	go func() { done <- db.Open(b.ctx) }()
	for flaky.lists.Load() < 3 {
		select {
		case err := <-done:
			t.Fatalf("open returned %v before the replica answered", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	flaky.down.Store(false)
	if err := <-done; err != nil {
		t.Fatalf("open once the replica answered: %v", err)
	}
	b.db, b.replica = db, owned
	if first := b.sync(); first < 1<<32 {
		t.Fatalf("the new owner's history starts at TXID %s, not apart from the old one", first)
	}
	if err := db.Replicas()[0].Err(); err != nil {
		t.Fatalf("the replica taken over: %v", err)
	}
	b.exec("INSERT INTO t (v) VALUES (randomblob(5000))")
	b.sync()
	b.verifyAll()
}

// TestTakeoverStopsBeforeItsSnapshot: the new owner stops after its
// takeover claim, before its first snapshot reached the replica, while the
// old owner still writes. Restarted, it still starts its history apart,
// and the replica stays whole.
func TestTakeoverStopsBeforeItsSnapshot(t *testing.T) {
	a := newHarness(t)
	a.open(walship.Options{})
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()

	b := newHarness(t)
	b.replica = a.replica
	b.exec("INSERT INTO t (v) VALUES (randomblob(5000))")
	if err := b.tryOpen(walship.Options{Takeover: true}); err != nil {
		t.Fatalf("takeover: %v", err)
	}
	if err := b.db.Close(b.ctx); err != nil { // nothing uploaded
		t.Fatal(err)
	}
	if err := b.tryOpen(walship.Options{}); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if got := b.sync(); got < 1<<32 {
		t.Fatalf("restarted after its takeover claim, the new owner is at TXID %s: not apart from the old history", got)
	}
	// The old owner, inside its recheck window, writes once more.
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	if _, err := a.db.Sync(a.ctx); err != nil {
		t.Fatal(err)
	}
	walship.Upload(a.ctx, a.db)
	b.exec("INSERT INTO t (v) VALUES (randomblob(5000))")
	b.sync()
	b.verifyAll()
}

// TestTakeoverBySecondReplica: a database with a replica of its own, and
// staged files not merged yet, takes over a second replica: compaction
// goes on, and both replicas are whole and agree from the takeover on.
func TestTakeoverBySecondReplica(t *testing.T) {
	ctx := context.Background()
	b := newHarness(t) // owns r2
	r2 := file.New(filepath.Join(t.TempDir(), "r2"))
	b.replica = r2
	b.open(walship.Options{})
	b.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	b.sync()
	b.db.Close(ctx)

	a := newHarness(t)
	a.open(walship.Options{})
	for range 5 {
		a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
		a.sync()
	}
	a.db.Close(ctx)

	db, err := walship.NewDB(a.path, walship.Options{Logger: quietLogger(), Takeover: true},
		walship.NewReplica("r1", a.replica), walship.NewReplica("r2", r2))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	for range 3 {
		a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
		if _, err := db.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if err := walship.Upload(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Compact(ctx, 1); err != nil {
		t.Fatalf("level-1 compaction after the takeover: %v", err)
	}
	if err := walship.Upload(ctx, db); err != nil {
		t.Fatal(err)
	}
	var reps []*verify.Report
	for _, c := range []*file.Client{a.replica, r2} {
		rep, err := verify.Replica(ctx, c, verify.Options{})
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rep)
	}
	verify.CompareReplicas(reps...)
	for i, rep := range reps {
		for _, p := range rep.Problems {
			t.Errorf("replica %d: %s %s: %s", i+1, p.Kind, p.Object, p.Message)
		}
	}
}

// TestSamePathOtherDatabaseRefused: another database at the same path on
// the same host (a second environment with the same layout, or the file
// replaced) with a staging directory of its own is not taken for the
// replica's owner: its content is not the replica's newest state. It
// refuses to open and writes nothing there.
func TestSamePathOtherDatabaseRefused(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	h.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	h.sync()
	if err := h.db.Close(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.app.Close()
	for _, p := range []string{h.path, h.path + "-wal", h.path + "-shm", walship.MetaPath(h.path)} {
		os.RemoveAll(p)
	}
	other := newHarnessAt(t, h.path)
	other.replica = h.replica
	other.exec("INSERT INTO t (v) VALUES (randomblob(7000))")
	before := replicaListing(t, h.replica)
	err := other.tryOpen(walship.Options{})
	if !errors.Is(err, owner.ErrUnproven) || !strings.Contains(err.Error(), "-takeover") {
		t.Fatalf("another database at the owner's path: %v; want owner.ErrUnproven", err)
	}
	if after := replicaListing(t, h.replica); after != before {
		t.Fatalf("the refused database changed the replica:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestOwnerRecordDeleted: an owner record deleted while walship writes (a
// lifecycle rule of the store, an operator) is claimed again at the next
// check, and replication goes on.
func TestOwnerRecordDeleted(t *testing.T) {
	h := newHarness(t)
	if err := h.tryOpen(walship.Options{}, func(db *walship.DB) { db.SetOwnerRecheck(time.Nanosecond) }); err != nil {
		t.Fatal(err)
	}
	h.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	h.sync()
	if err := os.Remove(filepath.Join(h.replica.Dir(), owner.RecordName)); err != nil {
		t.Fatal(err)
	}
	h.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	h.sync()
	if _, _, err := h.replica.ReadRecord(h.ctx, owner.RecordName); err != nil {
		t.Fatalf("the owner record was not claimed again: %v", err)
	}
	h.verifyAll()
}

// TestRestoredWhileOriginalRuns: a database restored from its replica
// (restore on first boot, on a new volume) while the one it was restored
// from still runs (a rolling deploy) claims the replica as the same
// database, and both number their commits from the same TXIDs. The
// restored one holds its first write for twice the owner recheck
// interval: the original, checking before its next write, stops; and if
// it wrote within the window anyway, the restored one writes nothing
// rather than mix the two histories. Either way the replica holds one
// chain, exactly one database's.
func TestRestoredWhileOriginalRuns(t *testing.T) {
	for _, stops := range []bool{true, false} {
		name := "original-stops"
		if !stops {
			name = "original-writes-in-the-window"
		}
		t.Run(name, func(t *testing.T) {
			a := newHarness(t)
			recheck := time.Hour // the original trusts its claim all along
			if stops {
				recheck = time.Nanosecond // it reads the record before each write
			}
			if err := a.tryOpen(walship.Options{}, func(db *walship.DB) { db.SetOwnerRecheck(recheck) }); err != nil {
				t.Fatal(err)
			}
			a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
			claimedAt := a.sync()

			path := filepath.Join(t.TempDir(), "volume", "app.db")
			b, err := walship.NewDB(path, walship.Options{Logger: quietLogger()}, walship.NewReplica("dir", a.replica))
			if err != nil {
				t.Fatal(err)
			}
			b.SetOwnerRecheck(100 * time.Millisecond)
			if restored, err := b.RestoreIfMissing(a.ctx); err != nil || !restored {
				t.Fatalf("RestoreIfMissing = %v, %v", restored, err)
			}
			if err := b.Open(a.ctx); err != nil {
				t.Fatal(err)
			}
			defer b.Close(context.Background())

			// The original commits after the claim.
			a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
			if _, err := a.db.Sync(a.ctx); err != nil {
				t.Fatal(err)
			}
			err = walship.Upload(a.ctx, a.db)
			if stops != errors.Is(err, owner.ErrNotOwner) {
				t.Fatalf("the original's upload after the claim: %v; want it refused: %t", err, stops)
			}

			app := openApp(t, path)
			if _, err := app.Exec("INSERT INTO t (v) VALUES (randomblob(2000))"); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Sync(a.ctx); err != nil {
				t.Fatal(err)
			}
			// Held until twice the recheck interval after its claim
			// passed (the test does not time it: the outcome is what
			// matters, and it is the same however long each step took).
			err = walship.Upload(a.ctx, b)
			if stops {
				if err != nil {
					t.Fatalf("the restored database's upload once the original stopped: %v", err)
				}
				checkChain(t, a.ctx, a.replica)
				restoreLatestMatches(t, a.replica, path)
				return
			}
			if !errors.Is(err, owner.ErrNotOwner) || !strings.Contains(err.Error(), "another run of this database") || !strings.Contains(err.Error(), "-takeover") {
				t.Fatalf("the restored database's upload after the original wrote past TXID %s: %v; want it refused, saying why and what to do", claimedAt, err)
			}
			if b.Halted() == nil {
				t.Fatal("the restored database's replica is not reported stopped")
			}
			checkChain(t, a.ctx, a.replica)
			restoreLatestMatches(t, a.replica, a.path)
		})
	}
}
