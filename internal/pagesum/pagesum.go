// Package pagesum keeps the checksum of every page of one state of a
// database, and the database checksum that LTX files carry as their pre- and
// post-apply checksums: the XOR of the page checksums, with ltx.ChecksumFlag
// set. Keeping both lets each file carry exact checksums without the
// database being read again.
package pagesum

import (
	"slices"

	"github.com/superfly/ltx"
)

// State is the checksum of every page of one state of a database.
type State struct {
	pageSize uint32
	sums     []ltx.Checksum // sums[pgno-1]; zero for the lock page
	total    ltx.Checksum   // rolling checksum: ChecksumFlag | xor of sums
}

// New returns the state of an empty database of the given page size, with
// room for n pages.
func New(pageSize, n uint32) *State {
	return &State{pageSize: pageSize, sums: make([]ltx.Checksum, 0, n)}
}

// PageSize returns the state's page size.
func (s *State) PageSize() uint32 { return s.pageSize }

// Commit returns the database size, in pages.
func (s *State) Commit() uint32 { return uint32(len(s.sums)) }

// Total returns the database checksum.
func (s *State) Total() ltx.Checksum { return s.total }

// Sums returns the checksum of every page, sums[pgno-1]. The slice is the
// state's own: callers must not change it.
func (s *State) Sums() []ltx.Checksum { return s.sums }

// Set records the checksum of page pgno, growing the state if needed.
func (s *State) Set(pgno uint32, c ltx.Checksum) {
	for uint32(len(s.sums)) < pgno {
		s.sums = append(s.sums, 0)
	}
	s.total = ltx.ChecksumFlag | (s.total ^ s.sums[pgno-1] ^ c)
	s.sums[pgno-1] = c
}

// Truncate drops the pages above commit.
func (s *State) Truncate(commit uint32) {
	for pgno := uint32(len(s.sums)); pgno > commit; pgno-- {
		s.total = ltx.ChecksumFlag | (s.total ^ s.sums[pgno-1])
	}
	if commit < uint32(len(s.sums)) {
		s.sums = slices.Clip(s.sums[:commit])
	}
}

// Clone returns a copy of s.
func (s *State) Clone() *State {
	return &State{pageSize: s.pageSize, sums: slices.Clone(s.sums), total: s.total}
}

// FromSums returns the state whose page checksums are sums (sums[pgno-1],
// zero for the lock page).
func FromSums(pageSize uint32, sums []ltx.Checksum) *State {
	s := New(pageSize, uint32(len(sums)))
	for i, c := range sums {
		s.Set(uint32(i+1), c)
	}
	return s
}
