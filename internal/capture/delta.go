package capture

import (
	"context"
	"slices"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/tail"
)

// writeDelta stages the changes ch as the next LTX file.
func (c *Capturer) writeDelta(ctx context.Context, ch tail.Changes) error {
	oldCommit, commit := c.state.Commit(), ch.Commit
	lock := ltx.LockPgno(c.state.PageSize())

	pgnos := make([]uint32, 0, len(ch.Pages))
	for _, pgno := range ch.Pages {
		if pgno <= commit && pgno != lock {
			pgnos = append(pgnos, pgno)
		}
	}
	// Pages that became part of the database without a WAL copy (SQLite
	// allocates by writing, so normally none) are read from the file so the
	// delta alone defines the new state.
	i, _ := slices.BinarySearch(ch.Pages, oldCommit+1)
	for pgno := oldCommit + 1; pgno <= commit; pgno++ {
		for i < len(ch.Pages) && ch.Pages[i] < pgno {
			i++
		}
		if (i == len(ch.Pages) || ch.Pages[i] != pgno) && pgno != lock {
			pgnos = append(pgnos, pgno)
		}
	}
	slices.Sort(pgnos)

	next := c.state.Clone()
	if err := next.Truncate(commit); err != nil {
		return err
	}
	hdr := c.header(c.pos.TXID+1, c.pos.TXID+1, commit, c.pos.PostApplyChecksum)
	ch.SetWALFields(&hdr)
	info, err := c.staging.Write(ctx, 0, hdr, func(enc *ltx.Encoder) error {
		if err := encodePages(enc, ch.Reader, len(pgnos), slices.Values(pgnos), next, nil, nil); err != nil {
			return err
		}
		if ch.Reader.Restarted() {
			return tail.ErrRestarted
		}
		enc.SetPostApplyChecksum(next.Total())
		return nil
	})
	if err != nil {
		return err
	}
	c.tail.Captured(next.Commit())
	c.commit(info, next)
	return nil
}
