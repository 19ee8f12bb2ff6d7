package tail

import (
	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/crc64iso"
	"github.com/walship/walship/internal/pagesum"
	"github.com/walship/walship/internal/wal"
)

// FindState returns the first state of the view, at WAL offset from or at a
// later commit of its generation, whose database checksum is want: the
// offset past that commit and the checksum of every page then (spilled to
// sp, as View.Sums). It returns
// a zero offset when no state of the view's generation from there on is
// that one. The database file is read once and each frame past from once.
//
// A replica file written for Litestream names the start of its WAL
// generation rather than where it was captured (storage.ToLitestream): the
// state it ends with is then found by its checksum. The states compared are
// those Until would give, so the one found is the one a resume at that
// offset reads.
func (v *View) FindState(from int64, want ltx.Checksum, sp *pagesum.Spill) (end int64, st *pagesum.State, err error) {
	base, err := v.Until(from)
	if err != nil {
		return 0, nil, err
	}
	if st, err = base.Sums(sp); err != nil {
		return 0, nil, err
	}
	_, _, end, _ = base.Generation()
	if st.Total() == want {
		return max(end, wal.HeaderSize), st, nil
	}
	if v.scan == nil || v.scan.Header.PageSize != st.PageSize() {
		return 0, nil, nil
	}

	// The state at each later commit: the newest frame of each page up to
	// it. A page the database grows by comes in a frame of the commit
	// (SQLite writes each); one that did not would count as unknown, and
	// no state would be found, never a wrong one.
	type page struct {
		pgno uint32
		sum  ltx.Checksum
	}
	var txn []page
	buf := make([]byte, st.PageSize())
	h := crc64iso.New()
	for _, f := range v.scan.Frames {
		if f.Offset < end {
			continue
		}
		if _, err := v.wal.ReadAt(buf, f.DataOffset()); err != nil {
			return 0, nil, err
		}
		txn = append(txn, page{f.Pgno, ltx.ChecksumPageWithHasher(h, f.Pgno, buf)})
		if f.Commit == 0 {
			continue
		}
		if err := st.Truncate(f.Commit); err != nil {
			return 0, nil, err
		}
		for _, p := range txn {
			if p.pgno <= f.Commit {
				if err := st.Set(p.pgno, p.sum); err != nil {
					return 0, nil, err
				}
			}
		}
		for st.Commit() < f.Commit {
			if err := st.Set(st.Commit()+1, 0); err != nil { // unknown
				return 0, nil, err
			}
		}
		txn = txn[:0]
		if st.Total() == want {
			return f.Offset + v.scan.Header.FrameSize(), st, nil
		}
	}
	return 0, nil, nil
}
