// Package pagesum keeps the checksum of every page of one state of a
// database, and the database checksum that LTX files carry as their pre- and
// post-apply checksums: the XOR of the page checksums, with ltx.ChecksumFlag
// set. Keeping both lets each file carry exact checksums without the
// database being read again.
//
// A state is 8 bytes a page (20 MB for a 10 GB database), held in chunks of
// ChunkPages that a Clone shares with its original: each sync derives the
// next state from the last by changing a few pages, and copying the whole
// table for that would double the memory of a large database at every sync.
// A state made with NewSpilled keeps a few chunks in memory and the rest in
// a spill file, so that its memory does not grow with the database.
package pagesum

import (
	"fmt"
	"slices"

	"github.com/superfly/ltx"
)

// ChunkPages is how many pages' checksums one chunk holds (32 KiB): what a
// Clone copies when one of them first changes, and what a spilled state
// writes or reads at a time.
const ChunkPages = 4096

// A chunk holds the checksums of up to ChunkPages pages: exactly those of
// its pages up to the state's commit, so that a small database's state is
// as small as it is (8 bytes a page), not a chunk.
type chunk struct {
	sums []ltx.Checksum
}

// covered returns how many pages of chunk k a state of commit pages has.
func covered(commit uint32, k int) int {
	return min(ChunkPages, int(commit)-k*ChunkPages)
}

// maxResident is how many chunks a spilled state keeps in memory (2 MiB);
// a variable so that tests can spill small states.
var maxResident = 64

// State is the checksum of every page of one state of a database. It is
// not safe for concurrent use, even to read.
type State struct {
	pageSize uint32
	commit   uint32
	total    ltx.Checksum // rolling checksum: ChecksumFlag | xor of sums
	// Chunk k holds pages k*ChunkPages+1 onwards up to the commit, in
	// memory (chunks[k]) or in the spill file (slots[k]). owned[k] says
	// chunks[k] is this state's alone, so that Set may change it in place;
	// a shared one is copied first.
	chunks []*chunk
	slots  []*slot
	owned  []bool

	// With a spill file, no more than maxResident chunks stay in memory:
	// the oldest to come in goes out first (a copy sets pages in order).
	sp       *Spill
	resident []int // chunk numbers, oldest first; some may be out already
	nres     int   // chunks in memory
	// The spilled chunk read last, for Sum.
	cached    *slot
	cacheData *chunk
}

// New returns the state of an empty database of the given page size, held
// in memory. Memory grows with the pages set, a chunk at a time; n is a
// hint kept for the callers that know the size.
func New(pageSize, n uint32) *State {
	k := chunksFor(n)
	return &State{pageSize: pageSize, chunks: make([]*chunk, 0, k), slots: make([]*slot, 0, k), owned: make([]bool, 0, k)}
}

// NewSpilled returns the state of an empty database of the given page
// size that keeps at most maxResident chunks in memory and writes the rest
// to sp: 2 MiB whatever the database's size. With a nil sp it is New.
func NewSpilled(pageSize uint32, sp *Spill) *State {
	s := New(pageSize, 0)
	s.sp = sp
	return s
}

func chunksFor(n uint32) int { return int((uint64(n) + ChunkPages - 1) / ChunkPages) }

// PageSize returns the state's page size.
func (s *State) PageSize() uint32 { return s.pageSize }

// Commit returns the database size, in pages.
func (s *State) Commit() uint32 { return s.commit }

// Total returns the database checksum.
func (s *State) Total() ltx.Checksum { return s.total }

// Sum returns the checksum of page pgno: zero for the lock page and for a
// page past the commit. It fails only if a spilled chunk cannot be read.
func (s *State) Sum(pgno uint32) (ltx.Checksum, error) {
	if pgno == 0 || pgno > s.commit {
		return 0, nil
	}
	i := pgno - 1
	c, err := s.read(int(i / ChunkPages))
	if err != nil {
		return 0, err
	}
	return c.sums[i%ChunkPages], nil
}

// read returns chunk k for reading: the chunk itself if it is in memory,
// else a copy read from the spill file (valid until the next read).
func (s *State) read(k int) (*chunk, error) {
	if c := s.chunks[k]; c != nil {
		return c, nil
	}
	if s.cached != s.slots[k] {
		if s.cacheData == nil {
			s.cacheData = &chunk{sums: make([]ltx.Checksum, ChunkPages)}
		}
		s.cached = nil
		if err := s.slots[k].get(s.cacheData.sums[:ChunkPages]); err != nil {
			return nil, err
		}
		s.cached = s.slots[k]
	}
	// Past the commit, a spilled chunk holds what Sum never reads.
	return s.cacheData, nil
}

// Set records the checksum of page pgno, growing the state if needed (the
// pages in between count as zero). It fails only if a spilled chunk cannot
// be read (the state is then unchanged) or written (the state holds the
// change, and keeps one more chunk in memory).
func (s *State) Set(pgno uint32, c ltx.Checksum) error {
	if pgno == 0 {
		return fmt.Errorf("page checksums: no page 0")
	}
	i := pgno - 1
	k := int(i / ChunkPages)
	if pgno > s.commit {
		if err := s.grow(pgno); err != nil {
			return err
		}
	}
	ch, err := s.own(k)
	if err != nil {
		return err
	}
	s.total = ltx.ChecksumFlag | (s.total ^ ch.sums[i%ChunkPages] ^ c)
	ch.sums[i%ChunkPages] = c
	return s.spillBut(k)
}

// grow makes the state commit pages long, the new pages' checksums zero.
// It fails only if a spilled chunk cannot be read (the state is then
// unchanged).
func (s *State) grow(commit uint32) error {
	last := chunksFor(commit) - 1
	if n := len(s.chunks); n > 0 && covered(s.commit, n-1) < ChunkPages {
		// Fill the last chunk first: read it back before anything changes.
		ch, err := s.own(n - 1)
		if err != nil {
			return err
		}
		ch.sums = extend(ch.sums, covered(commit, n-1))
	}
	for k := len(s.chunks); k <= last; k++ {
		// Past the first chunk the database is large: a whole chunk at
		// once, rather than growing it page by page.
		n := covered(commit, k)
		c := make([]ltx.Checksum, n, max(n, min(ChunkPages, k*ChunkPages)))
		s.chunks = append(s.chunks, &chunk{sums: c})
		s.slots = append(s.slots, nil)
		s.owned = append(s.owned, true)
		s.comeIn(k)
	}
	s.commit = commit
	return nil
}

// extend returns sums lengthened to n entries, the new ones zero.
func extend(sums []ltx.Checksum, n int) []ltx.Checksum {
	if n <= cap(sums) {
		old := len(sums)
		sums = sums[:n]
		clear(sums[old:])
		return sums
	}
	grown := make([]ltx.Checksum, n, min(ChunkPages, max(n, 2*cap(sums))))
	copy(grown, sums)
	return grown
}

// own returns chunk k to be changed: read back first if it was spilled,
// copied first if another state shares it.
func (s *State) own(k int) (*chunk, error) {
	if s.chunks[k] == nil {
		c := make([]ltx.Checksum, ChunkPages)
		if err := s.slots[k].get(c); err != nil {
			return nil, err
		}
		s.chunks[k], s.slots[k], s.owned[k] = &chunk{sums: c[:covered(s.commit, k)]}, nil, true
		s.comeIn(k)
	} else if !s.owned[k] {
		c := &chunk{sums: slices.Clone(s.chunks[k].sums)}
		s.chunks[k], s.owned[k] = c, true
	}
	return s.chunks[k], nil
}

// comeIn notes that chunk k came into memory.
func (s *State) comeIn(k int) {
	if s.sp != nil {
		s.resident = append(s.resident, k)
		s.nres++
	}
}

// spillBut writes the oldest chunks in memory but chunk k to the spill
// file until no more than maxResident are left.
func (s *State) spillBut(k int) error {
	if s.sp == nil || s.nres <= maxResident {
		return nil
	}
	keepK := false
	for s.nres > maxResident && len(s.resident) > 0 {
		j := s.resident[0]
		s.resident = s.resident[1:]
		if j >= len(s.chunks) || s.chunks[j] == nil {
			continue // gone already
		}
		if j == k {
			keepK = true
			continue
		}
		sl, err := s.sp.put(s.chunks[j])
		if err != nil {
			s.resident = append([]int{j}, s.resident...)
			return err
		}
		s.chunks[j], s.slots[j], s.owned[j] = nil, sl, false
		s.nres--
	}
	if keepK {
		s.resident = append(s.resident, k)
	}
	return nil
}

// Truncate drops the pages above commit. It fails only if a spilled chunk
// cannot be read or written.
func (s *State) Truncate(commit uint32) error {
	if commit >= s.commit {
		return nil
	}
	total := s.total
	for pgno := s.commit; pgno > commit; pgno-- {
		c, err := s.Sum(pgno)
		if err != nil {
			return err
		}
		total = ltx.ChecksumFlag | (total ^ c)
	}
	keep := chunksFor(commit)
	if keep > 0 && covered(commit, keep-1) < covered(s.commit, keep-1) {
		ch, err := s.own(keep - 1)
		if err != nil {
			return err
		}
		ch.sums = ch.sums[:covered(commit, keep-1)]
	}
	for k := keep; k < len(s.chunks); k++ {
		s.chunks[k], s.slots[k] = nil, nil // not kept alive by the backing arrays
	}
	s.chunks, s.slots, s.owned = s.chunks[:keep], s.slots[:keep], s.owned[:keep]
	s.commit, s.total = commit, total
	if s.sp != nil {
		// The list of chunks in memory keeps those still here, each
		// once, in their order: entries of dropped chunks would pile up
		// over shrink-and-grow cycles, and every Clone copies the list.
		listed := make([]bool, keep)
		res := s.resident[:0]
		for _, j := range s.resident {
			if j < keep && s.chunks[j] != nil && !listed[j] {
				listed[j] = true
				res = append(res, j)
			}
		}
		for j, c := range s.chunks {
			if c != nil && !listed[j] {
				res = append(res, j)
			}
		}
		s.resident, s.nres = res, len(res)
	}
	return s.spillBut(-1)
}

// SetMaxResident sets how many chunks a spilled state keeps in memory,
// and returns a function that restores the previous number: for tests
// that make every state spill. It must not be called while states are in
// use.
func SetMaxResident(n int) (restore func()) {
	prev := maxResident
	maxResident = n
	return func() { maxResident = prev }
}

// Clone returns a copy of s. The two share their chunks, in memory and
// spilled, until either changes one, so a clone costs 17 bytes per
// ChunkPages pages.
func (s *State) Clone() *State {
	for k := range s.owned {
		s.owned[k] = false
	}
	return &State{
		pageSize: s.pageSize,
		commit:   s.commit,
		total:    s.total,
		chunks:   append([]*chunk(nil), s.chunks...),
		slots:    append([]*slot(nil), s.slots...),
		owned:    make([]bool, len(s.owned)),
		sp:       s.sp,
		resident: append([]int(nil), s.resident...),
		nres:     s.nres,
	}
}

// Changed calls f with each run of consecutive pages whose checksums in next
// differ from those in prev (every page of next when prev is nil or of
// another page size): the first page's number and their checksums, which f
// must not keep or change. A run never spans chunks, so it holds at most
// ChunkPages checksums. Chunks the two states share are skipped unread.
func Changed(prev, next *State, f func(pgno uint32, sums []ltx.Checksum) error) error {
	if prev != nil && prev.pageSize != next.pageSize {
		prev = nil
	}
	var nbuf, pbuf []ltx.Checksum
	for k := range next.chunks {
		n := covered(next.commit, k)
		// Entries past prev's commit count as changed, as do those of a
		// chunk prev lacks.
		same := 0
		if prev != nil && k < len(prev.chunks) {
			shared := (next.chunks[k] != nil && prev.chunks[k] == next.chunks[k]) ||
				(next.slots[k] != nil && prev.slots[k] == next.slots[k])
			if shared && prev.commit >= next.commit {
				continue
			}
			same = min(n, covered(prev.commit, k))
		}
		ch, err := sumsOf(next, k, &nbuf)
		if err != nil {
			return err
		}
		var old []ltx.Checksum
		if same > 0 {
			if old, err = sumsOf(prev, k, &pbuf); err != nil {
				return err
			}
		}
		for i := 0; i < n; {
			if i < same && old[i] == ch[i] {
				i++
				continue
			}
			j := i + 1
			for j < n && (j >= same || old[j] != ch[j]) {
				j++
			}
			if err := f(uint32(k*ChunkPages+i+1), ch[i:j]); err != nil {
				return err
			}
			i = j
		}
	}
	return nil
}

// sumsOf returns the checksums of chunk k of s, read into *buf (allocated
// on first use) if it is spilled.
func sumsOf(s *State, k int, buf *[]ltx.Checksum) ([]ltx.Checksum, error) {
	if c := s.chunks[k]; c != nil {
		return c.sums, nil
	}
	if *buf == nil {
		*buf = make([]ltx.Checksum, ChunkPages)
	}
	if err := s.slots[k].get(*buf); err != nil {
		return nil, err
	}
	return (*buf)[:covered(s.commit, k)], nil
}

// FromSums returns the state whose page checksums are sums (sums[pgno-1],
// zero for the lock page).
func FromSums(pageSize uint32, sums []ltx.Checksum) *State {
	s := New(pageSize, uint32(len(sums)))
	for i, c := range sums {
		s.Set(uint32(i+1), c) // in memory: cannot fail
	}
	return s
}
