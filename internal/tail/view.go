package tail

import (
	"errors"
	"fmt"
	"os"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/crc64iso"
	"github.com/walship/walship/internal/pagesum"
	"github.com/walship/walship/internal/wal"
)

// A View is the database as of some point of its WAL: the committed frames
// of the log's current generation up to that point, over the database file.
// It is valid until the tail is next used.
type View struct {
	path string    // the database's, for messages
	db   *os.File  // the database file
	wal  *os.File  // nil when there is no WAL file
	scan *wal.Scan // nil when the WAL has no header
}

// View returns the database as of the WAL's current end: every committed
// frame of the log's current generation over the database file.
func (t *Tail) View() (*View, error) {
	v := &View{path: t.path, db: t.dbFile}
	f, err := t.openWAL()
	if err != nil || f == nil {
		return v, err
	}
	v.wal = f
	hdr, err := wal.ReadHeader(f)
	if errors.Is(err, wal.ErrNoHeader) {
		return v, nil
	} else if err != nil {
		return nil, fmt.Errorf("wal %s: %w", t.walPath, err)
	}
	if v.scan, err = wal.Read(f, hdr, wal.Start(hdr), 0); err != nil {
		return nil, fmt.Errorf("wal %s: %w", t.walPath, err)
	}
	return v, nil
}

// CapturedState returns the database as of the last capture, or of the last
// Scan if pages are pending: the WAL's frames up to where it was read, over
// the database file. If the log restarted since, the pin guarantees that all
// of it was backfilled and nothing written since: the database file alone
// holds that state.
func (t *Tail) CapturedState() (*View, error) {
	v := &View{path: t.path, db: t.dbFile}
	if t.walPos.Offset == 0 {
		return v, nil
	}
	walf, err := t.openWAL()
	if err != nil || walf == nil {
		return v, err
	}
	v.wal = walf
	if hdr, err := wal.ReadHeader(walf); err == nil && t.walPos.SameGeneration(hdr) {
		if v.scan, err = wal.Read(walf, hdr, wal.Start(hdr), t.walPos.Offset); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Until returns the view as of WAL offset end: its frames before end.
func (v *View) Until(end int64) (*View, error) {
	if v.scan == nil {
		return v, nil
	}
	at, err := wal.Read(v.wal, v.scan.Header, wal.Start(v.scan.Header), end)
	if err != nil {
		return nil, err
	}
	return &View{path: v.path, db: v.db, wal: v.wal, scan: at}, nil
}

// Generation returns the salts of the view's WAL generation and the offset
// past its last committed frame; ok is false when it has no WAL.
func (v *View) Generation() (salt1, salt2 uint32, end int64, ok bool) {
	if v.scan == nil {
		return 0, 0, 0, false
	}
	return v.scan.Header.Salt1, v.scan.Header.Salt2, v.scan.End.Offset, true
}

// Layout returns the page size and the database size in pages of the view.
func (v *View) Layout() (pageSize, commit uint32, err error) {
	hdr, err := readDBHeader(v.db, v.path)
	if err != nil {
		return 0, 0, err
	}
	if v.scan != nil && len(v.scan.Frames) > 0 {
		// The WAL wins: SQLite reads page 1 from it.
		return v.scan.Header.PageSize, v.scan.Commit, nil
	}
	commit, err = dbPageCount(v.db, hdr)
	return hdr.pageSize, commit, err
}

// Pages returns a reader of the view's pages of pageSize bytes. A
// sequential reader reads the database file a megabyte at a time, for
// callers that read every page in order.
func (v *View) Pages(pageSize uint32, sequential bool) *PageReader {
	r := &PageReader{db: v.db, wal: v.wal, pageSize: pageSize, sequential: sequential}
	var frames []wal.Frame
	if v.scan != nil {
		r.walHdr = &v.scan.Header
		frames = v.scan.Frames
	}
	r.inWAL = make(map[uint32]int64, len(frames))
	for _, f := range frames {
		r.inWAL[f.Pgno] = f.DataOffset()
	}
	return r
}

// Sums returns the checksum of every page of the view, spilled to sp (nil:
// held in memory, 8 bytes a page).
func (v *View) Sums(sp *pagesum.Spill) (*pagesum.State, error) {
	pageSize, commit, err := v.Layout()
	if err != nil {
		return nil, err
	}
	pr := v.Pages(pageSize, true)
	st := pagesum.NewSpilled(pageSize, sp)
	buf := make([]byte, pageSize)
	h := crc64iso.New()
	lock := ltx.LockPgno(pageSize)
	for pgno := uint32(1); pgno <= commit; pgno++ {
		var c ltx.Checksum // the lock page's counts as zero
		if pgno != lock {
			if err := pr.ReadPage(pgno, buf); err != nil {
				return nil, err
			}
			c = ltx.ChecksumPageWithHasher(h, pgno, buf)
		}
		if err := st.Set(pgno, c); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// Restarted reports whether the log restarted since the view was taken,
// which makes pages read from it suspect.
func (v *View) Restarted() bool {
	return v.scan != nil && walRestarted(v.wal, v.scan.Header)
}

// SetWALFields records in an LTX header which WAL frames a file holding the
// view was read from.
func (v *View) SetWALFields(h *ltx.Header) {
	if v.scan != nil && len(v.scan.Frames) > 0 {
		h.WALOffset, h.WALSize = wal.HeaderSize, v.scan.End.Offset-wal.HeaderSize
		h.WALSalt1, h.WALSalt2 = v.scan.Header.Salt1, v.scan.Header.Salt2
	}
}
