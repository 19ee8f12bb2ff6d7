package tail

import (
	"errors"
	"fmt"
	"slices"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/wal"
)

// Scan reads the WAL's committed frames past what was read before: it
// records the newest copy of each page and marks the page pending. When the
// log has restarted, it continues from the new generation's first frame: the
// pin guarantees that every frame of the old one was read and backfilled
// (docs/design.md, "Pin the WAL"), so pending pages missing from the new
// generation are current in the database file.
func (t *Tail) Scan() error {
	if t.dbFile == nil || t.pinTx == nil || t.replaced() {
		return ErrNotPinned
	}
	f, err := t.openWAL()
	if err != nil || f == nil {
		return err
	}
	hdr, err := wal.ReadHeader(f)
	if errors.Is(err, wal.ErrNoHeader) {
		// Empty or truncated: nothing new until the next writer. The pin
		// lets the log be truncated only once every frame was read and
		// backfilled, so pending pages are current in the database file:
		// forget where they were in the log.
		if t.walPos.Offset != 0 {
			clear(t.inWAL)
			t.walPos, t.walPages, t.ckptTried = wal.Position{}, 0, 0
			t.deltaStart = wal.HeaderSize
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("wal %s: %w", t.walPath, err)
	}
	if hdr.PageSize != t.pageSize {
		t.lose("the page size changed")
		return fmt.Errorf("wal %s: page size %d differs from the database's %d; a full copy follows", t.walPath, hdr.PageSize, t.pageSize)
	}
	from := t.walPos
	if from.Offset == 0 || !from.SameGeneration(hdr) {
		if from.Offset != 0 {
			t.log.Debug("wal restarted", "salt1", hdr.Salt1)
		}
		from = wal.Start(hdr)
		clear(t.inWAL)
		t.deltaStart = wal.HeaderSize
		t.ckptTried = 0
	}
	scan, err := wal.Read(f, hdr, from, 0)
	if err != nil {
		return fmt.Errorf("wal %s: %w", t.walPath, err)
	}
	for _, fr := range scan.Frames {
		t.inWAL[fr.Pgno] = fr.DataOffset()
		t.pending[fr.Pgno] = struct{}{}
		if fr.Commit != 0 {
			t.commit = fr.Commit
		}
	}
	t.walPos = scan.End
	t.walHdr = hdr
	t.walPages = int((scan.End.Offset - wal.HeaderSize) / hdr.FrameSize())
	return nil
}

// Changes are the pages committed since the last capture, as far as Scan
// has read the WAL.
type Changes struct {
	// Pages are the pages written since the last capture, ascending.
	Pages []uint32
	// Commit is the database size in pages after the newest commit read.
	Commit uint32
	// Reader reads the pages as they are after that commit.
	Reader *PageReader

	seg segment
}

// segment is the run of WAL frames a capture was read from.
type segment struct {
	hdr         wal.Header
	offset, end int64 // end is 0 when the WAL was not read
}

// SetWALFields records in an LTX header which WAL frames the changes were
// read from.
func (c Changes) SetWALFields(h *ltx.Header) {
	if c.seg.end != 0 {
		h.WALOffset, h.WALSize = c.seg.offset, c.seg.end-c.seg.offset
		h.WALSalt1, h.WALSalt2 = c.seg.hdr.Salt1, c.seg.hdr.Salt2
	}
}

// Changes returns the pages committed since the last capture, read up to
// where Scan stopped.
func (t *Tail) Changes() Changes {
	pages := make([]uint32, 0, len(t.pending))
	for pgno := range t.pending {
		pages = append(pages, pgno)
	}
	slices.Sort(pages)
	r := &PageReader{db: t.dbFile, wal: t.walFile, pageSize: t.pageSize, inWAL: t.inWAL}
	c := Changes{Pages: pages, Commit: t.commit, Reader: r}
	if t.walPos.Offset != 0 {
		hdr := t.walHdr
		r.walHdr = &hdr
		c.seg = segment{hdr: hdr, offset: t.deltaStart, end: t.walPos.Offset}
	}
	return c
}

// Captured records that the changes returned by Changes were captured, as a
// state of commit pages: the next Changes begin after them.
func (t *Tail) Captured(commit uint32) {
	t.commit = commit
	clear(t.pending)
	t.deltaStart = t.walPos.Offset
	t.broken = ""
}

// CapturedView records that the whole database as of v was captured, as a
// state of commit pages of pageSize bytes: the next Changes begin after v.
func (t *Tail) CapturedView(v *View, pageSize, commit uint32) {
	clear(t.inWAL)
	t.walPos = wal.Position{}
	if v.scan != nil {
		t.walPos, t.walHdr = v.scan.End, v.scan.Header
		for _, f := range v.scan.Frames {
			t.inWAL[f.Pgno] = f.DataOffset()
		}
	}
	t.pageSize = pageSize
	t.Captured(commit)
}

// ResumeAt makes the state as of the WAL offset end of the view v (a state
// of commit pages of pageSize bytes) the last capture: the frames of v past
// end are pending. With a view without WAL frames, the last capture is the
// database file.
func (t *Tail) ResumeAt(v *View, end int64, pageSize, commit uint32) {
	clear(t.inWAL)
	clear(t.pending)
	t.pageSize, t.commit = pageSize, commit
	if v.scan == nil {
		t.walPos = wal.Position{}
		return
	}
	t.walHdr, t.deltaStart = v.scan.Header, end
	for _, f := range v.scan.Frames {
		if f.Offset >= end {
			t.inWAL[f.Pgno] = f.DataOffset()
			t.pending[f.Pgno] = struct{}{}
			if f.Commit != 0 {
				t.commit = f.Commit
			}
		}
	}
	t.walPos = v.scan.End
}

// Mark returns where in the WAL the last capture ends: the salts of its
// generation and the offset past its last frame; a zero offset when it was
// not read from the WAL.
func (t *Tail) Mark() (salt1, salt2 uint32, end int64) {
	if t.walPos.Offset == 0 {
		return 0, 0, 0
	}
	return t.walHdr.Salt1, t.walHdr.Salt2, t.walPos.Offset
}

// Pending reports how many pages changed since the last capture.
func (t *Tail) Pending() int { return len(t.pending) }
