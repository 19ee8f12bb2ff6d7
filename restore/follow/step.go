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
// snapshot.
func (f *follower) rebase(ctx context.Context, l *restore.Listing) error {
	plan, err := l.Plan(restore.Target{})
	if err != nil {
		return err
	}
	got, err := fetch(ctx, f.c, f.out, nil, plan.Files)
	if err != nil {
		return err
	}
	if got.state.PageSize != f.st.PageSize {
		got.remove()
		return f.resize(ctx, l)
	}
	return f.commit(ctx, got, plan.Files, plan.TXID(), true)
}

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
// newest file ends with (its post-apply checksum). A file without
// database checksums (Litestream's) cannot say: the copy is taken to
// hold it.
func (f *follower) holdsNewest(ctx context.Context, l *restore.Listing) (bool, error) {
	var last *ltx.FileInfo
	for level := 0; level <= storage.MaxLevel; level++ {
		fs := l.Files(level)
		if len(fs) > 0 && fs[len(fs)-1].MaxTXID == f.st.TXID {
			last = fs[len(fs)-1]
			break
		}
	}
	if last == nil {
		return false, nil
	}
	rc, err := f.c.OpenLTXFile(ctx, last.Level, last.MinTXID, last.MaxTXID, 0, 0)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	dec := ltx.NewDecoder(rc)
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return false, fmt.Errorf("%s: %w", storage.Describe(last.Level, last.MinTXID, last.MaxTXID), err)
	}
	buf := make([]byte, dec.Header().PageSize)
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, buf); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return false, fmt.Errorf("%s: %w", storage.Describe(last.Level, last.MinTXID, last.MaxTXID), err)
		}
	}
	if err := dec.Close(); err != nil {
		return false, fmt.Errorf("%s: %w", storage.Describe(last.Level, last.MinTXID, last.MaxTXID), err)
	}
	post := storage.PostApplyChecksum(dec.Header(), dec.Trailer())
	return post == 0 || post == f.st.Checksum, nil
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
