// Package follow keeps a read-only copy of a replica's database current:
// it restores the replica once, then applies each new LTX file as it
// appears, so that other processes can read the copy while it follows
// (walship restore -follow, Litestream's restore -f).
//
// Every file is downloaded and proved (restore.State.Apply: its own
// checksum, its header, its pre- and post-apply database checksums)
// before a page of it is written; then a chain of proved files is written
// in one SQLite write transaction on the copy, which is kept in
// rollback-journal mode, so a reader sees the state before the chain or
// the state after it, never a part (see copyDB). The copy's state, TXID
// and checksum, is kept in a record beside it (.NAME.follow) and proved
// against the copy's own pages at every start, and against the replica's
// files before the copy goes on from it.
package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/fsutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
)

// DefaultInterval is how often the replica is listed for new files when
// Options.Interval is zero (Litestream's default).
const DefaultInterval = time.Second

// Options configure Run.
type Options struct {
	// Interval is how often the replica is listed for new files.
	Interval time.Duration
	// IntegrityCheck and Parallelism are those of the first restore
	// (restore.Options).
	IntegrityCheck string
	Parallelism    int
	// Logger receives what the follower does: each chain applied, with
	// how far behind the primary the copy is, and each failure (the
	// follower retries at the next interval). Nil: slog.Default().
	Logger *slog.Logger
	// Applied, when set, is called after the first restore and after
	// each commit to the copy.
	Applied func(Status)
	// Stepped, when set, is called after each listing of the replica,
	// with the copy's TXID, the replica's newest as listed (zero when
	// the listing failed), and the error that kept the copy from it (nil
	// once the copy holds it): what a health check of the copy reads.
	Stepped func(Status, error)
	// Opened, when set, is called once the copy is open and its state
	// known, before the first listing: with the state an earlier Run left
	// (Applied is not called for it), or the first restore's.
	Opened func(Status)
}

// Status is the copy's state after a commit.
type Status struct {
	TXID ltx.TXID
	// Newest is the replica's newest TXID when the files were listed.
	Newest ltx.TXID
	// Lag is how long before the commit the primary wrote the newest
	// file applied (its LTX timestamp): how far behind the copy was
	// brought, replication and polling included.
	Lag time.Duration
	// Rebased is true when the chain started from a snapshot: the copy
	// could not be proved to be on the replica's history any more, or the
	// files after its TXID were gone.
	Rebased bool
	// Restored is true for the first restore of the copy.
	Restored bool
}

// ErrNotACopy is returned (wrapped) when the output exists and is not a
// copy this package keeps: it is never written.
var ErrNotACopy = errors.New("not a follower's copy")

// follower is one copy followed from one replica.
type follower struct {
	c      storage.Client
	out    string
	opts   Options
	log    *slog.Logger
	copy   *copyDB
	st     *restore.State
	header []byte      // the state's page-1 header
	proved bool        // the copy's state is shown to be the replica's
	file   os.FileInfo // the copy's file when it was opened
	// damaged holds the files rebases found damaged, and when (see
	// knownDamaged).
	damaged map[fileID]time.Time
}

// Run restores c to out if out does not exist, or goes on from the copy
// at out that an earlier Run left, and then applies new files until ctx
// is done (it then returns nil). An out that exists and is not such a copy
// (a database of its own, or a copy changed since) is never written: the
// error wraps ErrNotACopy.
func Run(ctx context.Context, c storage.Client, out string, opts Options) error {
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	f := &follower{c: c, out: out, opts: opts, log: opts.Logger}
	if f.log == nil {
		f.log = slog.Default()
	}
	f.log = f.log.With("output", out)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("create the output directory: %w", err)
	}
	lock, holder, err := fsutil.TryLock(lockPath(out))
	if err != nil {
		if errors.Is(err, fsutil.ErrLocked) {
			return fmt.Errorf("another walship restore -follow keeps %s (%s); stop it first", out, holder)
		}
		return fmt.Errorf("lock the copy %s: %w", out, err)
	}
	defer lock.Unlock()
	lock.Set(fmt.Appendf(nil, "pid %d", os.Getpid()))
	removeFetched(out)
	removeDB(resizePath(out)) // a change of page size killed half way

	if err := f.open(ctx); err != nil {
		return err
	}
	defer f.copy.close()
	if opts.Opened != nil {
		opts.Opened(Status{TXID: f.st.TXID})
	}
	f.log.Info("following", "replica", c.String(), "txid", f.st.TXID, "interval", opts.Interval)
	t := time.NewTicker(opts.Interval)
	defer t.Stop()
	failing := false
	busy := 0 // commits in a row that gave up waiting for readers
	for {
		if err := f.same(); err != nil {
			return err
		}
		newest, err := f.step(ctx)
		if errors.Is(err, storage.ErrNotFound) {
			// Retention deleted a listed file meanwhile: list again.
			f.log.Debug("follow: a listed file is gone; listing the replica again", "err", err)
			newest, err = f.step(ctx)
		}
		if ctx.Err() != nil {
			f.log.Info("follow stopped", "txid", f.st.TXID)
			return nil
		}
		if opts.Stepped != nil {
			opts.Stepped(Status{TXID: f.st.TXID, Newest: newest}, err)
		}
		var wait <-chan time.Time
		switch {
		case errors.Is(err, ErrNotACopy):
			// The copy's pages are none of the states it could hold
			// (a page-size change that failed, and something else
			// wrote the copy): a file applied on top of it would give
			// neither the replica's state nor the copy's.
			return err
		case err != nil && isBusy(err):
			// Readers held the copy longer than the follower waits: give
			// them the copy for a while (new readers were kept out while
			// the follower waited), then try again.
			busy++
			d := busyBackoff(busy)
			f.log.Warn("follow: readers of the copy kept the commit waiting; leaving the copy to them before retrying", "txid", f.st.TXID, "retry_in", d, "err", err)
			wait = time.After(d)
			failing = true
		case err != nil:
			busy = 0
			f.log.Error("follow: the copy could not be brought up to date; retrying", "txid", f.st.TXID, "err", err)
			failing = true
		case failing:
			busy = 0
			f.log.Info("follow: up to date again", "txid", f.st.TXID)
			failing = false
		}
		if wait != nil {
			select {
			case <-ctx.Done():
				f.log.Info("follow stopped", "txid", f.st.TXID)
				return nil
			case <-wait:
			}
		}
		select {
		case <-ctx.Done():
			f.log.Info("follow stopped", "txid", f.st.TXID)
			return nil
		case <-t.C:
		}
	}
}

// open restores the copy, or finds its state again.
func (f *follower) open(ctx context.Context) error {
	rec, err := readRecord(f.out)
	if err != nil {
		return err
	}
	existing, err := restore.ExistingOutput(f.out)
	if err != nil {
		return err
	}
	switch {
	case existing != "" && existing != f.out:
		// A WAL or rollback journal whose database is gone (a copy deleted
		// after a follower was killed mid-commit leaves its hot journal):
		// SQLite would apply it to the copy restored here, writing the old
		// pages into it. Whose it is cannot be known; it is not deleted.
		return fmt.Errorf("%s is left by a database no longer at %s: SQLite would apply it to the copy restored there (a WAL's frames or a hot journal's old pages written into it), and follow mode never deletes another database's files; delete it (it holds nothing of a deleted copy's) or move it back beside its database, then follow again", existing, f.out)
	case existing != "" && rec == nil:
		return fmt.Errorf("%s exists and is %w (no record %s): follow mode never overwrites a database; give another -o, or delete it to follow into that path", existing, ErrNotACopy, recordPath(f.out))
	case existing == "":
		if rec != nil {
			os.Remove(recordPath(f.out)) // of a copy deleted since
		}
		return f.restore(ctx)
	}
	// A first restore killed after it linked the copy in place leaves its
	// other name: another link to the copy's file, removed without opening.
	os.Remove(newPath(f.out))
	// The file the follower writes, taken before its connection opens the
	// path: a replacement in between is then taken for one after (the
	// follower stops), never the other way round. Stat, not open: an open
	// and close of the file would drop SQLite's POSIX locks on it.
	if f.file, err = os.Stat(f.out); err != nil {
		return fmt.Errorf("the copy %s: %w", f.out, err)
	}
	f.copy, err = openCopy(f.out)
	if err != nil {
		return err
	}
	if err := f.proveCopy(ctx, rec); err != nil {
		f.copy.close()
		return err
	}
	return nil
}

// proveCopy finds which state of the record the copy holds, from its own
// pages: the checksum of every page, page 1 with the state's bytes where
// the copy alters them.
func (f *follower) proveCopy(ctx context.Context, rec *record) error {
	sums, page1, err := f.copy.sums(ctx)
	if err != nil {
		return err
	}
	var rest ltx.Checksum
	for _, s := range sums {
		rest ^= s
	}
	for _, s := range rec.States {
		if s.Pages != uint32(len(sums)) || s.PageSize != uint32(len(page1)) {
			continue
		}
		sums[0] = ltx.ChecksumPage(1, normalize(page1, s.Header))
		if ltx.ChecksumFlag|(rest^sums[0]) != s.checksum() {
			continue
		}
		f.st = &restore.State{TXID: s.txid(), PageSize: s.PageSize, Sums: sums, Checksum: s.checksum()}
		f.header = s.Header
		f.log.Info("the copy holds the state of TXID "+s.txid().String()+", as its record says", "checksum", s.checksum())
		return writeRecord(f.out, f.c.String(), s)
	}
	return fmt.Errorf("%s is %w any more: its pages are not the state its record %s names (it was written by something else); delete both to follow into that path again", f.out, ErrNotACopy, recordPath(f.out))
}

// restore makes the copy: a restore of the newest state into a file of
// its own beside out, checked, turned into rollback-journal mode, its
// state recorded, and only then linked to out (which fails rather than
// replace a file that appeared meanwhile).
func (f *follower) restore(ctx context.Context) error {
	tmp := newPath(f.out)
	removeDB(tmp)
	l, err := restore.List(ctx, f.c)
	if err != nil {
		return err
	}
	plan, err := l.Plan(restore.Target{})
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	res, restored, sums, _, err := f.restoreBeside(ctx, l, plan, tmp)
	if err != nil {
		return err
	}
	f.header = restored.Header
	f.st = &restore.State{TXID: restored.txid(), PageSize: restored.PageSize, Sums: sums, Checksum: restored.checksum()}
	if err := writeRecord(f.out, f.c.String(), restored); err != nil {
		return err
	}
	if f.file, err = os.Stat(tmp); err != nil {
		return err
	}
	// Checked at the start too (open), but a restore takes time: SQLite
	// would roll a journal found beside the copy into it at the first open.
	if p, err := restore.ExistingOutput(f.out); err != nil {
		return err
	} else if p != "" && p != f.out {
		return fmt.Errorf("%s appeared while the copy was restored: SQLite would apply it to the copy; the copy is not put in place at %s; delete it, or move it back beside its database, then follow again", p, f.out)
	}
	if beforeLink != nil {
		beforeLink(f.out)
	}
	if err := os.Link(tmp, f.out); err != nil {
		return fmt.Errorf("put the restored copy in place at %s: %w", f.out, err)
	}
	if err := fsutil.SyncDir(filepath.Dir(f.out)); err != nil {
		return err
	}
	if err := f.proveInPlace(ctx); err != nil {
		return err
	}
	f.proved = true
	last := plan.Files[len(plan.Files)-1]
	st := Status{TXID: res.TXID, Newest: l.Newest(), Lag: time.Since(last.CreatedAt), Restored: true}
	f.log.Info("restored the copy", "txid", res.TXID, "files", res.Files, "lag", st.Lag.Round(time.Millisecond))
	if f.opts.Applied != nil {
		f.opts.Applied(st)
	}
	return nil
}

// proveInPlace opens the copy at its path and reads every page of it
// again: SQLite may have changed the file at that first open (a journal
// that appeared beside it in between is rolled back into it), so the
// restore's own proof, made under the other name, no longer covers it. A
// copy that is not the restored state is taken away again (it is the
// follower's own file, just linked; no reader should see it) and the
// follower stops.
func (f *follower) proveInPlace(ctx context.Context) (err error) {
	want := f.st
	f.copy, err = openCopy(f.out)
	if err == nil {
		var sums []ltx.Checksum
		var page1 []byte
		if sums, page1, err = f.copy.sums(ctx); err == nil {
			sums[0] = ltx.ChecksumPage(1, normalize(page1, f.header))
			total := ltx.ChecksumFlag
			for _, s := range sums {
				total ^= s
			}
			total |= ltx.ChecksumFlag
			if total != want.Checksum || len(sums) != len(want.Sums) {
				err = fmt.Errorf("the copy at %s has checksum %s over %d pages once in place, the restore gave %s over %d: SQLite changed it at its first open there (a rollback journal of another database beside it?)", f.out, total, len(sums), want.Checksum, len(want.Sums))
			} else {
				f.st = &restore.State{TXID: want.TXID, PageSize: want.PageSize, Sums: sums, Checksum: total}
			}
		}
	}
	if err == nil {
		return nil
	}
	if f.copy != nil {
		f.copy.close()
		f.copy = nil
	}
	if fi, serr := os.Stat(f.out); serr != nil || !os.SameFile(fi, f.file) {
		// Not the file the follower linked any more: not its to remove.
		return fmt.Errorf("%w; %s is not the copy the follower put there any more (%v): it is left as it is", err, f.out, serr)
	}
	if rerr := errors.Join(os.Remove(f.out), os.Remove(recordPath(f.out))); rerr != nil {
		return fmt.Errorf("%w; removing the copy failed too (%v): delete %s and %s before following again", err, rerr, f.out, recordPath(f.out))
	}
	return fmt.Errorf("%w; the copy was removed: follow again to restore it", err)
}

// readHeader reads the database header of the file at path.
func readHeader(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b := make([]byte, headerLen)
	if _, err := io.ReadFull(fh, b); err != nil {
		return nil, fmt.Errorf("read the header of %s: %w", path, err)
	}
	return b, nil
}

// same fails when the copy's path names another file than the one the
// follower writes (a restore -force replaced it): writing on would change
// a file no reader opens any more.
func (f *follower) same() error {
	fi, err := os.Stat(f.out)
	if err == nil && os.SameFile(fi, f.file) {
		return nil
	}
	return fmt.Errorf("the copy %s was replaced or removed while the follower kept it (%v): the follower stops rather than write to a file no reader sees; start it again to follow into that path", f.out, err)
}

// beforeLink, when set (by tests), is called just before the restored copy
// is linked in place.
var beforeLink func(out string)

// newPath is where the first restore makes the copy.
func newPath(out string) string {
	return filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".follow-new")
}
