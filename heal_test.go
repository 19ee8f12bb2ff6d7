package walship_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/verify"
)

// healHarness is a harness with a few TXIDs replicated, its replica
// audited once (so that only what happens next is new to the audit).
func healHarness(t *testing.T) *harness {
	h := newHarness(t)
	h.open(walship.Options{Levels: []time.Duration{}})
	rng := randFor(t)
	for range 4 {
		h.randomWrites(rng, 3)
		h.sync()
	}
	if _, err := h.db.Audit(h.ctx, h.db.Replicas()[0]); err != nil {
		t.Fatal(err)
	}
	return h
}

// writeMore commits and ships n more TXIDs.
func (h *harness) writeMore(n int) {
	rng := randFor(h.t)
	for range n {
		h.randomWrites(rng, 2)
		h.sync()
	}
}

// audit runs the replica's audit, then ships what a repair asked for.
func (h *harness) audit() bool {
	h.t.Helper()
	found, err := h.db.Audit(h.ctx, h.db.Replicas()[0])
	if err != nil {
		h.t.Fatal(err)
	}
	if err := walship.Upload(h.ctx, h.db); err != nil {
		h.t.Fatal(err)
	}
	return found
}

// snapshotNow takes a snapshot, ships it, and returns its path in the
// replica.
func (h *harness) snapshotNow() string {
	h.t.Helper()
	if err := h.db.SnapshotIfChanged(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	if err := walship.Upload(h.ctx, h.db); err != nil {
		h.t.Fatal(err)
	}
	return h.replica.LTXFilePath(storage.SnapshotLevel, 1, h.db.Pos().TXID)
}

// restoresLatest checks that the replica restores its newest TXID, the
// database's, exactly, from sound files only.
func (h *harness) restoresLatest() {
	h.t.Helper()
	latest := h.db.Pos().TXID
	out := filepath.Join(h.t.TempDir(), "latest.db")
	res, err := restore.Restore(h.ctx, h.replica, out, restore.Options{IntegrityCheck: "full"})
	if err != nil {
		h.t.Fatalf("restore of the latest state: %v", err)
	}
	if res.TXID != latest || len(res.Damaged) != 0 {
		h.t.Fatalf("restored TXID %s going around %v; want %s from sound files", res.TXID, res.Damaged, latest)
	}
	restoreTXID(h.t, h.replica, latest, h.images[latest])
	rep, err := verify.Replica(h.ctx, h.replica, verify.Options{})
	if err != nil {
		h.t.Fatal(err)
	}
	if !rep.LatestRestorable {
		h.t.Fatalf("verify: the latest state does not restore: %+v", rep.Problems)
	}
}

// Issue 12: a replica emptied while walship runs (rm -rf, a lifecycle rule)
// is noticed at the next audit and repaired with a snapshot; before, level-0
// files went on landing in it and nothing could be restored.
func TestAuditRepairsEmptiedReplica(t *testing.T) {
	h := healHarness(t)
	if err := os.RemoveAll(h.replica.Dir()); err != nil {
		t.Fatal(err)
	}
	h.writeMore(2)
	if _, err := restore.Restore(h.ctx, h.replica, filepath.Join(t.TempDir(), "r.db"), restore.Options{}); err == nil {
		t.Fatal("the emptied replica restored before its repair: the test proves nothing")
	}
	if !h.audit() {
		t.Fatal("the audit found nothing wrong with an emptied replica")
	}
	h.restoresLatest()
	h.writeMore(2)
	h.restoresLatest()
	if h.audit() {
		t.Fatal("the audit found the repaired replica wrong")
	}
}

// A level-0 file deleted from the middle of the chain (a gap) is a loss the
// audit sees and repairs; restore points before the gap stay.
func TestAuditRepairsGap(t *testing.T) {
	h := healHarness(t)
	h.writeMore(3)
	gone := h.db.Pos().TXID - 1
	if err := os.Remove(h.replica.LTXFilePath(0, gone, gone)); err != nil {
		t.Fatal(err)
	}
	if !h.audit() {
		t.Fatal("the audit missed a deleted file")
	}
	h.restoresLatest()
	restoreTXID(t, h.replica, gone-1, h.images[gone-1])
}

// A snapshot cut short (its size differs from what was written) is seen by
// the audit; the newest snapshot of an idle database is written again.
func TestAuditRepairsTruncatedSnapshot(t *testing.T) {
	h := healHarness(t)
	snap := h.snapshotNow()
	fi, err := os.Stat(snap)
	if err != nil {
		t.Fatal(err)
	}
	h.audit() // the snapshot's upload is new to it
	if err := os.Truncate(snap, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	h.writeMore(1) // an audit lists only after a write
	if !h.audit() {
		t.Fatal("the audit missed a truncated snapshot")
	}
	h.restoresLatest()
}

// An audit of a replica nothing was written to since the last one sends no
// request: it does not even notice the replica emptied.
func TestAuditIdleSendsNothing(t *testing.T) {
	h := healHarness(t)
	if err := os.RemoveAll(h.replica.Dir()); err != nil {
		t.Fatal(err)
	}
	if h.audit() {
		t.Fatal("an audit of an idle replica listed it")
	}
}

// A corrupt newest snapshot of an idle database (same size, one byte
// flipped) is what only reading finds: validation finds it and the
// replica writes the snapshot again, after which restores read no damaged
// file.
func TestValidationRepairsCorruptSnapshot(t *testing.T) {
	h := healHarness(t)
	snap := h.snapshotNow()
	b, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(snap, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := h.db.Replicas()[0]
	rep, err := h.db.Validate(h.ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Whole() || rep.LatestRestorable {
		t.Fatalf("validation of a corrupt newest snapshot: whole %v, latest restorable %v", rep.Whole(), rep.LatestRestorable)
	}
	if err := walship.Upload(h.ctx, h.db); err != nil {
		t.Fatal(err)
	}
	h.restoresLatest()
}

// Issue 12: a restart onto a replica whose files no longer restore its
// newest state (its snapshots deleted while walship was down) repairs it
// at once, from the listing it reads anyway; before, it logged "resuming"
// and nothing could be restored.
func TestRestartRepairsUnrestorableReplica(t *testing.T) {
	h := healHarness(t)
	h.writeMore(2)
	if err := h.db.Close(h.ctx); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{h.replica.LevelDir(storage.SnapshotLevel)} {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(h.replica.LTXFilePath(0, 1, 1)); err != nil {
		t.Fatal(err)
	}
	db, err := walship.NewDB(h.path, walship.Options{Logger: quietLogger(), Levels: []time.Duration{}}, walship.NewReplica("dir", h.replica))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Open(h.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	h.db = db
	if err := walship.Upload(h.ctx, db); err != nil {
		t.Fatal(err)
	}
	h.restoresLatest()
}
