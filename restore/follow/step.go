package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
)

// step lists the replica once and brings the copy to its newest TXID.
//
// The way there: the chain of files of levels 0 to 8 that goes on from
// the copy's TXID and reaches furthest at each step (the fewest files;
// compacted files that start at or before the copy's TXID apply as well,
// their post-apply checksum then proving the result). When no such chain
// reaches the newest TXID (retention deleted files the copy needs), or the
// copy's state is not the replica's (a pre-apply or post-apply checksum
// differs: the replica's history was replaced), the copy is rebased: the
// plan a restore to the newest TXID would apply, from the newest snapshot,
// is proved and written in one transaction, as any other chain.
//
// It returns the replica's newest TXID as listed (zero when the listing
// failed): the copy holds it when the error is nil.
func (f *follower) step(ctx context.Context) (ltx.TXID, error) {
	l, err := restore.List(ctx, f.c)
	if err != nil {
		return 0, err
	}
	return l.Newest(), f.stepFrom(ctx, l)
}

// stepFrom is step with the replica's listing l.
func (f *follower) stepFrom(ctx context.Context, l *restore.Listing) error {
	newest, cur := l.Newest(), f.st.TXID
	switch {
	case newest < cur:
		return fmt.Errorf("the replica's newest TXID %s is older than the copy's %s: the replica was emptied or replaced; the copy is kept as it is (delete it and its record %s to follow the replica from its present state)", newest, cur, recordPath(f.out))
	case newest == cur:
		if f.proved {
			return nil
		}
		ok, err := f.holdsNewest(ctx, l)
		if err != nil {
			return err
		}
		if ok {
			f.proved = true
			return nil
		}
		f.log.Warn("the copy's state is not the replica's state of the same TXID: restoring the copy again from the newest snapshot", "txid", cur)
		return f.rebase(ctx, l)
	}
	chain := chainFrom(l, cur)
	if len(chain) == 0 || chain[len(chain)-1].MaxTXID < newest {
		f.log.Warn("the replica no longer holds the files after the copy's TXID (retention deleted them): restoring the copy again from the newest snapshot", "txid", cur, "newest", newest)
		return f.rebase(ctx, l)
	}
	got, err := fetch(ctx, f.c, f.out, f.st, chain)
	var fe *restore.FileError
	if errors.As(err, &fe) && fe.Damaged {
		// A checksum that does not follow: the copy is not on this
		// history, or the file is damaged. A snapshot proves itself.
		f.log.Warn("a file does not follow the copy's state: restoring the copy again from the newest snapshot", "txid", cur, "err", err)
		return f.rebase(ctx, l)
	}
	if err != nil {
		return err
	}
	if got.state.PageSize != f.st.PageSize {
		// A full copy at another page size: the copy is rebuilt.
		got.remove()
		return f.resize(ctx, l)
	}
	return f.commit(ctx, got, chain, newest, false)
}

// rebase brings the copy to the replica's newest state from the newest
// snapshot. A file of that plan found damaged is gone around as a restore
// goes around it (restore.ApplyListing): the plan is made again without
// it, to the same TXID (an older snapshot and the files after it, say);
// when no other plan reaches that TXID, the copy stays as it is, and the
// next steps try again until the primary repairs its replica (a new
// snapshot, see internal/ship's Repair).
func (f *follower) rebase(ctx context.Context, l *restore.Listing) error {
	plan, err := l.Plan(restore.Target{})
	if err != nil {
		return fmt.Errorf("%w; the follower tries again at every interval, and goes on once the replica's primary has repaired it (a new snapshot)", err)
	}
	want := plan.TXID()
	if known := f.knownDamaged(l); len(known) > 0 {
		// Files found damaged by an earlier step and not changed since:
		// left out without being read again (the plan's snapshot would be
		// downloaded at every interval while the primary has not
		// repaired its replica).
		for _, fi := range known {
			l = l.Without(fi)
		}
		if plan, err = l.Plan(restore.Target{TXID: want}); err != nil {
			return fmt.Errorf("%d files of the replica were found damaged (%s first, read again after %s), and no other chain of files reaches TXID %s without them (%w): the copy stays as it is, and the follower goes on once the replica's primary has repaired it (a new snapshot)", len(known), storage.Describe(known[0].Level, known[0].MinTXID, known[0].MaxTXID), damagedFor, want, err)
		}
	}
	for around := 0; ; around++ {
		got, err := fetch(ctx, f.c, f.out, nil, plan.Files)
		var fe *restore.FileError
		if errors.As(err, &fe) && fe.Damaged {
			f.foundDamaged(fe.File)
		}
		if errors.As(err, &fe) && fe.Damaged && around < maxAround {
			l = l.Without(fe.File)
			next, perr := l.Plan(restore.Target{TXID: want})
			if perr != nil {
				return fmt.Errorf("%w; no other chain of files in the replica reaches TXID %s without it (%v): the copy stays as it is, and the follower goes on once the replica's primary has repaired it (a new snapshot)", err, want, perr)
			}
			f.log.Warn("follow: a file of the replica is damaged; going around it", "file", storage.Describe(fe.File.Level, fe.File.MinTXID, fe.File.MaxTXID), "txid", want, "err", fe.Err)
			plan = next
			continue
		}
		if err != nil {
			return err
		}
		if got.state.PageSize != f.st.PageSize {
			got.remove()
			return f.resize(ctx, l)
		}
		return f.commit(ctx, got, plan.Files, plan.TXID(), true)
	}
}

// damagedFor is how long a file found damaged is left out of rebases
// before it is read again: a file rewritten (another size or time) is read
// at once, and one the storage served damaged by a fault of its own is
// not left out for good.
const damagedFor = time.Minute

// fileID names a listed file: one rewritten is another.
type fileID struct {
	level    int
	min, max ltx.TXID
	size     int64
	created  int64 // UnixNano
}

func idOf(fi *ltx.FileInfo) fileID {
	return fileID{fi.Level, fi.MinTXID, fi.MaxTXID, fi.Size, fi.CreatedAt.UnixNano()}
}

// foundDamaged remembers that file fi was found damaged.
func (f *follower) foundDamaged(fi *ltx.FileInfo) {
	if f.damaged == nil {
		f.damaged = map[fileID]time.Time{}
	}
	f.damaged[idOf(fi)] = time.Now()
}

// knownDamaged returns the files of l found damaged less than damagedFor
// ago, and forgets the others.
func (f *follower) knownDamaged(l *restore.Listing) []*ltx.FileInfo {
	for id, at := range f.damaged {
		if time.Since(at) >= damagedFor {
			delete(f.damaged, id)
		}
	}
	if len(f.damaged) == 0 {
		return nil
	}
	var known []*ltx.FileInfo
	for level := 0; level <= storage.MaxLevel; level++ {
		for _, fi := range l.Files(level) {
			if _, ok := f.damaged[idOf(fi)]; ok {
				known = append(known, fi)
			}
		}
	}
	return known
}

// maxAround bounds how many damaged files one rebase goes around, as a
// restore does: each costs the downloads of a new plan.
const maxAround = 8

// commit writes a proved chain to the copy in one transaction, recording
// the state before and after it first, and the state after it alone once
// SQLite has committed.
func (f *follower) commit(ctx context.Context, got *fetched, files []*ltx.FileInfo, newest ltx.TXID, rebased bool) error {
	defer got.remove()
	old := recordedState{TXID: uint64(f.st.TXID), Checksum: uint64(f.st.Checksum), PageSize: f.st.PageSize, Pages: uint32(len(f.st.Sums)), Header: f.header}
	next := got.state
	nextRec := recordedState{TXID: uint64(next.TXID), Checksum: uint64(next.Checksum), PageSize: next.PageSize, Pages: uint32(len(next.Sums))}
	header, err := f.copy.apply(ctx, batch{files: got.toWrite(), oldPages: old.Pages, newPages: nextRec.Pages, pageSize: f.st.PageSize, oldHeader: f.header},
		func(header []byte) error {
			nextRec.Header = header
			return writeRecord(f.out, f.c.String(), old, nextRec)
		})
	if err != nil {
		return err
	}
	f.st, f.header, f.proved = next, header, true
	if err := writeRecord(f.out, f.c.String(), nextRec); err != nil {
		return err
	}
	last := files[len(files)-1]
	st := Status{TXID: next.TXID, Newest: newest, Lag: time.Since(last.CreatedAt), Rebased: rebased}
	f.log.Info("follow: applied", "txid", next.TXID, "files", len(files), "behind_txids", uint64(newest-next.TXID), "lag", st.Lag.Round(time.Millisecond), "rebased", rebased)
	if f.opts.Applied != nil {
		f.opts.Applied(st)
	}
	return nil
}

// holdsNewest says whether the copy's state is the one the replica's
// newest files end with (their post-apply checksum). A file without
// database checksums (Litestream's) cannot say: the copy is taken to
// hold it. A damaged file says nothing either: the next file that ends at
// that TXID, at a higher level, is read (a repair snapshot); when none is
// whole, the copy is not taken to hold it (the rebase goes around them).
func (f *follower) holdsNewest(ctx context.Context, l *restore.Listing) (bool, error) {
	for level := 0; level <= storage.MaxLevel; level++ {
		fs := l.Files(level)
		if len(fs) == 0 || fs[len(fs)-1].MaxTXID != f.st.TXID {
			continue
		}
		last := fs[len(fs)-1]
		post, err := postApply(ctx, f.c, last)
		var fe *restore.FileError
		if errors.As(err, &fe) && fe.Damaged {
			f.log.Warn("follow: a file of the replica is damaged; going around it", "file", storage.Describe(last.Level, last.MinTXID, last.MaxTXID), "err", fe.Err)
			continue
		}
		if err != nil {
			return false, err
		}
		return post == 0 || post == f.st.Checksum, nil
	}
	return false, nil
}

// postApply reads file fi of c whole and returns its post-apply checksum
// (zero if it has none); a *restore.FileError with Damaged set when the
// file is damaged rather than unreadable.
func postApply(ctx context.Context, c storage.Client, fi *ltx.FileInfo) (ltx.Checksum, error) {
	damaged := func(err error) error {
		return &restore.FileError{Replica: c.String(), File: fi, Damaged: true, Err: err}
	}
	rc, err := c.OpenLTXFile(ctx, fi.Level, fi.MinTXID, fi.MaxTXID, 0, 0)
	if errors.Is(err, storage.ErrDamaged) {
		return 0, damaged(err)
	}
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	src := &storage.SourceReader{R: storage.ContextReader(ctx, rc)}
	failed := func(err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if src.Err != nil {
			return fmt.Errorf("%s: %w", storage.Describe(fi.Level, fi.MinTXID, fi.MaxTXID), src.Err)
		}
		return damaged(err)
	}
	dec := ltx.NewDecoder(src)
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return 0, failed(err)
	}
	if h := dec.Header(); h.MinTXID != fi.MinTXID || h.MaxTXID != fi.MaxTXID {
		return 0, damaged(fmt.Errorf("its header says TXIDs %s-%s", h.MinTXID, h.MaxTXID))
	}
	buf := make([]byte, dec.Header().PageSize)
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, buf); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return 0, failed(err)
		}
	}
	if err := dec.Close(); err != nil {
		return 0, failed(err)
	}
	return storage.PostApplyChecksum(dec.Header(), dec.Trailer()), nil
}

// chainFrom returns the files of levels 0 to 8 that take a state at TXID
// cur as far as they go: at each step the file that starts at or before
// the next TXID and reaches furthest. Files of one level do not overlap
// and are sorted, so the candidate of a level is the last one starting at
// or before the next TXID.
func chainFrom(l *restore.Listing, cur ltx.TXID) []*ltx.FileInfo {
	var chain []*ltx.FileInfo
	for {
		var best *ltx.FileInfo
		for level := 0; level < storage.SnapshotLevel; level++ {
			fs := l.Files(level)
			i := sort.Search(len(fs), func(i int) bool { return fs[i].MinTXID > cur+1 })
			if i > 0 && fs[i-1].MaxTXID > cur && (best == nil || fs[i-1].MaxTXID > best.MaxTXID) {
				best = fs[i-1]
			}
		}
		if best == nil {
			return chain
		}
		chain = append(chain, best)
		cur = best.MaxTXID
	}
}
