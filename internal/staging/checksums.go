package staging

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/pagesum"
)

// The checksums file records the checksum of every page of the newest staged
// state, so that when the WAL no longer shows how the database got from
// there to where it is (walship was stopped, or killed, while the
// application's checkpoints restarted the log), the engine can stage just
// the pages that differ instead of a full copy. It is updated in place after
// each staged file and never fsynced: a reader trusts it only if its pages'
// checksums combine to the replicated checksum, which a stale or torn file
// fails.
const (
	checksumMagic      = "WSCK"
	checksumHeaderSize = 32 // magic, version, page size, TXID, checksum, page count
)

type checksums struct {
	path  string
	f     *os.File
	buf   []byte
	stale bool // a load or a write failed: the next save rewrites every entry
}

func openChecksums(dir string) (*checksums, error) {
	path := filepath.Join(dir, "checksums")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &checksums{path: path, f: f}, nil
}

func (c *checksums) Close() error { return c.f.Close() }

// LoadChecksums returns the recorded page checksums if they are those of
// the state at pos. If they are not, the next save rewrites the whole file.
func (d *Dir) LoadChecksums(pos ltx.Pos) (*pagesum.State, error) {
	st, err := loadChecksums(d.sums.f, pos, d.spill)
	if err != nil {
		d.sums.stale = true
	}
	return st, err
}

func loadChecksums(r io.ReaderAt, pos ltx.Pos, sp *pagesum.Spill) (*pagesum.State, error) {
	hdr := make([]byte, checksumHeaderSize)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return nil, err
	}
	if string(hdr[:4]) != checksumMagic || binary.BigEndian.Uint32(hdr[4:]) != 1 {
		return nil, errors.New("not a checksum file")
	}
	pageSize := binary.BigEndian.Uint32(hdr[8:])
	txid := ltx.TXID(binary.BigEndian.Uint64(hdr[12:]))
	total := ltx.Checksum(binary.BigEndian.Uint64(hdr[20:]))
	n := binary.BigEndian.Uint32(hdr[28:])
	if txid != pos.TXID || total != pos.PostApplyChecksum || !ltx.IsValidPageSize(pageSize) {
		return nil, fmt.Errorf("records TXID %s, not %s", txid, pos.TXID)
	}
	// Read in chunks, so that a header claiming billions of pages costs
	// what the file holds, not what it claims.
	st := pagesum.NewSpilled(pageSize, sp)
	b := make([]byte, 64<<10)
	for i := uint32(0); i < n; {
		k := min(n-i, uint32(len(b)/8))
		if _, err := io.ReadFull(io.NewSectionReader(r, checksumHeaderSize+int64(i)*8, int64(k)*8), b[:k*8]); err != nil {
			return nil, err
		}
		for j := range k {
			if err := st.Set(i+j+1, ltx.Checksum(binary.BigEndian.Uint64(b[j*8:]))); err != nil {
				return nil, err
			}
		}
		i += k
	}
	if st.Total() != total {
		return nil, errors.New("page checksums do not add up to the recorded checksum")
	}
	return st, nil
}

// SaveChecksums records next as the state at txid, writing only the entries
// that differ from prev (nil: write them all). The header goes last, so a
// torn update fails to load.
func (d *Dir) SaveChecksums(txid ltx.TXID, prev, next *pagesum.State) error {
	c := d.sums
	if c.stale {
		prev = nil
	}
	// Invalidate first: between here and the new header the file is mixed.
	if _, err := c.f.WriteAt(make([]byte, 4), 0); err != nil {
		c.stale = true
		return err
	}
	// Write each run of changed entries with one call per run, which is
	// at most pagesum.ChunkPages entries: the buffer kept between saves
	// stays small whatever the database's size.
	err := pagesum.Changed(prev, next, func(pgno uint32, sums []ltx.Checksum) error {
		c.buf = c.buf[:0]
		for _, s := range sums {
			c.buf = binary.BigEndian.AppendUint64(c.buf, uint64(s))
		}
		_, err := c.f.WriteAt(c.buf, checksumHeaderSize+int64(pgno-1)*8)
		return err
	})
	if err != nil {
		c.stale = true
		return err
	}
	if err := c.f.Truncate(checksumHeaderSize + int64(next.Commit())*8); err != nil {
		c.stale = true
		return err
	}
	hdr := make([]byte, checksumHeaderSize)
	copy(hdr, checksumMagic)
	binary.BigEndian.PutUint32(hdr[4:], 1)
	binary.BigEndian.PutUint32(hdr[8:], next.PageSize())
	binary.BigEndian.PutUint64(hdr[12:], uint64(txid))
	binary.BigEndian.PutUint64(hdr[20:], uint64(next.Total()))
	binary.BigEndian.PutUint32(hdr[28:], next.Commit())
	if _, err := c.f.WriteAt(hdr, 0); err != nil {
		c.stale = true
		return err
	}
	c.stale = false
	return nil
}
