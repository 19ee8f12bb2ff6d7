package walship

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/wal"
)

// sqliteHeader is the first 16 bytes of every SQLite database file.
const sqliteHeader = "SQLite format 3\x00"

// dbHeader is what the engine needs from a database file's first 100 bytes.
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

// pageState is the checksum of every page of one state of the database, the
// state after a given WAL position. It lets each delta carry exact pre- and
// post-apply checksums without rereading the database.
type pageState struct {
	pageSize uint32
	sums     []ltx.Checksum // sums[pgno-1]; zero for the lock page
	total    ltx.Checksum   // rolling checksum: ChecksumFlag | xor of sums
}

func (s *pageState) commit() uint32 { return uint32(len(s.sums)) }

// set records the checksum of page pgno, growing the state if needed.
func (s *pageState) set(pgno uint32, c ltx.Checksum) {
	for uint32(len(s.sums)) < pgno {
		s.sums = append(s.sums, 0)
	}
	s.total = ltx.ChecksumFlag | (s.total ^ s.sums[pgno-1] ^ c)
	s.sums[pgno-1] = c
}

// truncate drops the pages above commit.
func (s *pageState) truncate(commit uint32) {
	for pgno := uint32(len(s.sums)); pgno > commit; pgno-- {
		s.total = ltx.ChecksumFlag | (s.total ^ s.sums[pgno-1])
	}
	if commit < uint32(len(s.sums)) {
		s.sums = slices.Clip(s.sums[:commit])
	}
}

func (s *pageState) clone() *pageState {
	return &pageState{pageSize: s.pageSize, sums: slices.Clone(s.sums), total: s.total}
}

// pageReader reads pages of the logical database: the newest committed copy in
// the WAL (up to some position) if there is one, else the database file.
type pageReader struct {
	db, wal  io.ReaderAt
	pageSize uint32
	inWAL    map[uint32]int64 // pgno -> offset of the page data in the WAL
	// walHdr is the header of the generation inWAL points into, if any. A
	// read that fails because the log restarted (or was truncated) since
	// then returns errRestarted, which the caller retries.
	walHdr *wal.Header

	// A reader of every page in order (a full copy) reads the database
	// file a megabyte at a time into ahead, which holds aheadN pages from
	// aheadFirst.
	sequential bool
	ahead      []byte
	aheadFirst uint32
	aheadN     uint32
}

// readAheadBytes is how much of the database file a sequential pageReader
// reads at once.
const readAheadBytes = 1 << 20

func newPageReader(db, walf io.ReaderAt, pageSize uint32, scan *wal.Scan, frames []wal.Frame) *pageReader {
	r := &pageReader{db: db, wal: walf, pageSize: pageSize, inWAL: make(map[uint32]int64, len(frames))}
	if scan != nil {
		r.walHdr = &scan.Header
	}
	for _, f := range frames {
		r.inWAL[f.Pgno] = f.DataOffset()
	}
	return r
}

// read fills buf with page pgno. Pages past the end of the database file read
// as zeros, as SQLite reads them.
func (r *pageReader) read(pgno uint32, buf []byte) error {
	if off, ok := r.inWAL[pgno]; ok {
		if _, err := r.wal.ReadAt(buf, off); err != nil {
			if r.walHdr != nil && walRestarted(r.wal, *r.walHdr) {
				return errRestarted
			}
			return fmt.Errorf("read page %d from wal: %w", pgno, err)
		}
		return nil
	}
	if r.sequential {
		if pgno < r.aheadFirst || pgno >= r.aheadFirst+r.aheadN {
			if r.ahead == nil {
				r.ahead = make([]byte, max(1, readAheadBytes/int(r.pageSize))*int(r.pageSize))
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

// encodePages reads each page of pgnos (ascending), records its checksum in
// next and encodes it. If want is not nil, each page must have the checksum
// want[pgno-1], or the page changed since want was computed and errRestarted
// is returned.
func encodePages(enc *ltx.Encoder, pr *pageReader, pgnos []uint32, next *pageState, want []ltx.Checksum) error {
	if len(pgnos) >= pipelinePages {
		return encodePagesPipelined(enc, pr, pgnos, next, want)
	}
	buf := make([]byte, pr.pageSize)
	h := ltx.NewHasher()
	for _, pgno := range pgnos {
		if err := pr.read(pgno, buf); err != nil {
			return err
		}
		c := ltx.ChecksumPageWithHasher(h, pgno, buf)
		if want != nil && c != want[pgno-1] {
			return errRestarted
		}
		next.set(pgno, c)
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, buf); err != nil {
			return err
		}
	}
	return nil
}

// Past pipelinePages pages (a full copy, or a large transaction), pages are
// read and checksummed in one goroutine while another compresses and writes
// them, batchPages at a time, in at most three batches' worth of memory.
const (
	pipelinePages = 1024
	batchPages    = 64
)

type pageBatch struct {
	pgnos []uint32
	data  []byte
	sums  []ltx.Checksum
	err   error
}

func encodePagesPipelined(enc *ltx.Encoder, pr *pageReader, pgnos []uint32, next *pageState, want []ltx.Checksum) error {
	ps := int(pr.pageSize)
	free := make(chan *pageBatch, 3)
	for range cap(free) {
		free <- &pageBatch{data: make([]byte, batchPages*ps), sums: make([]ltx.Checksum, batchPages)}
	}
	full := make(chan *pageBatch, cap(free))
	stop := make(chan struct{})
	go func() {
		defer close(full)
		h := ltx.NewHasher()
		for i := 0; i < len(pgnos); i += batchPages {
			var b *pageBatch
			select {
			case b = <-free:
			case <-stop:
				return
			}
			b.pgnos = pgnos[i:min(i+batchPages, len(pgnos))]
			for j, pgno := range b.pgnos {
				page := b.data[j*ps : (j+1)*ps]
				if b.err = pr.read(pgno, page); b.err != nil {
					break
				}
				b.sums[j] = ltx.ChecksumPageWithHasher(h, pgno, page)
			}
			select {
			case full <- b:
			case <-stop:
				return
			}
			if b.err != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		for range full {
		}
	}()
	for b := range full {
		if b.err != nil {
			return b.err
		}
		for j, pgno := range b.pgnos {
			c := b.sums[j]
			if want != nil && c != want[pgno-1] {
				return errRestarted
			}
			next.set(pgno, c)
			if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, b.data[j*ps:(j+1)*ps]); err != nil {
				return err
			}
		}
		free <- b
	}
	return nil
}

// walRestarted reports whether the log f no longer holds the generation that
// hdr heads. Frames are overwritten only by a restart, which changes the
// salts: while they are unchanged, every page read from the log was its
// committed copy.
func walRestarted(f io.ReaderAt, hdr wal.Header) bool {
	h, err := wal.ReadHeader(f)
	return err != nil || h.Salt1 != hdr.Salt1 || h.Salt2 != hdr.Salt2
}
