package restore

import "github.com/superfly/ltx"

// sumChunk is how many page checksums pageSums allocates at once (32 KiB).
const sumChunk = 4096

// pageSums holds the LTX checksum of each page of the database being
// restored. A zero checksum means the page's checksum is not known yet (it is
// computed from the restored file when needed), except for the lock page,
// whose checksum is always zero; every other checksum has ltx.ChecksumFlag
// set. Checksums are stored in chunks allocated when first set to a non-zero
// value, so the memory of a restore that never needs them (one snapshot)
// does not grow with the database.
//
// Concurrency: the chunks are allocated (ensure, or set of a non-zero
// value in a missing chunk) only by the goroutine that decodes, and the page
// writer sets only pages whose chunk was ensured before their run was handed
// to it. get and set of distinct pages may then run at the same time.
type pageSums struct {
	n      uint32
	chunks [][]ltx.Checksum
}

// len returns the number of pages covered.
func (s *pageSums) len() uint32 { return s.n }

func (s *pageSums) get(pgno uint32) ltx.Checksum {
	c := s.chunks[(pgno-1)/sumChunk]
	if c == nil {
		return 0
	}
	return c[(pgno-1)%sumChunk]
}

func (s *pageSums) set(pgno uint32, v ltx.Checksum) {
	i := (pgno - 1) / sumChunk
	if s.chunks[i] == nil {
		if v == 0 {
			return
		}
		s.chunks[i] = make([]ltx.Checksum, sumChunk)
	}
	s.chunks[i][(pgno-1)%sumChunk] = v
}

// ensure allocates the chunk of page pgno.
func (s *pageSums) ensure(pgno uint32) {
	if i := (pgno - 1) / sumChunk; s.chunks[i] == nil {
		s.chunks[i] = make([]ltx.Checksum, sumChunk)
	}
}

// resize covers n pages: the checksums of new pages are zero, and those of
// pages beyond n are dropped.
func (s *pageSums) resize(n uint32) {
	k := int((n + sumChunk - 1) / sumChunk)
	if k > len(s.chunks) {
		s.chunks = append(s.chunks, make([][]ltx.Checksum, k-len(s.chunks))...)
	}
	clear(s.chunks[k:])
	s.chunks = s.chunks[:k]
	if n%sumChunk != 0 && k > 0 {
		if c := s.chunks[k-1]; c != nil {
			clear(c[n%sumChunk:])
		}
	}
	s.n = n
}
