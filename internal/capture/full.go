package capture

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/pagesum"
	"github.com/walship/walship/internal/tail"
	"github.com/walship/walship/storage"
)

// writeFull stages the whole database as the next file: the pages that
// differ from the staged state when its page checksums are known, else a
// full copy (a snapshot when nothing was staged before; otherwise a level-0
// file holding every page, so the TXID chain stays contiguous, followed by
// a snapshot). It reads the database under the pin, so backfill cannot
// change a page under it.
func (c *Capturer) writeFull(ctx context.Context, why string) error {
	c.setFull(why)
	if err := c.tail.EnsurePinned(ctx); err != nil {
		return err
	}
	v, err := c.tail.View()
	if err != nil {
		return err
	}
	if c.pos.TXID > 0 && c.state != nil && c.state.Total() == c.pos.PostApplyChecksum {
		info, next, changed, err := c.stageDiff(ctx, v)
		if err == nil {
			c.tail.CapturedView(v, next.PageSize(), next.Commit())
			c.commit(info, next)
			c.log.Info("staged the pages that differ from the replicated state", "reason", why, "txid", info.MaxTXID.String(), "pages", changed, "size", info.Size)
			return nil
		}
		if !errors.Is(err, errNoDiff) {
			return err
		}
	}
	if c.pos.TXID > 0 {
		c.log.Warn("writing a full copy of the database", "reason", why)
	}
	minTXID, pre := c.pos.TXID+1, c.pos.PostApplyChecksum
	if c.pos.TXID == 0 || c.pos.PostApplyChecksum == 0 {
		// Nothing to chain onto: the first sync, or a history that starts
		// apart from the replica's (a takeover), whose position has a
		// TXID and no state. A snapshot, then.
		minTXID, pre = 1, 0
	}
	info, next, err := c.stageCopy(ctx, 0, minTXID, c.pos.TXID+1, pre, v)
	if err != nil {
		return err
	}
	c.tail.CapturedView(v, next.PageSize(), next.Commit())
	c.commit(info, next)
	c.log.Info("staged a full copy of the database", "txid", info.MaxTXID.String(), "pages", next.Commit(), "size", info.Size)
	if info.MinTXID == 1 {
		c.lastSnapshot = info.MaxTXID
		return nil // it is a snapshot already, shipped to both levels
	}
	// Restores after this point start from a snapshot rather than replay the
	// chain through a full copy (whose page size may even differ).
	if err := c.stageSnapshot(ctx); err != nil {
		c.log.Warn("cannot stage a snapshot after the full copy; the next request will retry", "error", err)
		c.wantSnapshot = true
	}
	return nil
}

// stageDiff stages, as the next file, the pages in which the view v differs
// from the staged state: it compares the checksum of every page, then reads
// and encodes the pages that differ.
func (c *Capturer) stageDiff(ctx context.Context, v *tail.View) (*ltx.FileInfo, *pagesum.State, int, error) {
	cur, err := v.Sums(c.staging.Spill())
	if err != nil {
		return nil, nil, 0, err
	}
	if cur.PageSize() != c.state.PageSize() {
		return nil, nil, 0, errNoDiff
	}
	lock := ltx.LockPgno(cur.PageSize())
	var pgnos []uint32
	for pgno := uint32(1); pgno <= cur.Commit(); pgno++ {
		if pgno == lock {
			continue
		}
		was, err := c.state.Sum(pgno)
		if err != nil {
			return nil, nil, 0, err
		}
		is, err := cur.Sum(pgno)
		if err != nil {
			return nil, nil, 0, err
		}
		if pgno > c.state.Commit() || was != is {
			pgnos = append(pgnos, pgno)
		}
	}
	pr := v.Pages(cur.PageSize(), false)
	next := c.state.Clone()
	if err := next.Truncate(cur.Commit()); err != nil {
		return nil, nil, 0, err
	}
	hdr := c.header(c.pos.TXID+1, c.pos.TXID+1, cur.Commit(), c.pos.PostApplyChecksum)
	v.SetWALFields(&hdr)
	info, err := c.staging.Write(ctx, 0, hdr, func(enc *ltx.Encoder) error {
		if err := encodePages(enc, pr, len(pgnos), slices.Values(pgnos), next, cur, c.copying(len(pgnos), cur.PageSize())); err != nil {
			return err
		}
		if next.Total() != cur.Total() {
			return fmt.Errorf("the diff does not reproduce the database's checksum")
		}
		if v.Restarted() {
			return tail.ErrRestarted
		}
		enc.SetPostApplyChecksum(next.Total())
		return nil
	})
	if err != nil {
		return nil, nil, 0, err
	}
	return info, next, len(pgnos), nil
}

// snapshot syncs, then stages a snapshot of the state it reached. It
// reports whether the sync staged a file, whatever happened after.
func (c *Capturer) snapshot(ctx context.Context) (bool, error) {
	staged, err := c.sync(ctx)
	if err != nil {
		return staged, err
	}
	return staged, c.stageSnapshot(ctx)
}

// stageSnapshot stages a level-9 snapshot of the state at the staged
// position, read from the WAL up to where it was captured and the database
// file, and checks it against that position before it can be uploaded.
func (c *Capturer) stageSnapshot(ctx context.Context) error {
	if c.pos.TXID == 0 {
		return nil
	}
	v, err := c.tail.CapturedState()
	if err != nil {
		return err
	}
	info, st, err := c.stageCopy(ctx, storage.SnapshotLevel, 1, c.pos.TXID, 0, v)
	if err != nil {
		return err
	}
	if st.Total() != c.pos.PostApplyChecksum {
		// Never publish a snapshot that differs from the chain it stands for.
		c.staging.DeleteLTXFiles(ctx, []*ltx.FileInfo{info})
		c.setFull("a snapshot did not match the staged checksum")
		return fmt.Errorf("snapshot at TXID %s does not match the staged checksum; a full copy follows", c.pos.TXID)
	}
	c.lastSnapshot = max(c.lastSnapshot, info.MaxTXID)
	// An older staged snapshot that some replica still lacks is of no more
	// use to it than this one.
	if staged, err := c.staging.LTXFiles(ctx, storage.SnapshotLevel); err == nil {
		var older []*ltx.FileInfo
		for _, f := range staged {
			if f.MaxTXID < info.MaxTXID {
				older = append(older, f)
			}
		}
		if err := c.staging.DeleteLTXFiles(ctx, older); err != nil {
			c.log.Warn("cannot remove older staged snapshots", "error", err)
		}
	}
	c.log.Info("staged a snapshot", "txid", info.MaxTXID.String(), "size", info.Size)
	return nil
}

// stageCopy stages every page of the view v as one file.
func (c *Capturer) stageCopy(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, pre ltx.Checksum, v *tail.View) (*ltx.FileInfo, *pagesum.State, error) {
	pageSize, commit, err := v.Layout()
	if err != nil {
		return nil, nil, err
	}
	pr := v.Pages(pageSize, true)
	next := pagesum.NewSpilled(pageSize, c.staging.Spill())
	hdr := ltx.Header{
		Version:          ltx.Version,
		PageSize:         pageSize,
		Commit:           commit,
		MinTXID:          minTXID,
		MaxTXID:          maxTXID,
		Timestamp:        time.Now().UnixMilli(),
		PreApplyChecksum: pre,
	}
	v.SetWALFields(&hdr)
	// Every page but the lock page, which is never written: its checksum
	// counts as zero, as next counts a page it was not told of. A list of
	// the pages would cost 4 bytes a page.
	lock := ltx.LockPgno(pageSize)
	n := int(commit)
	if lock <= commit {
		n--
	}
	pgnos := func(yield func(uint32) bool) {
		for pgno := uint32(1); pgno <= commit; pgno++ {
			if pgno != lock && !yield(pgno) {
				return
			}
		}
	}
	info, err := c.staging.Write(ctx, level, hdr, func(enc *ltx.Encoder) error {
		if err := encodePages(enc, pr, n, pgnos, next, nil, c.copying(n, pageSize)); err != nil {
			return err
		}
		if next.Commit() < commit { // the last page is the lock page
			if err := next.Set(commit, 0); err != nil {
				return err
			}
		}
		if v.Restarted() {
			return errors.New("the wal restarted while the database was being copied; will retry")
		}
		enc.SetPostApplyChecksum(next.Total())
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return info, next, nil
}
