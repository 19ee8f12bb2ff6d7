package walship_test

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/restore"
)

// waitStandbyTXID waits until the standby b's copy holds txid.
func waitStandbyTXID(t *testing.T, b *walship.DB, res <-chan standbyResult, txid ltx.TXID) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := b.Status(context.Background(), time.Now())
		if st.Lease != nil && st.Lease.Standby != nil && st.Lease.Standby.TXID == txid && st.Error == "" {
			return
		}
		select {
		case r := <-res:
			t.Fatalf("the standby returned: %+v, %v", r.p, r.err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby's copy did not reach TXID %s: %+v, lease %+v", txid, st, st.Lease)
		}
	}
}

// awaitPromotion waits for the standby to promote, once the primary's
// lease expired, and checks that the promoted database is the
// replica's newest state byte for byte and row for row.
func awaitPromotion(t *testing.T, a *harness, res <-chan standbyResult, bPath string, last ltx.TXID) {
	t.Helper()
	var r standbyResult
	select {
	case r = <-res:
	case <-time.After(30 * time.Second):
		t.Fatal("the standby did not promote")
	}
	if r.err != nil {
		t.Fatalf("standby: %v", r.err)
	}
	if r.p.TXID != last {
		t.Fatalf("promotion %+v; want TXID %s", r.p, last)
	}
	out := filepath.Join(t.TempDir(), "restored.db")
	if _, err := restore.Restore(a.ctx, a.replica, out, restore.Options{IntegrityCheck: "full"}); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(bPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the promoted database (%d bytes) is not the replica's state of TXID %s (%d bytes) byte for byte", len(got), last, len(want))
	}
	if tableRows(t, bPath) != tableRows(t, a.path) {
		t.Fatal("the promoted database's rows are not the primary's")
	}
}

// changePageSize moves the harness's database to pages of size bytes, as
// an application does it, while walship is stopped (a database in WAL
// mode changes its page size only out of it), and reopens walship with
// opts: it ships a full copy at the new size, then a snapshot.
func (h *harness) changePageSize(size int, opts walship.Options) ltx.TXID {
	h.t.Helper()
	if err := h.db.Close(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	h.app.Close()
	d, err := sql.Open("sqlite", "file:"+h.path)
	if err != nil {
		h.t.Fatal(err)
	}
	d.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA journal_mode=DELETE", "PRAGMA page_size=" + strconv.Itoa(size), "VACUUM", "PRAGMA journal_mode=WAL"} {
		if _, err := d.Exec(q); err != nil {
			h.t.Fatalf("%s: %v", q, err)
		}
	}
	d.Close()
	h.app = openApp(h.t, h.path)
	h.open(opts)
	return h.db.Pos().TXID
}

// TestStandbyFollowsPageSizeChange: the primary's database moves to
// another page size; the standby changes its copy's page size and goes
// on following (before, its follower failed at every look, and the
// standby, once it took the lease, waited for its copy for ever), and
// promotes to the replica's state byte for byte.
func TestStandbyFollowsPageSizeChange(t *testing.T) {
	ttl := 3 * time.Second
	a := newHarness(t)
	// Without a lease at first: its stop to change the page size must not
	// hand the role over.
	a.open(walship.Options{})
	for range 3 {
		a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
		a.sync()
	}
	bPath := filepath.Join(t.TempDir(), "standby.db")
	b, res := startStandby(t, a, bPath, ttl)
	waitStandbyTXID(t, b, res, a.db.Pos().TXID)

	a.changePageSize(8192, walship.Options{LeaseTTL: ttl})
	a.exec("INSERT INTO t (v) VALUES (randomblob(5000))")
	last := a.sync()
	waitStandbyTXID(t, b, res, last)
	// The primary stops: its lease expires, and the standby promotes.
	if err := a.db.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	awaitPromotion(t, a, res, bPath, last)
}

// TestStandbyWaitsForRepair: a file the standby needs next is damaged (cut
// short) in the replica; the standby applies nothing of it and keeps
// standing by, and once the primary's audit has uploaded a repair
// snapshot it follows on from it and promotes to the replica's state
// byte for byte.
func TestStandbyWaitsForRepair(t *testing.T) {
	ttl := 3 * time.Second
	a := auditedPrimary(t, ttl)
	bPath := filepath.Join(t.TempDir(), "standby.db")
	b, res, stop := runStandby(t, a, bPath, ttl)
	before := a.db.Pos().TXID
	waitStandbyTXID(t, b, res, before)
	// Stopped, so that it never reads the next file whole.
	stop()

	a.exec("INSERT INTO t (v) VALUES (randomblob(20000))")
	bad := a.sync()
	name := a.replica.LTXFilePath(0, bad, bad)
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(name, fi.Size()*2/3); err != nil {
		t.Fatal(err)
	}
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()

	// The standby, started again, cannot go past the file, says so, and
	// stands by.
	b, res, stop = runStandby(t, a, bPath, ttl)
	waitStandbyFailing(t, b, res, before)
	// The primary's audit sees the file cut short and uploads a snapshot.
	healReplica(t, a)
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	last := a.sync()
	waitStandbyTXID(t, b, res, last)

	// The file of the copy's own TXID is cut short while the standby is
	// stopped, and the primary stays idle: started again, the standby
	// cannot prove its copy against the replica; once the repair snapshot
	// of that same TXID is there, it proves it against that.
	stop()
	name = a.replica.LTXFilePath(0, last, last)
	if fi, err = os.Stat(name); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(name, fi.Size()*2/3); err != nil {
		t.Fatal(err)
	}
	b, res, _ = runStandby(t, a, bPath, ttl)
	waitStandbyFailing(t, b, res, last)
	healReplica(t, a)
	waitStandbyTXID(t, b, res, last)

	if err := a.db.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	awaitPromotion(t, a, res, bPath, last)
}

// waitStandbyFailing waits until the standby b reports that its copy,
// at TXID txid, cannot be brought up to the replica.
func waitStandbyFailing(t *testing.T, b *walship.DB, res <-chan standbyResult, txid ltx.TXID) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for st := b.Status(context.Background(), time.Now()); st.Error == ""; st = b.Status(context.Background(), time.Now()) {
		select {
		case r := <-res:
			t.Fatalf("the standby returned: %+v, %v", r.p, r.err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby did not report the file it cannot apply: %+v", st)
		}
	}
	if txid == 0 {
		return // no copy yet
	}
	if st := b.Status(context.Background(), time.Now()); st.Lease == nil || st.Lease.Standby == nil || st.Lease.Standby.TXID != txid {
		t.Fatalf("the standby's status %+v; want its copy at TXID %s, before the damaged file", st.Lease, txid)
	}
}

// healReplica runs the primary's audit, which must find the replica
// damaged, and uploads the repair snapshot it asks for.
func healReplica(t *testing.T, a *harness) {
	t.Helper()
	if found, err := a.db.Audit(a.ctx, a.db.Replicas()[0]); err != nil || !found {
		t.Fatalf("the audit found nothing wrong (%v): the test proves nothing", err)
	}
	if err := walship.Upload(a.ctx, a.db); err != nil {
		t.Fatal(err)
	}
}

// TestStandbyRetriesFirstRestore: a standby started while the replica's
// newest state does not restore (its last file cut short, no other way
// to it) says so and waits, rather than stop for good (before, Standby
// returned the restore's error); once the primary repairs its replica, it
// restores, follows and promotes to the replica's state byte for byte.
func TestStandbyRetriesFirstRestore(t *testing.T) {
	ttl := 3 * time.Second
	a := newHarness(t)
	a.open(walship.Options{LeaseTTL: ttl, Levels: []time.Duration{}})
	if _, err := a.db.Audit(a.ctx, a.db.Replicas()[0]); err != nil {
		t.Fatal(err)
	}
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	a.exec("INSERT INTO t (v) VALUES (randomblob(20000))")
	last := a.sync()
	name := a.replica.LTXFilePath(0, last, last)
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(name, fi.Size()*2/3); err != nil {
		t.Fatal(err)
	}
	bPath := filepath.Join(t.TempDir(), "standby.db")
	b, res, _ := runStandby(t, a, bPath, ttl)
	waitStandbyFailing(t, b, res, 0)
	healReplica(t, a)
	waitStandbyTXID(t, b, res, last)
	if err := a.db.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	awaitPromotion(t, a, res, bPath, last)
}

// auditedPrimary opens a primary with a lease of ttl and no compaction
// levels, commits one row, syncs, and audits its replica once, so that
// its next audit finds what a test damages and repairs it.
func auditedPrimary(t *testing.T, ttl time.Duration) *harness {
	t.Helper()
	a := newHarness(t)
	a.open(walship.Options{LeaseTTL: ttl, Levels: []time.Duration{}})
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	if _, err := a.db.Audit(a.ctx, a.db.Replicas()[0]); err != nil {
		t.Fatal(err)
	}
	return a
}

// runStandby is startStandby, with a function that stops the standby
// (and checks that it returned for that reason).
func runStandby(t *testing.T, h *harness, path string, ttl time.Duration) (*walship.DB, <-chan standbyResult, func()) {
	t.Helper()
	db, err := walship.NewDB(path, walship.Options{LeaseTTL: ttl, Logger: quietLogger()}, walship.NewReplica("dir", h.replica))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	res := make(chan standbyResult, 1)
	go func() {
		p, err := db.Standby(ctx, walship.StandbyOptions{Interval: 50 * time.Millisecond})
		res <- standbyResult{p, err}
	}()
	stop := func() {
		t.Helper()
		cancel()
		if r := <-res; r.err != context.Canceled {
			t.Fatalf("the stopped standby returned %+v, %v", r.p, r.err)
		}
	}
	return db, res, stop
}
