package tail

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/wal"
)

// sqliteHeader is the first 16 bytes of every SQLite database file.
const sqliteHeader = "SQLite format 3\x00"

// dbHeader is what the tail needs from a database file's first 100 bytes.
type dbHeader struct {
	pageSize uint32
	nPages   uint32 // in-header database size; 0 when SQLite would not trust it
}

// readDBHeader reads and checks the header of the database file f.
func readDBHeader(f io.ReaderAt, name string) (dbHeader, error) {
	b := make([]byte, 100)
	if n, err := f.ReadAt(b, 0); n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			return dbHeader{}, fmt.Errorf("%s is not a SQLite database: the file is only %d bytes (a database has a 100-byte header)", name, n)
		}
		return dbHeader{}, fmt.Errorf("read database header of %s: %w", name, err)
	}
	if string(b[:16]) != sqliteHeader {
		return dbHeader{}, fmt.Errorf("%s is not a SQLite database: it does not start with %q; check the path", name, sqliteHeader[:15])
	}
	h := dbHeader{pageSize: uint32(binary.BigEndian.Uint16(b[16:]))}
	if h.pageSize == 1 {
		h.pageSize = 65536
	}
	if !ltx.IsValidPageSize(h.pageSize) {
		return dbHeader{}, fmt.Errorf("%s has an invalid page size %d in its header", name, h.pageSize)
	}
	// The in-header size is valid only when the change counter matches the
	// version-valid-for number (SQLite's own rule).
	if binary.BigEndian.Uint32(b[24:]) == binary.BigEndian.Uint32(b[92:]) {
		h.nPages = binary.BigEndian.Uint32(b[28:])
	}
	return h, nil
}

// dbPageCount returns the size in pages of the database file f when no WAL
// frame says otherwise.
func dbPageCount(f *os.File, hdr dbHeader) (uint32, error) {
	if hdr.nPages != 0 {
		return hdr.nPages, nil
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return uint32(fi.Size() / int64(hdr.pageSize)), nil
}

// PageReader reads pages of the logical database: the newest committed copy
// in the WAL (up to some position) if there is one, else the database file.
type PageReader struct {
	db, wal  *os.File // wal is nil when there is no WAL file
	pageSize uint32
	inWAL    map[uint32]int64 // pgno -> offset of the page data in the WAL
	// walHdr is the header of the generation inWAL points into, if any. A
	// read that fails because the log restarted (or was truncated) since
	// then returns ErrRestarted, which the caller retries.
	walHdr *wal.Header

	// A reader of every page in order (a full copy) reads the database
	// file a megabyte at a time into ahead, which holds aheadN pages from
	// aheadFirst.
	sequential bool
	ahead      []byte
	aheadFirst uint32
	aheadN     uint32
}

// readAheadBytes is how much of the database file a sequential PageReader
// reads at once.
const readAheadBytes = 1 << 20

// aheadPages is how many pages the read-ahead buffer holds: a megabyte's
// worth, or the pages the file has from pgno on if fewer. Most databases
// of a process that replicates many are a few pages; a megabyte each time
// one is copied whole was most of such a process's garbage. A file that
// grows later is still read right, a buffer at a time.
func (r *PageReader) aheadPages(pgno uint32) int {
	n := max(1, readAheadBytes/int(r.pageSize))
	if fi, err := r.db.Stat(); err == nil {
		left := fi.Size()/int64(r.pageSize) - int64(pgno-1)
		n = int(max(1, min(int64(n), left)))
	}
	return n
}

// PageSize returns the size of the pages the reader reads.
func (r *PageReader) PageSize() uint32 { return r.pageSize }

// ReadPage fills buf with page pgno. Pages past the end of the database file
// read as zeros, as SQLite reads them.
func (r *PageReader) ReadPage(pgno uint32, buf []byte) error {
	if off, ok := r.inWAL[pgno]; ok {
		if _, err := r.wal.ReadAt(buf, off); err != nil {
			if r.walHdr != nil && walRestarted(r.wal, *r.walHdr) {
				return ErrRestarted
			}
			return fmt.Errorf("read page %d from wal: %w", pgno, err)
		}
		return nil
	}
	if r.sequential {
		if pgno < r.aheadFirst || pgno >= r.aheadFirst+r.aheadN {
			if r.ahead == nil {
				r.ahead = make([]byte, r.aheadPages(pgno)*int(r.pageSize))
			}
			n, err := r.db.ReadAt(r.ahead, int64(pgno-1)*int64(r.pageSize))
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read page %d from database: %w", pgno, err)
			}
			r.aheadFirst, r.aheadN = pgno, uint32(n/int(r.pageSize))
		}
		if pgno < r.aheadFirst+r.aheadN {
			i := int(pgno-r.aheadFirst) * int(r.pageSize)
			copy(buf, r.ahead[i:i+int(r.pageSize)])
			return nil
		}
		// Past the file's last whole page: read it alone below.
	}
	n, err := r.db.ReadAt(buf, int64(pgno-1)*int64(r.pageSize))
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read page %d from database: %w", pgno, err)
	}
	clear(buf[n:])
	return nil
}

// Restarted reports whether the log restarted since the reader's WAL
// generation was read: then pages it read from the log may be stale.
func (r *PageReader) Restarted() bool {
	return r.walHdr != nil && r.wal != nil && walRestarted(r.wal, *r.walHdr)
}

// walRestarted reports whether the log f no longer holds the generation that
// hdr heads. Frames are overwritten only by a restart, which changes the
// salts: while they are unchanged, every page read from the log was its
// committed copy.
func walRestarted(f io.ReaderAt, hdr wal.Header) bool {
	h, err := wal.ReadHeader(f)
	return err != nil || h.Salt1 != hdr.Salt1 || h.Salt2 != hdr.Salt2
}
