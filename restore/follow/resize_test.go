package follow_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore/follow"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// countingClient counts the opens of snapshots.
type countingClient struct {
	storage.Client
	snapshots atomic.Int64
}

func (c *countingClient) OpenLTXFile(ctx context.Context, level int, min, max ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	if level == storage.SnapshotLevel {
		c.snapshots.Add(1)
	}
	return c.Client.OpenLTXFile(ctx, level, min, max, offset, size)
}

// TestFollowWaitForRepairCost: while the follower waits for the primary to
// repair a damaged file it needs (hours, at the audit's interval), it
// should not download the whole newest snapshot again at every interval
// to find out that nothing changed (every failing step rebased, and
// downloaded the snapshot once per step).
func TestFollowWaitForRepairCost(t *testing.T) {
	p, c, out := setup(t)
	p.insert(5)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	cc := &countingClient{Client: c}
	f, errs := startStepping(t, cc, out)
	f.waitTXID(t, 2)
	bad := p.insert(40)
	p.putDamaged(c.(*file.Client), plain, 0, bad, bad, flipMiddle)
	after := p.insert(3)
	p.write(c, 0, after, after, nil)
	awaitStepError(t, f, errs)
	before := cc.snapshots.Load()
	const steps = 10
	for range steps {
		awaitStepError(t, f, errs)
	}
	if n := cc.snapshots.Load() - before; n >= steps {
		t.Fatalf("the snapshot was downloaded %d times over %d failing steps, though the replica did not change", n, steps)
	}
}

// TestFollowPageSizeShrinkAndSchema: page-size changes down and up, with
// a shrink and schema changes, applied in one chain that ends at the
// copy's own page size (fetched.since) and in one that ends at another
// (resize), a reader keeping the copy open; interrupted between resize's
// two transactions too. The copy is the state at every stop.
func TestFollowPageSizeShrinkAndSchema(t *testing.T) {
	p := newPrimaryWith(t, "a", "PRAGMA page_size=16384")
	c := file.New(filepath.Join(t.TempDir(), "replica"))
	out := filepath.Join(t.TempDir(), "copy.db")
	p.insert(3000)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 2)
	count := copyReader(t, out, "SELECT count(*) FROM t WHERE v IS NOT NULL")
	if count() != 3000 {
		t.Fatal("reader")
	}
	f.stop(t)
	// One chain: shrink, down to 1024, a schema change, back up to 16384.
	for _, q := range []string{"DELETE FROM t WHERE id > 100", "", "CREATE INDEX tv ON t (v)", "16384", "DROP INDEX tv"} {
		var txid ltx.TXID
		switch q {
		case "":
			txid = p.changePageSize(1024)
		case "16384":
			txid = p.changePageSize(16384)
		default:
			txid = p.exec(q)
		}
		p.write(c, 0, txid, txid, nil)
	}
	next := p.insert(5)
	p.write(c, 0, next, next, nil)
	f = startFollower(t, c, out)
	f.waitTXID(t, next)
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(next))) {
		t.Fatalf("the copy is not the primary's state of TXID %s", next)
	}
	if n := count(); n != 105 {
		t.Fatalf("reader counts %d", n)
	}
	f.stop(t)

	// Down to 512 with a shrink and a schema change, interrupted between
	// the two transactions; the reader reads the copy in between.
	p.exec("DELETE FROM t WHERE id > 50")
	p.write(c, 0, next+1, next+1, nil)
	txid := p.changePageSize(512)
	p.write(c, 0, txid, txid, nil)
	txid = p.exec("CREATE INDEX tv2 ON t (id, v)")
	p.write(c, 0, txid, txid, nil)
	stopped, release := make(chan struct{}), make(chan struct{})
	follow.SetAfterRestore(func() error {
		close(stopped)
		<-release
		return errors.New("stopped here (test)")
	})
	f = startFollower(t, c, out)
	<-stopped
	follow.SetAfterRestore(nil)
	f.cancel()
	close(release)
	if err := <-f.done; err != nil {
		t.Fatal(err)
	}
	f.cancel = nil
	if pageSizeOf(mustRead(t, out)) != 512 {
		t.Fatal("not stopped between the two transactions")
	}
	if n := count(); n != 50 {
		t.Fatalf("reader counts %d in between", n)
	}
	if err := testutil.IntegrityCheck(context.Background(), out); err != nil {
		t.Fatalf("in between: %v", err)
	}
	f = startFollower(t, c, out)
	last := p.insert(3)
	p.write(c, 0, last, last, nil)
	f.waitTXID(t, last)
	f.stop(t)
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(last))) {
		t.Fatalf("the copy is not the primary's state of TXID %s", last)
	}
	if n := count(); n != 53 {
		t.Fatalf("reader counts %d", n)
	}
	promoteExact(t, out, p.state(last), last)
}

// TestFollowResizeFinishesWhenStopped: a follower stopped (its context
// ended, as a standby stops it to promote) between resize's two
// transactions must still write page 1: the copy left in between holds no
// state of the replica's history (the backup's schema cookie), and
// Promote, finding the record names three states, promotes it as it is.
func TestFollowResizeFinishesWhenStopped(t *testing.T) {
	p, c, out := setup(t)
	p.insert(20)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 2)
	f.stop(t)
	txid := p.changePageSize(8192)
	p.write(c, 0, txid, txid, nil)
	txid = p.exec("CREATE INDEX tv ON t (v)")
	p.write(c, 0, txid, txid, nil)
	cancel := make(chan func(), 1)
	follow.SetAfterRestore(func() error { (<-cancel)(); return nil })
	defer follow.SetAfterRestore(nil)
	f = startFollower(t, c, out)
	cancel <- f.cancel
	if err := <-f.done; err != nil {
		t.Fatal(err)
	}
	f.cancel = nil
	if _, err := follow.Promote(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(normalized(got), normalized(p.state(txid))) {
		t.Fatalf("the copy, stopped during a page-size change and promoted, is not the replica's state of TXID %s", txid)
	}
}
