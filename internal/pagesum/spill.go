package pagesum

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/superfly/ltx"
)

// SpillPattern names a spill file in its directory; a crash leaves one
// behind, which its directory's owner removes on start-up.
const SpillPattern = ".pagesum-*.tmp"

// chunkBytes is the size of a chunk on disk.
const chunkBytes = ChunkPages * 8

// A Spill is a temporary file that holds the chunks of states that keep
// no more than a few of them in memory (NewSpilled), so that a state costs
// the same memory whatever the database's size. A chunk written to it is
// never changed: states share it as they share chunks in memory, and its
// slot is reused once no state refers to it any more. It is safe for
// concurrent use.
type Spill struct {
	dir string

	mu     sync.Mutex
	f      *os.File // created when the first chunk spills
	closed bool
	end    int64   // the file's size: where a new slot goes
	free   []int64 // slots no state refers to
	buf    []byte  // chunkBytes, allocated with the file
}

// NewSpill returns a spill file in dir. Nothing is created until a state
// spills, so a small database costs neither a file nor memory.
func NewSpill(dir string) *Spill {
	return &Spill{dir: dir}
}

// Close closes and removes the file. States that spilled to it can no
// longer read their spilled chunks, nor spill: they fail with an error.
func (sp *Spill) Close() error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.closed = true
	if sp.f == nil {
		return nil
	}
	err := sp.f.Close()
	os.Remove(sp.f.Name())
	return err
}

// Size returns the spill file's size, in bytes.
func (sp *Spill) Size() int64 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.end
}

// slot is a chunk written to the spill file. Its slot is freed when the
// last state that refers to it lets it go.
type slot struct {
	sp  *Spill
	off int64
}

// put writes the checksums of c to a free slot, zeros after them.
func (sp *Spill) put(c *chunk) (*slot, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.closed {
		return nil, fmt.Errorf("spill page checksums: %w", os.ErrClosed)
	}
	if sp.f == nil {
		f, err := os.CreateTemp(sp.dir, SpillPattern)
		if err != nil {
			return nil, fmt.Errorf("create the page checksums' spill file: %w", err)
		}
		sp.f, sp.buf = f, make([]byte, chunkBytes)
	}
	var off int64
	if n := len(sp.free); n > 0 {
		off, sp.free = sp.free[n-1], sp.free[:n-1]
	} else {
		off = sp.end
	}
	clear(sp.buf)
	for i, s := range c.sums {
		binary.LittleEndian.PutUint64(sp.buf[i*8:], uint64(s))
	}
	if _, err := sp.f.WriteAt(sp.buf, off); err != nil {
		sp.free = append(sp.free, off)
		return nil, fmt.Errorf("spill page checksums to %s: %w", sp.f.Name(), err)
	}
	sp.end = max(sp.end, off+chunkBytes)
	s := &slot{sp: sp, off: off}
	runtime.AddCleanup(s, sp.release, off)
	return s, nil
}

// release makes the slot at off free: no state refers to it any more.
func (sp *Spill) release(off int64) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.free = append(sp.free, off)
}

// get reads the chunk at s into c, which holds ChunkPages checksums.
func (s *slot) get(c []ltx.Checksum) error {
	sp := s.sp
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.closed {
		return fmt.Errorf("read spilled page checksums: %w", os.ErrClosed)
	}
	if _, err := sp.f.ReadAt(sp.buf, s.off); err != nil {
		return fmt.Errorf("read spilled page checksums from %s: %w", sp.f.Name(), err)
	}
	for i := range c[:ChunkPages] {
		c[i] = ltx.Checksum(binary.LittleEndian.Uint64(sp.buf[i*8:]))
	}
	return nil
}
