package pagesum

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/superfly/ltx"
)

// flat is the plain table State replaced: the reference its results must
// match.
type flat struct {
	sums  []ltx.Checksum
	total ltx.Checksum
}

func (f *flat) set(pgno uint32, c ltx.Checksum) {
	for uint32(len(f.sums)) < pgno {
		f.sums = append(f.sums, 0)
	}
	f.total = ltx.ChecksumFlag | (f.total ^ f.sums[pgno-1] ^ c)
	f.sums[pgno-1] = c
}

func (f *flat) truncate(commit uint32) {
	for pgno := uint32(len(f.sums)); pgno > commit; pgno-- {
		f.total = ltx.ChecksumFlag | (f.total ^ f.sums[pgno-1])
	}
	if commit < uint32(len(f.sums)) {
		f.sums = append([]ltx.Checksum(nil), f.sums[:commit]...)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (f *flat) clone() *flat {
	return &flat{sums: append([]ltx.Checksum(nil), f.sums...), total: f.total}
}

func same(t *testing.T, what string, s *State, f *flat) {
	t.Helper()
	if s.Commit() != uint32(len(f.sums)) || s.Total() != f.total {
		t.Fatalf("%s: commit %d total %s, want %d %s", what, s.Commit(), s.Total(), len(f.sums), f.total)
	}
	for i, c := range f.sums {
		if got, err := s.Sum(uint32(i + 1)); err != nil || got != c {
			t.Fatalf("%s: page %d: %s (%v), want %s", what, i+1, got, err, c)
		}
	}
	if c, err := s.Sum(s.Commit() + 1); c != 0 || err != nil {
		t.Fatalf("%s: a page past the commit has a checksum (%v)", what, err)
	}
}

// TestStateMatchesFlatTable: whatever sequence of sets, truncations and
// clones a state goes through, each state (the clones, and the originals
// they were cloned from) holds what a plain table would, and Changed
// reports exactly the pages in which two of them differ.
func TestStateMatchesFlatTable(t *testing.T) {
	testMatchesFlatTable(t, New(4096, 0))
}

// TestSpilledStateMatchesFlatTable: the same with a state that keeps most
// of its chunks in a spill file.
func TestSpilledStateMatchesFlatTable(t *testing.T) {
	sp := NewSpill(t.TempDir())
	defer sp.Close()
	defer func(n int) { maxResident = n }(maxResident)
	maxResident = 4
	testMatchesFlatTable(t, NewSpilled(4096, sp))
}

func testMatchesFlatTable(t *testing.T, s *State) {
	rng := rand.New(rand.NewPCG(1, 2))
	f := &flat{}
	for round := range 30 {
		prevS, prevF := s, f
		s, f = s.Clone(), f.clone()
		if round%3 == 0 && prevS.Commit() > 0 {
			// Changing the original must not change the clone.
			pgno := uint32(1 + rng.IntN(int(prevS.Commit())))
			c := ltx.ChecksumFlag | ltx.Checksum(rng.Uint64())
			must(t, prevS.Set(pgno, c))
			prevF.set(pgno, c)
		}
		for range rng.IntN(50) {
			switch rng.IntN(10) {
			case 0:
				c := uint32(rng.IntN(12 * ChunkPages))
				must(t, s.Truncate(c))
				f.truncate(c)
			case 1:
				// Grow by a run, as a copy does.
				from := s.Commit() + 1
				for pgno := from; pgno < from+uint32(rng.IntN(8*ChunkPages)); pgno++ {
					c := ltx.ChecksumFlag | ltx.Checksum(rng.Uint64())
					must(t, s.Set(pgno, c))
					f.set(pgno, c)
				}
			default:
				pgno := uint32(1 + rng.IntN(12*ChunkPages))
				c := ltx.ChecksumFlag | ltx.Checksum(rng.Uint64())
				must(t, s.Set(pgno, c))
				f.set(pgno, c)
			}
		}
		same(t, "clone", s, f)
		same(t, "original", prevS, prevF)

		// Changed, applied to prev's table, gives next's.
		got := prevF.clone()
		err := Changed(prevS, s, func(pgno uint32, sums []ltx.Checksum) error {
			if len(sums) == 0 || len(sums) > ChunkPages {
				t.Fatalf("run of %d checksums", len(sums))
			}
			for i, c := range sums {
				got.set(pgno+uint32(i), c)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got.truncate(s.Commit())
		for i, c := range f.sums {
			if got.sums[i] != c {
				t.Fatalf("round %d: Changed missed page %d", round, i+1)
			}
		}
	}
}

// TestChangedSkipsWhatDidNotChange: a page whose checksum is the same in
// both states, within both commits, is never reported; with no previous
// state every page is.
func TestChangedSkipsWhatDidNotChange(t *testing.T) {
	prev := New(4096, 0)
	for pgno := uint32(1); pgno <= 3*ChunkPages; pgno++ {
		prev.Set(pgno, ltx.ChecksumFlag|ltx.Checksum(pgno))
	}
	next := prev.Clone()
	next.Set(5, 1)
	next.Set(6, 2)
	next.Set(2*ChunkPages+1, 3)
	next.Set(3*ChunkPages+2, 4) // grows: page 3*ChunkPages+1 is new too
	var got []uint32
	Changed(prev, next, func(pgno uint32, sums []ltx.Checksum) error {
		for i := range sums {
			got = append(got, pgno+uint32(i))
		}
		return nil
	})
	want := []uint32{5, 6, 2*ChunkPages + 1, 3*ChunkPages + 1, 3*ChunkPages + 2}
	if len(got) != len(want) {
		t.Fatalf("changed pages %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("changed pages %v, want %v", got, want)
		}
	}
	n := 0
	Changed(nil, next, func(pgno uint32, sums []ltx.Checksum) error {
		n += len(sums)
		return nil
	})
	if n != int(next.Commit()) {
		t.Fatalf("with no previous state, %d pages reported of %d", n, next.Commit())
	}
}

// TestSmallStateIsSmall: a small database's state costs its pages' 8
// bytes, not a whole chunk, and its spill file is not even created, so
// that a thousand small databases cost what they did.
func TestSmallStateIsSmall(t *testing.T) {
	dir := t.TempDir()
	sp := NewSpill(dir)
	defer sp.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s := NewSpilled(4096, sp)
	for pgno := uint32(1); pgno <= 100; pgno++ {
		must(t, s.Set(pgno, ltx.ChecksumFlag|ltx.Checksum(pgno)))
	}
	next := s.Clone()
	must(t, next.Set(1, 7))
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 8<<10 {
		t.Errorf("a 100-page state and a changed clone allocated %d bytes; want at most 8 KiB", got)
	}
	if left, err := os.ReadDir(dir); err != nil || len(left) > 0 {
		t.Errorf("a state that never spilled created %v (%v)", left, err)
	}
}

// TestCloneCostDoesNotGrowWithTheDatabase: deriving the next state from a
// state of a million pages (8 MB of checksums) and changing a few pages
// allocates a few chunks, not a copy of the whole table, so that each sync
// of a large database does not double its memory.
func TestCloneCostDoesNotGrowWithTheDatabase(t *testing.T) {
	const pages = 1 << 20
	s := New(4096, pages)
	for pgno := uint32(1); pgno <= pages; pgno++ {
		s.Set(pgno, ltx.ChecksumFlag|ltx.Checksum(pgno))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	next := s.Clone()
	for _, pgno := range []uint32{1, 2, pages / 2, pages} {
		next.Set(pgno, 7)
	}
	next.Truncate(pages - 10)
	runtime.ReadMemStats(&after)
	// Before: 8 MB. Now: the chunk pointers (2 KB) and three chunks.
	if got := after.TotalAlloc - before.TotalAlloc; got > 256<<10 {
		t.Errorf("a clone and four changed pages of a %d-page state allocated %d bytes; want at most 256 KiB", pages, got)
	}
	first, _ := s.Sum(1)
	last, _ := s.Sum(pages)
	if first != ltx.ChecksumFlag|1 || last != ltx.ChecksumFlag|pages {
		t.Error("changing the clone changed the original")
	}
}

// TestStateSizeIsEightBytesAPage: a state's memory is its checksums, 8
// bytes a page, rounded up to a chunk.
func TestStateSizeIsEightBytesAPage(t *testing.T) {
	const pages = 1 << 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s := New(4096, pages)
	for pgno := uint32(1); pgno <= pages; pgno++ {
		s.Set(pgno, ltx.ChecksumFlag|ltx.Checksum(pgno))
	}
	runtime.ReadMemStats(&after)
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(pages*8+128<<10); got > limit {
		t.Errorf("a %d-page state allocated %d bytes; want at most %d", pages, got, limit)
	}
}

// TestSpilledStateMemoryDoesNotGrowWithTheDatabase: a spilled state of a
// million pages (an 4 GB database) holds maxResident chunks in memory, the
// rest in its spill file; reading and changing it brings back one at a time.
func TestSpilledStateMemoryDoesNotGrowWithTheDatabase(t *testing.T) {
	sp := NewSpill(t.TempDir())
	defer sp.Close()
	const pages = 1 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := NewSpilled(4096, sp)
	for pgno := uint32(1); pgno <= pages; pgno++ {
		must(t, s.Set(pgno, ltx.ChecksumFlag|ltx.Checksum(pgno)))
	}
	next := s.Clone()
	must(t, next.Set(3, 7))
	must(t, next.Truncate(pages/2))
	s = next
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got, limit := int64(after.HeapAlloc)-int64(before.HeapAlloc), int64(2*maxResident*ChunkPages*8); got > limit {
		t.Errorf("a spilled %d-page state holds %d bytes of heap; want at most %d", pages, got, limit)
	}
	if s.nres > maxResident {
		t.Errorf("%d chunks in memory, want at most %d", s.nres, maxResident)
	}
	if got := sp.Size(); got < int64(pages/2-maxResident*ChunkPages)*8 {
		t.Errorf("spill file of %d bytes for %d pages", got, pages/2)
	}
	c, err := s.Sum(pages / 2)
	if err != nil || c != ltx.ChecksumFlag|pages/2 {
		t.Errorf("page %d: %s (%v)", pages/2, c, err)
	}
	runtime.KeepAlive(s)
}

// TestSpillFailsLoudly: once the spill file is gone, reading a spilled
// chunk is an error, never a zero checksum.
func TestSpillFailsLoudly(t *testing.T) {
	sp := NewSpill(t.TempDir())
	s := NewSpilled(4096, sp)
	for pgno := uint32(1); int(pgno) <= 2*maxResident*ChunkPages; pgno++ {
		must(t, s.Set(pgno, ltx.ChecksumFlag|1))
	}
	sp.Close()
	if _, err := s.Sum(1); err == nil {
		t.Error("Sum of a spilled page succeeded after the spill file closed")
	}
	if err := s.Set(1, 5); err == nil {
		t.Error("Set of a spilled page succeeded after the spill file closed")
	}
	if err := Changed(nil, s, func(uint32, []ltx.Checksum) error { return nil }); err == nil {
		t.Error("Changed succeeded after the spill file closed")
	}
}

// TestResidentListStaysBounded: a spilled state whose database shrinks
// and grows again many times keeps its list of chunks in memory no longer
// than its chunks (each Clone copies it).
func TestResidentListStaysBounded(t *testing.T) {
	sp := NewSpill(t.TempDir())
	defer sp.Close()
	defer SetMaxResident(4)()
	s := NewSpilled(4096, sp)
	f := &flat{}
	for cycle := range 2000 {
		top := uint32(2*ChunkPages + 1 + cycle%7)
		for pgno := s.Commit() + 1; pgno <= top; pgno++ {
			c := ltx.ChecksumFlag | ltx.Checksum(uint64(cycle)<<32|uint64(pgno))
			must(t, s.Set(pgno, c))
			f.set(pgno, c)
		}
		must(t, s.Truncate(2*ChunkPages-1))
		f.truncate(2*ChunkPages - 1)
	}
	if len(s.resident) > len(s.chunks) {
		t.Fatalf("%d entries in the list of chunks in memory, for %d chunks", len(s.resident), len(s.chunks))
	}
	same(t, "after the cycles", s, f)
}

// TestSpillSlotsReusedSafely: states cloned, changed and dropped while the
// garbage collector runs (which frees the spill slots no state can reach,
// for reuse) each keep holding what a plain table would.
func TestSpillSlotsReusedSafely(t *testing.T) {
	sp := NewSpill(t.TempDir())
	defer sp.Close()
	defer SetMaxResident(2)()
	rng := rand.New(rand.NewPCG(3, 4))
	type pair struct {
		s *State
		f *flat
	}
	live := []pair{{NewSpilled(4096, sp), &flat{}}}
	for round := range 300 {
		p := live[rng.IntN(len(live))]
		s, f := p.s.Clone(), p.f.clone()
		for range 1 + rng.IntN(30) {
			if rng.IntN(8) == 0 {
				c := uint32(rng.IntN(8 * ChunkPages))
				must(t, s.Truncate(c))
				f.truncate(c)
				continue
			}
			pgno := uint32(1 + rng.IntN(8*ChunkPages))
			c := ltx.ChecksumFlag | ltx.Checksum(rng.Uint64())
			must(t, s.Set(pgno, c))
			f.set(pgno, c)
		}
		live = append(live, pair{s, f})
		if len(live) > 6 {
			i := rng.IntN(len(live))
			live = append(live[:i], live[i+1:]...)
		}
		runtime.GC()
		runtime.GC()
		for i, p := range live {
			same(t, fmt.Sprintf("round %d, state %d", round, i), p.s, p.f)
		}
	}
}
