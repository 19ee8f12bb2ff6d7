package follow_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore/follow"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/crypt"
	"github.com/walship/walship/storage/file"
)

// changePageSize moves the primary's database to pages of size bytes, as
// an application does it: one TXID, after which walship ships a full copy.
func (p *primary) changePageSize(size int) ltx.TXID {
	p.t.Helper()
	return p.exec("PRAGMA journal_mode=DELETE; PRAGMA page_size=" + strconv.Itoa(size) + "; VACUUM; PRAGMA journal_mode=WAL")
}

// stepErrs runs a follower that reports every step's error on a channel.
func startStepping(t *testing.T, c storage.Client, out string) (*follower, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{cancel: cancel, done: make(chan error, 1), applied: make(chan follow.Status, 100), log: new(bytes.Buffer)}
	errs := make(chan error, 1000)
	go func() {
		f.done <- follow.Run(ctx, c, out, follow.Options{
			Interval: 10 * time.Millisecond,
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			Applied:  func(s follow.Status) { f.applied <- s },
			Stepped: func(_ follow.Status, err error) {
				select {
				case errs <- err:
				default:
				}
			},
		})
	}()
	t.Cleanup(func() { f.stop(t) })
	return f, errs
}

// awaitStepError waits until a step of the follower fails: it tried the
// replica as it is now, and did not apply.
func awaitStepError(t *testing.T, f *follower, errs <-chan error) error {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-errs:
			if err != nil {
				return err
			}
		case s := <-f.applied:
			t.Fatalf("the follower applied TXID %s", s.TXID)
		case err := <-f.done:
			f.cancel = nil
			t.Fatalf("the follower stopped: %v", err)
		case <-deadline:
			t.Fatal("no step of the follower failed")
		}
	}
}

// TestFollowPageSizeChange: the primary moves its database to another
// page size (a full copy at the new size, then a snapshot); the follower
// changes the copy's page size in place, through SQLite, while a reader
// keeps it open, and goes on following; so does a follower started again
// on a copy of the old page size.
func TestFollowPageSizeChange(t *testing.T) {
	p, c, out := setup(t)
	p.insert(20)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 2)

	// A reader with the copy open across the change.
	count := copyReader(t, out, "SELECT count(*) FROM t")
	if n := count(); n != 20 {
		t.Fatalf("the reader counts %d rows, want 20", n)
	}

	txid := p.changePageSize(8192)
	p.write(c, 0, txid, txid, nil)
	p.write(c, storage.SnapshotLevel, 1, txid, nil)
	next := p.insert(15)
	p.write(c, 0, next, next, nil)
	f.waitTXID(t, next)
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(next))) {
		t.Fatalf("the copy is not the primary's state of TXID %s", next)
	}
	if n := count(); n != 35 {
		t.Fatalf("the reader that kept the copy open counts %d rows, want 35", n)
	}
	if err := testutil.IntegrityCheck(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	f.stop(t)

	// A follower started again on a copy of the old page size: it goes on.
	txid = p.changePageSize(4096)
	p.write(c, 0, txid, txid, nil)
	next = p.insert(5)
	p.write(c, 0, next, next, nil)
	f = startFollower(t, c, out)
	f.waitTXID(t, next)
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(next))) {
		t.Fatalf("the copy is not the primary's state of TXID %s", next)
	}
	if n := count(); n != 40 {
		t.Fatalf("the reader that kept the copy open counts %d rows, want 40", n)
	}
	f.stop(t)

	// Promoted, the copy is the state byte for byte.
	promoteExact(t, out, p.state(next), next)
}

// TestFollowPageSizeChangeInterrupted: a follower stopped between the
// two transactions that change the copy's page size (the new state in
// place, its schema cookie the backup's) proves the copy against its
// record at the next start and goes on to the replica's state exactly.
func TestFollowPageSizeChangeInterrupted(t *testing.T) {
	p, c, out := setup(t)
	p.insert(20)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 2)
	f.stop(t)
	txid := p.changePageSize(16384)
	p.write(c, 0, txid, txid, nil)
	// A schema change after it: the state's schema cookie is not the one
	// the backup gives the copy.
	txid = p.exec("CREATE INDEX tv ON t (v)")
	p.write(c, 0, txid, txid, nil)
	stopped, release := make(chan struct{}), make(chan struct{})
	follow.SetAfterRestore(func() error {
		close(stopped)
		<-release
		return errors.New("stopped here (test)")
	})
	f = startFollower(t, c, out)
	<-stopped
	f.cancel()
	close(release)
	if err := <-f.done; err != nil {
		t.Fatal(err)
	}
	f.cancel = nil
	follow.SetAfterRestore(nil)
	if pageSizeOf(mustRead(t, out)) != 16384 {
		t.Fatal("the test stopped the follower elsewhere than after the copy took the new page size")
	}
	next := p.insert(3)
	p.write(c, 0, next, next, nil)
	f = startFollower(t, c, out)
	f.waitTXID(t, next)
	f.stop(t)
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(next))) {
		t.Fatalf("the copy is not the primary's state of TXID %s", next)
	}
}

// copyReader opens the copy read-only on one connection, as an
// application reading it would, and keeps it open until the test ends;
// it returns what query (a count) reads through it.
func copyReader(t *testing.T, out, query string) func() int {
	t.Helper()
	reader, err := sql.Open("sqlite", "file:"+out+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	reader.SetMaxOpenConns(1)
	return func() int {
		t.Helper()
		var n int
		if err := reader.QueryRow(query).Scan(&n); err != nil {
			t.Fatalf("a reader of the copy: %v", err)
		}
		return n
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFollowWaitsForRepair: the next file the follower needs is damaged,
// or deleted; the follower applies nothing (the copy stays at the state
// before it), never stops, and once the primary uploads its repair
// snapshot goes on from it to the newest state.
func TestFollowWaitsForRepair(t *testing.T) {
	for _, damage := range []string{"flipped byte", "deleted", "cut short"} {
		t.Run(damage, func(t *testing.T) {
			p, c, out := setup(t)
			p.insert(5)
			p.write(c, storage.SnapshotLevel, 1, 2, nil)
			f, errs := startStepping(t, c, out)
			f.waitTXID(t, 2)

			// The file is made aside, damaged, and put in place whole:
			// the follower never sees it good.
			bad := p.insert(40)
			if damage != "deleted" {
				p.putDamaged(c.(*file.Client), plain, 0, bad, bad, func(b []byte) []byte {
					if damage == "cut short" {
						return b[:len(b)*2/3]
					}
					return flipMiddle(b)
				})
			}
			after := p.insert(3)
			p.write(c, 0, after, after, nil)
			awaitStepError(t, f, errs)
			awaitStepError(t, f, errs) // again: it keeps trying
			if got := content(t, out); !bytes.Equal(got, normalized(p.state(2))) {
				t.Fatal("the copy changed though the file it needed was damaged")
			}

			// The primary heals its replica: a snapshot of its newest state.
			p.write(c, storage.SnapshotLevel, 1, after, nil)
			last := p.insert(7)
			p.write(c, 0, last, last, nil)
			f.waitTXID(t, last)
			if got := content(t, out); !bytes.Equal(got, normalized(p.state(last))) {
				t.Fatalf("the copy is not the primary's state of TXID %s", last)
			}
		})
	}
}

// putDamaged stores the LTX file of TXIDs min-max at level in c as write
// makes it through w (c itself, or an encrypting wrapper of it), then
// changed by damage, in one rename: a follower never sees it whole.
func (p *primary) putDamaged(c *file.Client, wrap func(storage.Client) storage.Client, level int, min, max ltx.TXID, damage func([]byte) []byte) {
	p.t.Helper()
	scratch := file.New(filepath.Join(p.t.TempDir(), "scratch"))
	p.write(wrap(scratch), level, min, max, nil)
	b, err := os.ReadFile(scratch.LTXFilePath(level, min, max))
	if err != nil {
		p.t.Fatal(err)
	}
	name := c.LTXFilePath(level, min, max)
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(name+".tmp", damage(b), 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(name+".tmp", name); err != nil {
		p.t.Fatal(err)
	}
}

func flipMiddle(b []byte) []byte { b[len(b)/2] ^= 0xff; return b }

func plain(c storage.Client) storage.Client { return c }

// TestFollowGoesAroundDamagedSnapshot: a follower that must rebase (its
// copy is not on the replica's history) and whose newest snapshot is
// damaged goes around it, as a restore does, from an older snapshot and
// the files after it, rather than wait for a repair that only a
// verification of the replica would bring.
func TestFollowGoesAroundDamagedSnapshot(t *testing.T) {
	p, c, out := setup(t)
	for range 5 {
		p.insert(9)
	}
	p.write(c, storage.SnapshotLevel, 1, 6, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 6)
	f.stop(t)

	q := newPrimary(t, "other")
	for range 5 {
		q.insert(11)
	}
	c2 := file.New(filepath.Join(t.TempDir(), "replica2"))
	q.write(c2, storage.SnapshotLevel, 1, 3, nil)
	for txid := ltx.TXID(4); txid <= 6; txid++ {
		q.write(c2, 0, txid, txid, nil)
	}
	q.putDamaged(c2, plain, storage.SnapshotLevel, 1, 6, flipMiddle)
	f = startFollower(t, c2, out)
	if s := f.waitTXID(t, 6); !s.Rebased {
		t.Fatal("the copy took another history's TXID 6 for its own")
	}
	if got := content(t, out); !bytes.Equal(got, normalized(q.state(6))) {
		t.Fatal("the copy is not the new history's state of TXID 6")
	}
}

// TestFollowProvesAgainstRepair: a follower started again on its copy,
// whose state's last file in the replica was damaged since, cannot prove
// the copy against it and keeps trying; once the primary's repair
// snapshot of that TXID is there (an idle primary: no later file), it
// proves the copy against it and goes on (before, it read the damaged
// file at every look, for good, and reported the copy failing).
func TestFollowProvesAgainstRepair(t *testing.T) {
	p, c, out := setup(t)
	p.insert(5)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	txid := p.insert(30)
	p.write(c, 0, txid, txid, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, txid)
	f.stop(t)
	name := c.(*file.Client).LTXFilePath(0, txid, txid)
	if err := os.WriteFile(name, flipMiddle(mustRead(t, name)), 0o644); err != nil {
		t.Fatal(err)
	}
	f, errs := startStepping(t, c, out)
	awaitStepError(t, f, errs)
	p.write(c, storage.SnapshotLevel, 1, txid, nil) // the repair
	// The primary is idle: the copy holds the replica's newest state,
	// which the repair snapshot proves.
	deadline := time.After(10 * time.Second)
	for proved := false; !proved; {
		select {
		case err := <-errs:
			proved = err == nil
		case <-deadline:
			t.Fatal("the follower did not prove its copy against the repair snapshot")
		}
	}
	next := p.insert(4)
	p.write(c, 0, next, next, nil)
	f.waitTXID(t, next)
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(next))) {
		t.Fatalf("the copy is not the primary's state of TXID %s", next)
	}
}

// TestFollowEncryptedDamagedHeader: on an encrypted replica, a file whose
// encryption header was overwritten fails to open as damaged
// (storage.ErrDamaged); the follower takes it for a damaged file, applies
// nothing, and goes on from the repair snapshot (before, the open's error
// was taken for a passing one, and the follower read that file at every
// look, for good, repair or not).
func TestFollowEncryptedDamagedHeader(t *testing.T) {
	key, err := crypt.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	wrap := func(c storage.Client) storage.Client { return crypt.Wrap(c, crypt.Keys{Current: key}) }
	p, dir, out := setup(t)
	c := wrap(dir)
	p.insert(5)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f, errs := startStepping(t, c, out)
	f.waitTXID(t, 2)
	bad := p.insert(20)
	p.putDamaged(dir.(*file.Client), wrap, 0, bad, bad, func(b []byte) []byte { copy(b, "NOT"); return b })
	after := p.insert(3)
	p.write(c, 0, after, after, nil)
	awaitStepError(t, f, errs)
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(2))) {
		t.Fatal("the copy changed though the file it needed was damaged")
	}
	p.write(c, storage.SnapshotLevel, 1, after, nil) // the repair
	last := p.insert(2)
	p.write(c, 0, last, last, nil)
	f.waitTXID(t, last)
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(last))) {
		t.Fatalf("the copy is not the primary's state of TXID %s", last)
	}
}

// TestFollowPageSizeChangeWaitsForReaders: a reader that holds a read
// transaction on the copy longer than the follower waits makes the change
// of page size give up (the copy stays whole at the old state, which the
// follower proves again from its pages) and try again later; once the
// reader is done, the change is applied.
func TestFollowPageSizeChangeWaitsForReaders(t *testing.T) {
	p, c, out := setup(t)
	p.insert(20)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f, errs := startStepping(t, c, out)
	f.waitTXID(t, 2)
	reader, err := sql.Open("sqlite", "file:"+out+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	long, err := reader.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := long.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	txid := p.changePageSize(8192)
	p.write(c, 0, txid, txid, nil)
	awaitStepError(t, f, errs)
	if err := long.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 20 {
		t.Fatalf("the reader's transaction reads %d rows (%v), want 20", n, err)
	}
	if err := long.Rollback(); err != nil {
		t.Fatal(err)
	}
	f.waitTXID(t, txid)
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(txid))) {
		t.Fatalf("the copy is not the primary's state of TXID %s", txid)
	}
}

// TestFollowStopsOnUnknownCopy: a page-size change whose backup fails
// leaves the copy's state to be read from its pages; when they are none
// of the states its record names (something else wrote the copy), the
// follower stops with ErrNotACopy instead of applying the next files on
// top of pages it does not know.
func TestFollowStopsOnUnknownCopy(t *testing.T) {
	p, c, out := setup(t)
	p.insert(20)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 2)
	follow.SetBeforeBackup(func() error {
		db, err := sql.Open("sqlite", "file:"+out+"?_pragma=busy_timeout(5000)")
		if err != nil {
			return err
		}
		defer db.Close()
		if _, err := db.Exec("CREATE TABLE other (x)"); err != nil {
			return err
		}
		return errors.New("the backup failed (test)")
	})
	defer follow.SetBeforeBackup(nil)
	txid := p.changePageSize(16384)
	p.write(c, 0, txid, txid, nil)
	select {
	case err := <-f.done:
		f.cancel = nil
		if !errors.Is(err, follow.ErrNotACopy) {
			t.Fatalf("the follower stopped with %v; want ErrNotACopy", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follower went on over a copy whose pages are none of the states it knows")
	}
}
