package walship_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// restoredHas restores the replica behind c to its newest state and
// reports whether it holds the row of table t whose n is n.
func restoredHas(t *testing.T, c storage.Client, n int) bool {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored.db")
	if _, err := restore.Restore(context.Background(), c, out, restore.Options{}); err != nil {
		t.Fatalf("restore from %s: %v", c, err)
	}
	conn, err := sql.Open("sqlite", "file:"+out+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var count int
	if err := conn.QueryRow("SELECT count(*) FROM t WHERE n = ?", n).Scan(&count); err != nil {
		t.Fatal(err)
	}
	return count == 1
}

// TestSyncWait: the durability barrier. SyncWait captures a commit at once
// (the sync interval is an hour) and returns only when every replica holds
// it, restorable; while a replica is down it times out with a BehindError
// naming that replica, and once the replica is back the wait ends.
func TestSyncWait(t *testing.T) {
	h := newHarness(t)
	b := &switchable{Client: file.New(filepath.Join(t.TempDir(), "b"))}
	db, err := walship.NewDB(h.path, walship.Options{Logger: quietLogger(), SyncInterval: time.Hour, SyncIntervalSet: true},
		walship.NewReplica("a", h.replica), walship.NewReplica("b", b))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SyncWait(h.ctx); !errors.Is(err, walship.ErrNotReplicating) {
		t.Fatalf("SyncWait before Run: %v, want ErrNotReplicating", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.Run(ctx, 5*time.Second) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); db.Phase() != walship.PhaseReplicating; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("phase %v, want replicating", db.Phase())
		}
	}

	for n := 1; n <= 3; n++ {
		h.exec("INSERT INTO t (v, n) VALUES (randomblob(100), ?)", n)
		wctx, wcancel := context.WithTimeout(h.ctx, 30*time.Second)
		pos, err := db.SyncWait(wctx)
		wcancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range db.Replicas() {
			if r.Pos().TXID < pos.TXID {
				t.Fatalf("SyncWait returned %s with replica %s at %s", pos.TXID, r.Name, r.Pos().TXID)
			}
		}
		if !restoredHas(t, h.replica, n) || !restoredHas(t, b.Client, n) {
			t.Fatalf("row %d, waited for, is not in a restore of every replica", n)
		}
	}

	b.down.Store(true)
	h.exec("INSERT INTO t (v, n) VALUES (randomblob(100), 4)")
	wctx, wcancel := context.WithTimeout(h.ctx, 300*time.Millisecond)
	pos, err := db.SyncWait(wctx)
	wcancel()
	var behind *walship.BehindError
	if !errors.As(err, &behind) || !errors.Is(err, context.DeadlineExceeded) || behind.Want != pos.TXID {
		t.Fatalf("SyncWait with replica b down: %v, want a BehindError for the deadline", err)
	}
	// Once replica a holds it and b's upload failed, b alone is behind,
	// and named with its TXID and why.
	for deadline := time.Now().Add(30 * time.Second); db.Replicas()[0].Pos().TXID < pos.TXID || db.Replicas()[1].Err() == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("replica a, which is up, did not receive the last commit, or b's upload did not fail")
		}
	}
	wctx, wcancel = context.WithTimeout(h.ctx, 100*time.Millisecond)
	err = db.WaitReplicated(wctx, pos.TXID)
	wcancel()
	if !errors.As(err, &behind) || len(behind.Behind) != 1 || behind.Behind[0].Name != "b" || behind.Behind[0].TXID >= pos.TXID || behind.Want != pos.TXID {
		t.Fatalf("behind: %v (wanted %s)", err, pos.TXID)
	}
	if msg := err.Error(); !strings.Contains(msg, `replica "b" holds TXID `+behind.Behind[0].TXID.String()+", wanted "+pos.TXID.String()) || !strings.Contains(msg, "destination unreachable") {
		t.Errorf("message %q does not name the replica, its TXID and why", msg)
	}
	if !restoredHas(t, h.replica, 4) {
		t.Error("replica a, which is up, does not hold row 4")
	}

	b.down.Store(false)
	wctx, wcancel = context.WithTimeout(h.ctx, 30*time.Second)
	defer wcancel()
	if err := db.WaitReplicated(wctx, pos.TXID); err != nil {
		t.Fatalf("replica b back: %v", err)
	}
	if !restoredHas(t, b.Client, 4) {
		t.Error("replica b, back, does not hold row 4")
	}
}
