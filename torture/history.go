package main

import "encoding/binary"

// A history is what the application commits, one transaction after the
// other, derived from a seed alone: commit c's change depends only on the
// seed, the branch and c. The state after any commit can therefore be
// rebuilt from the seed and the commit count that the database itself
// records, and any database (a restore at any TXID) checked against it
// without keeping the source's history: it must be exactly the state after
// some commit, rows and content, nothing more.
//
// A branch is a history that leaves the main one after a given commit: the
// old database a restore -force replaces is a branch, so that what it holds
// cannot be mistaken for anything a restore writes.
type history struct {
	seed uint64
}

// mark is where a database stands in a history, as its meta row says.
type mark struct {
	commit   int64  // commits applied
	branch   uint64 // 0 for the main history, else the branch's id
	branchAt int64  // the last commit of the main history before the branch
}

// opKind is what a commit does.
type opKind uint8

const (
	opInsert opKind = iota // insert rows next, next+1, ...
	opUpdate               // rewrite one row, if it is still there
	opDelete               // delete one row, if it is still there
)

// op is one commit's change to the rows table.
type op struct {
	kind opKind
	rows int   // opInsert: how many rows
	row  int64 // opUpdate, opDelete: which row
}

// largeRowOdds is one in how many rows is large (8–48 KiB, spilling onto
// overflow pages); the rest are 8–607 bytes.
const largeRowOdds = 60

// commitSeed is the seed of commit c of a database at m.
func (h history) commitSeed(m mark, c int64) uint64 {
	if m.branch != 0 && c > m.branchAt {
		return derive(h.seed, m.branch, uint64(c))
	}
	return derive(h.seed, 0, uint64(c))
}

// op returns what commit c does to a database at m whose next row number
// is next: mostly one insert, sometimes a batch of rows, sometimes an
// update or a delete of an earlier row (which changes nothing if that row
// is gone already).
func (h history) op(m mark, c, next int64) op {
	r := newRand(h.commitSeed(m, c))
	p := r.IntN(100)
	switch {
	case p < 75 || next == 1:
		return op{kind: opInsert, rows: 1}
	case p < 83:
		return op{kind: opInsert, rows: 2 + r.IntN(39)}
	case p < 92:
		return op{kind: opUpdate, row: 1 + r.Int64N(next-1)}
	default:
		return op{kind: opDelete, row: 1 + r.Int64N(next-1)}
	}
}

// payload returns the content of row n as commit w wrote it, on a
// database at m.
func (h history) payload(m mark, w, n int64) []byte {
	r := newRand(derive(h.commitSeed(m, w), uint64(n)))
	size := 8 + r.IntN(600)
	if r.IntN(largeRowOdds) == 0 {
		size = 8<<10 + r.IntN(40<<10)
	}
	b := make([]byte, size+7)
	for i := 0; i < size; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:size]
}

// state is the content of a database at some mark: the next row number,
// and for each row there, the commit that wrote its content.
type state struct {
	next int64
	rows map[int64]int64
}

// replay rebuilds the state at m from the seed.
func (h history) replay(m mark) *state {
	s := &state{next: 1, rows: make(map[int64]int64)}
	for c := int64(1); c <= m.commit; c++ {
		s.apply(c, h.op(m, c, s.next))
	}
	return s
}

// apply makes commit c's change o.
func (s *state) apply(c int64, o op) {
	switch o.kind {
	case opInsert:
		for i := range int64(o.rows) {
			s.rows[s.next+i] = c
		}
		s.next += int64(o.rows)
	case opUpdate:
		if _, ok := s.rows[o.row]; ok {
			s.rows[o.row] = c
		}
	case opDelete:
		delete(s.rows, o.row)
	}
}
