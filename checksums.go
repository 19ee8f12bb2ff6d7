package walship

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/superfly/ltx"
)

// The checksum file records the checksum of every page of the newest staged
// state, so that when the WAL no longer shows how the database got from there
// to where it is (walship was stopped, or killed, while the application's
// checkpoints restarted the log), the engine can stage just the pages that
// differ instead of a full copy. It is updated in place after each staged
// file and never fsynced: a reader trusts it only if its pages' checksums
// combine to the replicated checksum, which a stale or torn file fails.
const (
	checksumMagic      = "WSCK"
	checksumHeaderSize = 32 // magic, version, page size, TXID, checksum, page count
)

type checksumFile struct {
	path  string
	f     *os.File
	buf   []byte
	stale bool // a write failed: the next save rewrites every entry
}

func openChecksumFile(dir string) (*checksumFile, error) {
	path := filepath.Join(dir, "checksums")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &checksumFile{path: path, f: f}, nil
}

func (c *checksumFile) Close() error { return c.f.Close() }

// load returns the recorded state if it is the state at pos.
func (c *checksumFile) load(pos ltx.Pos) (*pageState, error) {
	hdr := make([]byte, checksumHeaderSize)
	if _, err := c.f.ReadAt(hdr, 0); err != nil {
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
	b := make([]byte, int(n)*8)
	if _, err := io.ReadFull(io.NewSectionReader(c.f, checksumHeaderSize, int64(len(b))), b); err != nil {
		return nil, err
	}
	st := &pageState{pageSize: pageSize, sums: make([]ltx.Checksum, 0, n)}
	for i := range n {
		st.set(i+1, ltx.Checksum(binary.BigEndian.Uint64(b[i*8:])))
	}
	if st.total != total {
		return nil, errors.New("page checksums do not add up to the recorded checksum")
	}
	return st, nil
}

// save records next, writing only the entries that differ from prev (nil:
// write them all). The header goes last, so a torn update fails load.
func (c *checksumFile) save(txid ltx.TXID, prev, next *pageState) error {
	if prev == nil || prev.pageSize != next.pageSize {
		prev = &pageState{}
	}
	// Invalidate first: between here and the new header the file is mixed.
	if _, err := c.f.WriteAt(make([]byte, 4), 0); err != nil {
		c.stale = true
		return err
	}
	// Write each run of changed entries with one call per 64 KiB, so the
	// buffer kept between saves stays small whatever the database's size.
	for i := 0; i < len(next.sums); {
		if i < len(prev.sums) && prev.sums[i] == next.sums[i] && !c.stale {
			i++
			continue
		}
		j := i
		c.buf = c.buf[:0]
		for ; j < len(next.sums) && len(c.buf) < 64<<10 && (c.stale || j >= len(prev.sums) || prev.sums[j] != next.sums[j]); j++ {
			c.buf = binary.BigEndian.AppendUint64(c.buf, uint64(next.sums[j]))
		}
		if _, err := c.f.WriteAt(c.buf, checksumHeaderSize+int64(i)*8); err != nil {
			c.stale = true
			return err
		}
		i = j
	}
	if err := c.f.Truncate(checksumHeaderSize + int64(len(next.sums))*8); err != nil {
		c.stale = true
		return err
	}
	hdr := make([]byte, checksumHeaderSize)
	copy(hdr, checksumMagic)
	binary.BigEndian.PutUint32(hdr[4:], 1)
	binary.BigEndian.PutUint32(hdr[8:], next.pageSize)
	binary.BigEndian.PutUint64(hdr[12:], uint64(txid))
	binary.BigEndian.PutUint64(hdr[20:], uint64(next.total))
	binary.BigEndian.PutUint32(hdr[28:], uint32(len(next.sums)))
	if _, err := c.f.WriteAt(hdr, 0); err != nil {
		c.stale = true
		return err
	}
	c.stale = false
	return nil
}
