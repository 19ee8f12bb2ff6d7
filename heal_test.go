package walship_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
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

// reopen opens the database again (after h.db.Close), without compaction,
// replicating to client, and makes it h.db.
func (h *harness) reopen(client storage.Client) *walship.DB {
	h.t.Helper()
	db, err := walship.NewDB(h.path, walship.Options{Logger: quietLogger(), Levels: []time.Duration{}}, walship.NewReplica("dir", client))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := db.Open(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { db.Close(context.Background()) })
	h.db = db
	return db
}

// flipByte flips a bit of the byte in the middle of the file at path: the
// file keeps its size, and its checksum no longer matches.
func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
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
	flipByte(t, snap)
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
	// The first snapshot is the only file that holds TXID 1.
	if err := os.RemoveAll(h.replica.LevelDir(storage.SnapshotLevel)); err != nil {
		t.Fatal(err)
	}
	db := h.reopen(h.replica)
	if err := walship.Upload(h.ctx, db); err != nil {
		t.Fatal(err)
	}
	h.restoresLatest()
}

// gate holds writes to the snapshot level while on, to stop a repair in
// the middle of its upload.
type gate struct {
	storage.Client
	on      atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gate) WriteLTXFile(ctx context.Context, level int, min, max ltx.TXID, r io.Reader, at time.Time) (*ltx.FileInfo, error) {
	if level == storage.SnapshotLevel && g.on.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Client.WriteLTXFile(ctx, level, min, max, r, at)
}

// A loss found while a repair's snapshot is being uploaded is repaired
// too: it was dropped with the first repair, and the engine believed the
// replica whole while its latest state did not restore.
func TestRepairDuringRepairUpload(t *testing.T) {
	h := newHarness(t)
	g := &gate{Client: h.replica, entered: make(chan struct{}), release: make(chan struct{})}
	db := h.reopen(g)
	h.writeMore(4)
	r := db.Replicas()[0]
	if _, err := db.Audit(h.ctx, r); err != nil {
		t.Fatal(err)
	}
	h.writeMore(1)
	p := db.Pos().TXID
	if err := db.SnapshotIfChanged(h.ctx); err != nil { // staged, not uploaded
		t.Fatal(err)
	}
	if err := os.Remove(h.replica.LTXFilePath(0, p, p)); err != nil {
		t.Fatal(err)
	}
	if found, err := db.Audit(h.ctx, r); err != nil || !found {
		t.Fatalf("the first audit: found %v, %v", found, err)
	}
	rng := randFor(t)
	for range 2 {
		h.randomWrites(rng, 2)
		if _, err := db.Sync(h.ctx); err != nil {
			t.Fatal(err)
		}
	}
	g.on.Store(true)
	done := make(chan error, 1)
	go func() { done <- walship.Upload(h.ctx, db) }()
	<-g.entered // the repair uploads its snapshot of p; the replica holds p+2
	g.on.Store(false)
	last := p + 2
	if err := os.Remove(h.replica.LTXFilePath(0, last, last)); err != nil {
		t.Fatal(err)
	}
	if found, err := db.Audit(h.ctx, r); err != nil || !found {
		t.Fatalf("the audit during the repair: found %v, %v", found, err)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h.record()
	h.restoresLatest()
}

// A damaged staged file inside a backlog the upload merges: what chains
// before it ships verified, and the replica goes past it with a snapshot;
// the damaged file itself never reaches the replica.
func TestDamagedStagedFileNeverShipped(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{Levels: []time.Duration{}})
	h.writeMore(3)
	rng := randFor(t)
	var backlog []ltx.TXID
	for range 5 {
		h.randomWrites(rng, 3)
		pos, err := h.db.Sync(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		backlog = append(backlog, pos.TXID)
	}
	victim := backlog[2]
	staged := file.New(walship.MetaPath(h.path))
	p := staged.LTXFilePath(0, victim, victim)
	flipByte(t, p)
	if err := walship.Upload(h.ctx, h.db); err != nil {
		t.Fatal(err)
	}
	for _, f := range mustList(t, h.replica, 0) {
		if f.MinTXID <= victim && victim <= f.MaxTXID {
			t.Fatalf("the replica holds %s, made of the damaged staged file", ltx.FormatFilename(f.MinTXID, f.MaxTXID))
		}
	}
	h.record()
	h.restoresLatest()
}

// One break in the staged history costs one snapshot, not one per level
// it reaches as the levels merge it.
func TestBreakCostsOneSnapshot(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{Levels: []time.Duration{time.Hour, time.Hour, time.Hour}})
	h.writeMore(6)
	staged := file.New(walship.MetaPath(h.path))
	p := staged.LTXFilePath(0, 3, 3)
	flipByte(t, p)
	before := len(mustList(t, h.replica, storage.SnapshotLevel))
	for level := 1; level <= 3; level++ {
		for l := 1; l <= level; l++ {
			if _, err := h.db.Compact(h.ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		h.writeMore(3)
	}
	if got := len(mustList(t, h.replica, storage.SnapshotLevel)); got != before+1 {
		t.Fatalf("the replica holds %d snapshots after one break merged through three levels; want %d", got, before+1)
	}
	h.restoresLatest()
}

// The newest file of the replica cut short while walship was down: walship
// cannot tell where the history ends. It writes nothing to that replica,
// and its error names the file and the way out, instead of a checksum's
// format (or, worse, taking the page bytes where the trailer was for the
// replica's state).
func TestRestartOnTruncatedNewest(t *testing.T) {
	h := healHarness(t)
	h.writeMore(2)
	p := h.db.Pos().TXID
	if err := h.db.Close(h.ctx); err != nil {
		t.Fatal(err)
	}
	path := h.replica.LTXFilePath(0, p, p)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	db := h.reopen(h.replica)
	h.randomWrites(randFor(t), 2)
	if _, err := db.Sync(h.ctx); err != nil {
		t.Fatal(err)
	}
	err = walship.Upload(h.ctx, db)
	if err == nil {
		t.Fatal("walship uploaded to a replica whose newest file is cut short")
	}
	for _, want := range []string{ltx.FormatFilename(p, p), "is damaged", "walship verify"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if files := mustList(t, h.replica, 0); files[len(files)-1].MaxTXID != p {
		t.Errorf("walship wrote to the replica after %s", ltx.FormatFilename(p, p))
	}
}
