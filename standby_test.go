package walship_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/lease"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
)

// standbyResult is what a standby's Standby returned.
type standbyResult struct {
	p   walship.Promotion
	err error
}

// startStandby runs Standby for a database at path replicating to the
// replica of h, in the background.
func startStandby(t *testing.T, h *harness, path string, ttl time.Duration) (*walship.DB, <-chan standbyResult) {
	t.Helper()
	db, res, _ := runStandby(t, h, path, ttl)
	return db, res
}

// TestStandbyPromotes: a standby follows the replica while the primary
// renews its lease; once the primary stops, it takes the lease over within
// the TTL (plus its polling), promotes the copy, and the promoted database
// replicates the same history from the next TXID, as the owner, with no
// gap and no takeover; a restore equals the promoted database.
func TestStandbyPromotes(t *testing.T) {
	// Long enough that a loaded machine's renewals, every second, reach
	// the replica well within it: the primary must not lose it early.
	ttl := 3 * time.Second
	a := newHarness(t)
	a.open(walship.Options{LeaseTTL: ttl})
	for range 5 {
		a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
		a.sync()
	}
	bPath := filepath.Join(t.TempDir(), "standby.db")
	b, res := startStandby(t, a, bPath, ttl)
	// While the primary renews, the standby does not promote.
	select {
	case r := <-res:
		t.Fatalf("the standby returned while the primary held its lease: %+v, %v", r.p, r.err)
	case <-time.After(ttl + ttl/2):
	}
	// Its status says it stands by, with its copy (whose TXID is the
	// database's), who holds the lease, and none of a primary's figures.
	if st := b.Status(a.ctx, time.Now()); st.Phase != walship.StateStandby || st.Lease == nil || st.Lease.Held ||
		st.Lease.Standby == nil || st.Lease.Standby.TXID == 0 || st.TXID != st.Lease.Standby.TXID || len(st.Replicas) != 0 ||
		st.Error != "" || !strings.Contains(st.Lease.Holder, a.path) {
		t.Fatalf("the standby's status: %+v, lease %+v; want phase standby, its copy's TXID, no replica, and the lease held by %s", st, st.Lease, a.path)
	}
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	last := a.sync()
	want := tableRows(t, a.path)
	// One more commit is captured and never shipped; the primary's next
	// renewal says so in the lease.
	a.exec("INSERT INTO t (v) VALUES ('never shipped')")
	if _, err := a.db.Sync(a.ctx); err != nil {
		t.Fatal(err)
	}
	waitLease(t, a, func(rec *lease.Record) bool { return rec.Captured == uint64(last)+1 && rec.TXID == uint64(last) })
	// The primary stops (it renews no more).
	if err := a.db.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	var r standbyResult
	select {
	case r = <-res:
	case <-time.After(ttl + 20*time.Second):
		t.Fatal("the standby did not promote")
	}
	if r.err != nil {
		t.Fatalf("standby: %v", r.err)
	}
	if took := time.Since(stopped); took > 2*ttl+5*time.Second {
		t.Fatalf("promoted %s after the primary stopped; want about the TTL %s", took, ttl)
	}
	if r.p.TXID != last || r.p.Observed < ttl || !strings.Contains(r.p.Previous, a.path) {
		t.Fatalf("promotion %+v; want TXID %s, observed for at least %s, previous holder %s", r.p, last, ttl, a.path)
	}
	// What was lost: the one commit captured and never shipped, for
	// certain, and perhaps the primary's last sync interval.
	if r.p.Released || r.p.Unshipped != 1 || r.p.LossBound != walship.DefaultSyncInterval {
		t.Fatalf("promotion %+v; want 1 commit lost for certain and a loss bound of the primary's sync interval %s", r.p, walship.DefaultSyncInterval)
	}
	if got := tableRows(t, bPath); got != want {
		t.Fatal("the promoted database is not the primary's last replicated state")
	}
	rec, _, err := lease.Read(a.ctx, a.replica)
	if err != nil || rec.Path != bPath {
		t.Fatalf("the lease after the promotion: %+v, %v; want held by %s", rec, err, bPath)
	}

	// The promoted database replicates the same history as its owner.
	if err := b.Open(a.ctx); err != nil {
		t.Fatalf("open the promoted database: %v", err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	app := openApp(t, bPath)
	for range 3 {
		if _, err := app.Exec("INSERT INTO t (v) VALUES (randomblob(2000))"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Sync(a.ctx); err != nil {
			t.Fatal(err)
		}
		if err := walship.Upload(a.ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if b.Pos().TXID <= last || b.Pos().TXID > last+10 {
		t.Fatalf("the promoted database is at TXID %s after the primary's %s: want the same history going on", b.Pos().TXID, last)
	}
	// It went on from the replica's state itself, byte for byte: no
	// full copy of the database was written after the promotion.
	for level := 0; level <= storage.MaxLevel; level++ {
		files, err := a.replica.LTXFiles(a.ctx, level)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if f.MaxTXID > last && f.MinTXID <= last {
				t.Fatalf("the promoted database wrote %s: a full copy, where the replica's state was its own", storage.Describe(level, f.MinTXID, f.MaxTXID))
			}
		}
	}
	if err := b.Halted(); err != nil {
		t.Fatalf("the promoted database stopped: %v", err)
	}
	st := b.Status(a.ctx, time.Now())
	if l := st.Lease; st.Phase == walship.StateStandby || l == nil || !l.Held || l.Standby != nil || l.Holder != "" || l.Promotion == nil || l.Promotion.TXID != last ||
		l.Promotion.Promotion <= 0 || l.Promotion.FirstWrite.IsZero() || l.Promotion.Failover < l.Promotion.Promotion || l.Promotion.Unshipped != 1 || len(st.Replicas) != 1 {
		t.Fatalf("the promoted database's status: %+v; want the lease held, and the promotion at TXID %s with its times to promotion and to the first write, and its 1 commit lost", l, last)
	}
	checkChain(t, a.ctx, a.replica)
	out := filepath.Join(t.TempDir(), "restored.db")
	if _, err := restore.Restore(a.ctx, a.replica, out, restore.Options{IntegrityCheck: "full"}); err != nil {
		t.Fatal(err)
	}
	if got := tableRows(t, out); got != tableRows(t, bPath) {
		t.Fatal("a restore of the replica is not the promoted database")
	}
}

// TestStandbyKeepsDivergedAside: an old primary started as a standby
// keeps its database (which may hold commits the replica does not) aside,
// with its WAL, and follows the replica from a restore.
func TestStandbyKeepsDivergedAside(t *testing.T) {
	ttl := 1500 * time.Millisecond // the primary stops at once: no renewal needs to be quick
	a := newHarness(t)
	a.open(walship.Options{LeaseTTL: ttl})
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	if err := a.db.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A commit the replica never got.
	a.exec("INSERT INTO t (v) VALUES ('diverged')")
	a.app.Close()
	_, res := startStandby(t, a, a.path, ttl)
	var r standbyResult
	select {
	case r = <-res:
	case <-time.After(30 * time.Second):
		t.Fatal("the standby did not promote")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.p.KeptAside == "" {
		t.Fatalf("promotion %+v: the old database was not kept aside", r.p)
	}
	if _, err := os.Stat(r.p.KeptAside); err != nil {
		t.Fatal(err)
	}
	aside := openApp(t, r.p.KeptAside)
	var n int
	if err := aside.QueryRow("SELECT count(*) FROM t WHERE v = 'diverged'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the kept-aside database lost its diverged commit: %d, %v", n, err)
	}
	now := openApp(t, a.path)
	if err := now.QueryRow("SELECT count(*) FROM t WHERE v = 'diverged'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the diverged commit was merged into the promoted database: %d, %v", n, err)
	}
}

// tableRows is the content of table t of the database at path: a follower's
// copy and the primary differ in bytes of page 1 that are the file's own
// (its journal mode, its change counter), not in their rows.
func tableRows(t *testing.T, path string) string {
	t.Helper()
	db := openApp(t, path)
	defer db.Close()
	var s string
	if err := db.QueryRow("SELECT count(*) || ':' || coalesce(group_concat(id || '=' || hex(v), ','), '') FROM (SELECT * FROM t ORDER BY id)").Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStandbyNeverTakesAReplicaWithoutLease: a standby whose primary runs
// without lease-ttl (the replica has a history and no lease record)
// follows it but never promotes, however long the record stays missing.
func TestStandbyNeverTakesAReplicaWithoutLease(t *testing.T) {
	a := newHarness(t)
	a.open(walship.Options{})
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	ttl := time.Second
	bPath := filepath.Join(t.TempDir(), "standby.db")
	_, res := startStandby(t, a, bPath, ttl)
	deadline := time.Now().Add(4 * ttl)
	for time.Now().Before(deadline) {
		select {
		case r := <-res:
			t.Fatalf("the standby returned: %+v, %v; want it standing by", r.p, r.err)
		case <-time.After(100 * time.Millisecond):
		}
		if _, _, err := lease.Read(a.ctx, a.replica); err == nil {
			t.Fatal("the standby wrote a lease on a replica whose primary runs without one")
		}
	}
	if _, err := os.Stat(bPath); err != nil {
		t.Fatalf("the standby did not follow the replica meanwhile: %v", err)
	}
}

// waitLease waits until the lease record at h's replica satisfies ok.
func waitLease(t *testing.T, h *harness, ok func(*lease.Record) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec, _, err := lease.Read(h.ctx, h.replica)
		if err == nil && ok(rec) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease record is %+v, %v: not the one awaited", rec, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStandbyReportsFailure: a standby that cannot read the lease says so
// in its status (the database's error, since when), which /healthz turns
// into a failure once it lasts; it does not promote meanwhile, and the
// error clears once the lease reads again.
func TestStandbyReportsFailure(t *testing.T) {
	a := newHarness(t)
	a.open(walship.Options{LeaseTTL: 3 * time.Second})
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	bPath := filepath.Join(t.TempDir(), "standby.db")
	b, res := startStandby(t, a, bPath, 3*time.Second)
	waitStatus := func(ok func(walship.DBStatus) bool) walship.DBStatus {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st := b.Status(a.ctx, time.Now())
			if ok(st) {
				return st
			}
			select {
			case r := <-res:
				t.Fatalf("the standby returned: %+v, %v", r.p, r.err)
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("the standby's status: %+v; not the one awaited", st)
			}
		}
	}
	waitStatus(func(st walship.DBStatus) bool { return st.Lease != nil && st.Lease.Holder != "" && st.Error == "" })

	// Someone writes over the lease record: no node can read it.
	good, version, err := a.replica.ReadRecord(a.ctx, lease.RecordName)
	if err != nil {
		t.Fatal(err)
	}
	if version, err = a.replica.WriteRecord(a.ctx, lease.RecordName, []byte("not a lease"), version); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(func(st walship.DBStatus) bool { return st.Error != "" })
	if !strings.Contains(st.Error, lease.RecordName) || st.FailingSince.IsZero() || st.Phase != walship.StateStandby {
		t.Fatalf("the standby's status: %+v; want its error naming the lease record, and since when", st)
	}

	// A lease record is written back: the error clears at the next
	// reading (a whole TTL before the standby could take it over).
	if _, err := a.replica.WriteRecord(a.ctx, lease.RecordName, good, version); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for st := b.Status(a.ctx, time.Now()); st.Error != ""; st = b.Status(a.ctx, time.Now()) {
		if time.Now().After(deadline) {
			t.Fatalf("the standby's error did not clear once the lease read again: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
