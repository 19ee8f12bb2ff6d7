package capture

import (
	"context"

	"github.com/walship/walship/internal/staging"
)

// resume establishes the page state that matches the staged position, so
// that the next sync can write a delta. It tries, in order: the WAL point
// at, where that state was captured, then the database as it is now. If
// neither reproduces the position's checksum, the database changed in a way
// no delta can describe and the whole database is staged.
func (c *Capturer) resume(ctx context.Context, at *staging.WALPoint) error {
	if c.pos.TXID == 0 {
		return c.writeFull(ctx, "first sync")
	}
	base, err := c.staging.LoadChecksums(c.pos)
	if err != nil {
		c.log.Debug("no usable page checksums for the replicated state", "reason", err)
	}
	for range 3 {
		ok, restarted, err := c.tryResume(at)
		if err != nil || ok {
			return err
		}
		if !restarted {
			break
		}
	}
	// The WAL no longer shows the way from the replicated state; the
	// recorded page checksums of that state, if valid, let writeFull stage
	// only the pages that differ.
	c.state = base
	return c.writeFull(ctx, "the database changed while walship was not running in a way the WAL no longer shows")
}

// tryResume is one attempt of resume. It reads the whole current WAL
// generation first, so that the frames past the replicated position are
// known before anything can restart the log: they become pending, and if
// the log restarts later the pin guarantees they were backfilled, so the
// next sync reads their pages from the database file.
func (c *Capturer) tryResume(at *staging.WALPoint) (resumed, restartedMeanwhile bool, err error) {
	v, err := c.tail.View()
	if err != nil {
		return false, false, err
	}
	if s1, s2, end, ok := v.Generation(); ok && at != nil && s1 == at.Salt1 && s2 == at.Salt2 && at.End <= end {
		// The state is at the point, or, for a point a replica's file
		// names, at a later commit of its generation (see FindState).
		thenEnd, st, err := v.FindState(at.End, c.pos.PostApplyChecksum, c.staging.Spill())
		if err != nil {
			return false, false, err
		}
		if v.Restarted() {
			return false, true, nil
		}
		if thenEnd != 0 {
			c.state = st
			c.tail.ResumeAt(v, thenEnd, st.PageSize(), st.Commit())
			c.log.Info("resuming from the replicated position", "txid", c.pos.TXID.String(), "pending_pages", c.tail.Pending())
			return true, false, nil
		}
	}
	st, err := v.Sums(c.staging.Spill())
	if err != nil {
		return false, false, err
	}
	if v.Restarted() {
		return false, true, nil
	}
	if st.Total() != c.pos.PostApplyChecksum {
		return false, false, nil
	}
	c.state = st
	_, _, end, _ := v.Generation()
	c.tail.ResumeAt(v, end, st.PageSize(), st.Commit())
	c.log.Info("resuming: the database matches the replicated position", "txid", c.pos.TXID.String())
	return true, false, nil
}
