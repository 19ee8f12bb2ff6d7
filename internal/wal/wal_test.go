package wal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/walship/walship/internal/wal"
)

const (
	magicLE = 0x377f0682
	magicBE = 0x377f0683
)

// walFile builds a WAL file by hand, frame by frame.
type walFile struct {
	bigEndian    bool
	pageSize     uint32
	salt1, salt2 uint32
	s1, s2       uint32 // cumulative checksum after the last frame written
	buf          []byte
}

func newWAL(bigEndian bool, pageSize uint32) *walFile {
	return newWALWithSizeField(bigEndian, pageSize, pageSize)
}

// newWALWithSizeField writes sizeField into the header's page-size field (so a
// test can use the legacy encoding 1 for 65536) while frames use pageSize.
func newWALWithSizeField(bigEndian bool, pageSize, sizeField uint32) *walFile {
	w := &walFile{bigEndian: bigEndian, pageSize: pageSize, salt1: 0x11223344, salt2: 0x55667788}
	hdr := make([]byte, wal.HeaderSize)
	magic := uint32(magicLE)
	if bigEndian {
		magic = magicBE
	}
	binary.BigEndian.PutUint32(hdr[0:], magic)
	binary.BigEndian.PutUint32(hdr[4:], 3007000)
	binary.BigEndian.PutUint32(hdr[8:], sizeField)
	binary.BigEndian.PutUint32(hdr[12:], 7) // checkpoint sequence
	binary.BigEndian.PutUint32(hdr[16:], w.salt1)
	binary.BigEndian.PutUint32(hdr[20:], w.salt2)
	w.s1, w.s2 = wal.Checksum(bigEndian, 0, 0, hdr[:24])
	binary.BigEndian.PutUint32(hdr[24:], w.s1)
	binary.BigEndian.PutUint32(hdr[28:], w.s2)
	w.buf = hdr
	return w
}

// page returns deterministic page content for pgno at a given version.
func (w *walFile) page(pgno uint32, version int) []byte {
	b := make([]byte, w.pageSize)
	for i := range b {
		b[i] = byte(int(pgno)*31 + version*7 + i*13)
	}
	return b
}

type frameOpt int

const (
	frameOK frameOpt = iota
	frameBadSalt
	frameBadChecksum
)

// frame appends a frame. A bad frame does not advance the cumulative
// checksum, as SQLite would not have accepted it either.
func (w *walFile) frame(pgno, commit uint32, data []byte, opt frameOpt) int64 {
	off := int64(len(w.buf))
	f := make([]byte, wal.FrameHeaderSize+len(data))
	binary.BigEndian.PutUint32(f[0:], pgno)
	binary.BigEndian.PutUint32(f[4:], commit)
	salt1 := w.salt1
	if opt == frameBadSalt {
		salt1++
	}
	binary.BigEndian.PutUint32(f[8:], salt1)
	binary.BigEndian.PutUint32(f[12:], w.salt2)
	copy(f[wal.FrameHeaderSize:], data)
	s1, s2 := wal.Checksum(w.bigEndian, w.s1, w.s2, f[:8])
	s1, s2 = wal.Checksum(w.bigEndian, s1, s2, data)
	if opt == frameBadChecksum {
		s2 ^= 1
	}
	binary.BigEndian.PutUint32(f[16:], s1)
	binary.BigEndian.PutUint32(f[20:], s2)
	if opt == frameOK {
		w.s1, w.s2 = s1, s2
	}
	w.buf = append(w.buf, f...)
	return off
}

func (w *walFile) pos() wal.Position {
	return wal.Position{Salt1: w.salt1, Salt2: w.salt2, Offset: int64(len(w.buf)), Checksum1: w.s1, Checksum2: w.s2}
}

// refChecksum is SQLite's walChecksumBytes written independently of the
// package: words are read in the given byte order.
func refChecksum(order binary.ByteOrder, s1, s2 uint32, b []byte) (uint32, uint32) {
	for i := 0; i < len(b); i += 8 {
		x0, x1 := order.Uint32(b[i:]), order.Uint32(b[i+4:])
		s1 = s1 + x0 + s2
		s2 = s2 + x1 + s1
	}
	return s1, s2
}

func TestChecksum(t *testing.T) {
	b := make([]byte, 64)
	for i := range b {
		b[i] = byte(i*37 + 5)
	}
	// A hand-computed vector: words 1,2 then 3,4 (little-endian).
	v := []byte{1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0}
	// s1 = 0+1+0 = 1; s2 = 0+2+1 = 3; s1 = 1+3+3 = 7; s2 = 3+4+7 = 14.
	if s1, s2 := wal.Checksum(false, 0, 0, v); s1 != 7 || s2 != 14 {
		t.Errorf("Checksum(le, vector) = %d, %d; want 7, 14", s1, s2)
	}
	if s1, s2 := wal.Checksum(true, 0, 0, v); s1 != 0x07000000 || s2 != 0x0e000000 {
		t.Errorf("Checksum(be, vector) = %#x, %#x", s1, s2)
	}
	for _, be := range []bool{false, true} {
		var order binary.ByteOrder = binary.LittleEndian
		if be {
			order = binary.BigEndian
		}
		// Lengths around the unrolled loop's 32-byte step.
		for _, n := range []int{0, 8, 24, 32, 40, 56} {
			g1, g2 := wal.Checksum(be, 9, 10, b[:n])
			if w1, w2 := refChecksum(order, 9, 10, b[:n]); g1 != w1 || g2 != w2 {
				t.Errorf("Checksum(be=%v) of %d bytes = %x %x; reference %x %x", be, n, g1, g2, w1, w2)
			}
		}
		g1, g2 := wal.Checksum(be, 9, 10, b)
		w1, w2 := refChecksum(order, 9, 10, b)
		if g1 != w1 || g2 != w2 {
			t.Errorf("Checksum(be=%v) = %x %x; reference %x %x", be, g1, g2, w1, w2)
		}
		// Continuing the checksum in pieces gives the same result.
		p1, p2 := wal.Checksum(be, 9, 10, b[:24])
		p1, p2 = wal.Checksum(be, p1, p2, b[24:])
		if p1 != g1 || p2 != g2 {
			t.Errorf("Checksum(be=%v) in two pieces = %x %x; in one %x %x", be, p1, p2, g1, g2)
		}
	}
	// Big-endian words over byte-swapped input equal little-endian words.
	swapped := make([]byte, len(b))
	for i := 0; i < len(b); i += 4 {
		binary.BigEndian.PutUint32(swapped[i:], binary.LittleEndian.Uint32(b[i:]))
	}
	l1, l2 := wal.Checksum(false, 0, 0, b)
	b1, b2 := wal.Checksum(true, 0, 0, swapped)
	if l1 != b1 || l2 != b2 {
		t.Errorf("big-endian checksum of swapped words %x %x != little-endian %x %x", b1, b2, l1, l2)
	}
}

func TestParseHeader(t *testing.T) {
	valid := newWAL(false, 4096).buf
	validBE := newWAL(true, 4096).buf
	mutate := func(b []byte, f func([]byte)) []byte {
		c := bytes.Clone(b)
		f(c)
		return c
	}
	// resum rewrites the header checksum after a change, so that only the
	// change itself is wrong.
	resum := func(be bool) func([]byte) {
		return func(c []byte) {
			s1, s2 := wal.Checksum(be, 0, 0, c[:24])
			binary.BigEndian.PutUint32(c[24:], s1)
			binary.BigEndian.PutUint32(c[28:], s2)
		}
	}
	tests := []struct {
		name      string
		b         []byte
		wantErr   string // substring; "" means success
		noHeader  bool   // want errors.Is(err, ErrNoHeader)
		bigEndian bool
		pageSize  uint32
	}{
		{name: "little-endian", b: valid, pageSize: 4096},
		{name: "big-endian", b: validBE, bigEndian: true, pageSize: 4096},
		{name: "page size 512", b: newWAL(false, 512).buf, pageSize: 512},
		{name: "page size 65536", b: newWAL(false, 65536).buf, pageSize: 65536},
		{name: "page size 65536 encoded as 1", b: newWALWithSizeField(false, 65536, 1).buf, pageSize: 65536},
		{name: "longer than a header", b: append(bytes.Clone(valid), make([]byte, 100)...), pageSize: 4096},
		{name: "empty", b: nil, noHeader: true, wantErr: "no header"},
		{name: "31 bytes", b: valid[:31], noHeader: true, wantErr: "no header"},
		{name: "bad magic", b: mutate(valid, func(c []byte) {
			binary.BigEndian.PutUint32(c, 0x377f0681)
			resum(false)(c)
		}), wantErr: "magic"},
		{name: "zero magic", b: make([]byte, 32), wantErr: "magic"},
		{name: "bad checksum", b: mutate(valid, func(c []byte) { c[31] ^= 1 }), wantErr: "checksum"},
		{name: "bad checksum big-endian", b: mutate(validBE, func(c []byte) { c[24] ^= 0x80 }), wantErr: "checksum"},
		{name: "salt changed without checksum", b: mutate(valid, func(c []byte) { c[17] ^= 1 }), wantErr: "checksum"},
		{name: "little-endian magic, big-endian checksum", b: mutate(valid, func(c []byte) {
			resum(true)(c)
		}), wantErr: "checksum"},
		{name: "page size 1000", b: mutate(valid, func(c []byte) {
			binary.BigEndian.PutUint32(c[8:], 1000)
			resum(false)(c)
		}), wantErr: "page size"},
		{name: "page size 256", b: mutate(valid, func(c []byte) {
			binary.BigEndian.PutUint32(c[8:], 256)
			resum(false)(c)
		}), wantErr: "page size"},
		{name: "page size 131072", b: mutate(valid, func(c []byte) {
			binary.BigEndian.PutUint32(c[8:], 131072)
			resum(false)(c)
		}), wantErr: "page size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(what string, h wal.Header, err error) {
				t.Helper()
				if tt.wantErr != "" {
					if err == nil {
						t.Fatalf("%s: no error; want %q", what, tt.wantErr)
					}
					if !strings.Contains(err.Error(), tt.wantErr) {
						t.Errorf("%s: error %q; want it to mention %q", what, err, tt.wantErr)
					}
					if got := errors.Is(err, wal.ErrNoHeader); got != tt.noHeader {
						t.Errorf("%s: errors.Is(%v, ErrNoHeader) = %v; want %v", what, err, got, tt.noHeader)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if h.BigEndian() != tt.bigEndian || h.PageSize != tt.pageSize {
					t.Errorf("%s: BigEndian %v, PageSize %d; want %v, %d", what, h.BigEndian(), h.PageSize, tt.bigEndian, tt.pageSize)
				}
				if h.Version != 3007000 || h.CheckpointSeq != 7 || h.Salt1 != 0x11223344 || h.Salt2 != 0x55667788 {
					t.Errorf("%s: header fields %+v", what, h)
				}
				if h.FrameSize() != wal.FrameHeaderSize+int64(tt.pageSize) {
					t.Errorf("%s: FrameSize %d", what, h.FrameSize())
				}
			}
			h, err := wal.ParseHeader(tt.b)
			check("ParseHeader", h, err)
			h, err = wal.ReadHeader(bytes.NewReader(tt.b))
			check("ReadHeader", h, err)
		})
	}
}

func TestReadHeaderIOError(t *testing.T) {
	boom := errors.New("boom")
	_, err := wal.ReadHeader(errReaderAt{err: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("ReadHeader error %v; want %v", err, boom)
	}
	if errors.Is(err, wal.ErrNoHeader) {
		t.Fatalf("an I/O error is not ErrNoHeader: %v", err)
	}
}

type errReaderAt struct {
	r   io.ReaderAt // nil: fail every read
	at  int64       // fail reads that reach this offset
	err error
}

func (e errReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if e.r == nil {
		return 0, e.err
	}
	if off+int64(len(p)) > e.at {
		n, _ := e.r.ReadAt(p[:max(0, e.at-off)], off)
		return n, e.err
	}
	return e.r.ReadAt(p, off)
}

// want describes the frames a scan should return: one entry per frame.
type wantFrame struct {
	pgno, commit uint32
	off          int64
}

func checkScan(t *testing.T, w *walFile, scan *wal.Scan, want []wantFrame, wantEnd wal.Position, wantCommit uint32) {
	t.Helper()
	if len(scan.Frames) != len(want) {
		t.Fatalf("got %d frames; want %d: %+v", len(scan.Frames), len(want), scan.Frames)
	}
	for i, f := range scan.Frames {
		if f.Pgno != want[i].pgno || f.Commit != want[i].commit || f.Offset != want[i].off {
			t.Errorf("frame %d = %+v; want %+v", i, f, want[i])
		}
		if f.DataOffset() != f.Offset+wal.FrameHeaderSize {
			t.Errorf("frame %d DataOffset %d", i, f.DataOffset())
		}
	}
	if scan.End != wantEnd {
		t.Errorf("End = %+v; want %+v", scan.End, wantEnd)
	}
	if scan.Commit != wantCommit {
		t.Errorf("Commit = %d; want %d", scan.Commit, wantCommit)
	}
	if scan.Header.Salt1 != w.salt1 || scan.Header.PageSize != w.pageSize {
		t.Errorf("Header = %+v", scan.Header)
	}
}

// TestRead builds WAL files by hand and checks which frames Read accepts.
func TestRead(t *testing.T) {
	type fr struct {
		pgno, commit uint32
		opt          frameOpt
	}
	tests := []struct {
		name     string
		be       bool
		pageSize uint32
		frames   []fr
		nWant    int // frames expected: a prefix of frames
		// wantEnd is the index of the frame after the last expected commit
		// (0 = header only).
		wantCommit uint32
		truncate   int64 // bytes cut from the end of the file
	}{
		{name: "empty log", pageSize: 4096},
		{name: "one transaction", pageSize: 4096, frames: []fr{{1, 0, 0}, {2, 0, 0}, {3, 3, 0}}, nWant: 3, wantCommit: 3},
		{name: "one transaction big-endian", be: true, pageSize: 4096, frames: []fr{{1, 0, 0}, {2, 0, 0}, {3, 3, 0}}, nWant: 3, wantCommit: 3},
		{name: "several transactions", pageSize: 1024, frames: []fr{{1, 2, 0}, {2, 0, 0}, {5, 5, 0}, {1, 4, 0}}, nWant: 4, wantCommit: 4},
		{name: "several transactions big-endian", be: true, pageSize: 1024, frames: []fr{{1, 2, 0}, {2, 0, 0}, {5, 5, 0}, {1, 4, 0}}, nWant: 4, wantCommit: 4},
		{name: "same page twice", pageSize: 512, frames: []fr{{1, 0, 0}, {1, 1, 0}, {1, 1, 0}}, nWant: 3, wantCommit: 1},
		{name: "uncommitted tail", pageSize: 4096, frames: []fr{{1, 0, 0}, {2, 2, 0}, {3, 0, 0}, {4, 0, 0}}, nWant: 2, wantCommit: 2},
		{name: "uncommitted tail big-endian", be: true, pageSize: 4096, frames: []fr{{1, 0, 0}, {2, 2, 0}, {3, 0, 0}}, nWant: 2, wantCommit: 2},
		{name: "only uncommitted frames", pageSize: 4096, frames: []fr{{1, 0, 0}, {2, 0, 0}}, nWant: 0},
		{name: "wrong salt stops the scan", pageSize: 4096, frames: []fr{{1, 1, 0}, {2, 2, frameBadSalt}, {3, 3, 0}}, nWant: 1, wantCommit: 1},
		{name: "wrong salt stops the scan big-endian", be: true, pageSize: 4096, frames: []fr{{1, 1, 0}, {2, 2, frameBadSalt}, {3, 3, 0}}, nWant: 1, wantCommit: 1},
		{name: "wrong salt in the middle of a transaction", pageSize: 4096, frames: []fr{{1, 1, 0}, {2, 0, 0}, {3, 0, frameBadSalt}, {4, 4, 0}}, nWant: 1, wantCommit: 1},
		{name: "bad checksum stops the scan", pageSize: 4096, frames: []fr{{1, 1, 0}, {2, 2, frameBadChecksum}, {3, 3, 0}}, nWant: 1, wantCommit: 1},
		{name: "bad checksum stops the scan big-endian", be: true, pageSize: 4096, frames: []fr{{1, 1, 0}, {2, 2, frameBadChecksum}, {3, 3, 0}}, nWant: 1, wantCommit: 1},
		{name: "bad checksum on the commit frame", pageSize: 4096, frames: []fr{{1, 1, 0}, {2, 0, 0}, {3, 3, frameBadChecksum}}, nWant: 1, wantCommit: 1},
		{name: "bad first frame", pageSize: 4096, frames: []fr{{1, 1, frameBadChecksum}, {2, 2, 0}}, nWant: 0},
		{name: "page number zero stops the scan", pageSize: 4096, frames: []fr{{1, 1, 0}, {0, 2, 0}, {2, 2, 0}}, nWant: 1, wantCommit: 1},
		{name: "truncated last frame", pageSize: 4096, frames: []fr{{1, 1, 0}, {2, 2, 0}}, nWant: 1, wantCommit: 1, truncate: 1},
		{name: "truncated frame header", pageSize: 4096, frames: []fr{{1, 1, 0}, {2, 2, 0}}, nWant: 1, wantCommit: 1, truncate: 4096 + 1},
		{name: "page size 512", pageSize: 512, frames: []fr{{1, 0, 0}, {2, 2, 0}, {3, 3, 0}}, nWant: 3, wantCommit: 3},
		{name: "page size 512 big-endian", be: true, pageSize: 512, frames: []fr{{1, 0, 0}, {2, 2, 0}, {3, 3, 0}}, nWant: 3, wantCommit: 3},
		{name: "page size 65536", pageSize: 65536, frames: []fr{{1, 0, 0}, {2, 2, 0}, {3, 0, 0}, {1, 3, 0}, {4, 0, 0}}, nWant: 4, wantCommit: 3},
		{name: "page size 65536 big-endian", be: true, pageSize: 65536, frames: []fr{{1, 0, 0}, {2, 2, 0}, {3, 0, 0}, {1, 3, 0}}, nWant: 4, wantCommit: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWAL(tt.be, tt.pageSize)
			var want []wantFrame
			end := wal.Position{Salt1: w.salt1, Salt2: w.salt2, Offset: wal.HeaderSize, Checksum1: w.s1, Checksum2: w.s2}
			for i, f := range tt.frames {
				off := w.frame(f.pgno, f.commit, w.page(f.pgno, i), f.opt)
				if i < tt.nWant {
					want = append(want, wantFrame{f.pgno, f.commit, off})
					if f.commit != 0 {
						end = w.pos()
					}
				}
			}
			b := w.buf[:int64(len(w.buf))-tt.truncate]
			path := filepath.Join(t.TempDir(), "db-wal")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, src := range []struct {
				name string
				open func() io.ReaderAt
			}{
				{"bytes", func() io.ReaderAt { return bytes.NewReader(b) }},
				{"file", func() io.ReaderAt {
					f, err := os.Open(path)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { f.Close() })
					return f
				}},
			} {
				t.Run(src.name, func(t *testing.T) {
					r := src.open()
					hdr, err := wal.ReadHeader(r)
					if err != nil {
						t.Fatal(err)
					}
					if hdr.BigEndian() != tt.be {
						t.Fatalf("BigEndian = %v", hdr.BigEndian())
					}
					scan, err := wal.Read(r, hdr, wal.Start(hdr), 0)
					if err != nil {
						t.Fatal(err)
					}
					checkScan(t, w, scan, want, end, tt.wantCommit)
					// Reading on from the end finds nothing more.
					again, err := wal.Read(r, hdr, scan.End, 0)
					if err != nil {
						t.Fatal(err)
					}
					checkScan(t, w, again, nil, scan.End, 0)
				})
			}
		})
	}
}

// TestReadFromPosition reads a log in pieces: each piece continues the
// cumulative checksum from the position where the previous one ended, and a
// position whose checksum is not the log's does not verify the next frame.
func TestReadFromPosition(t *testing.T) {
	for _, be := range []bool{false, true} {
		t.Run(fmt.Sprintf("bigEndian=%v", be), func(t *testing.T) {
			w := newWAL(be, 1024)
			var ends []wal.Position // position after each transaction
			var all []wantFrame
			commit := uint32(0)
			for tx := range 6 {
				for i := range tx%3 + 1 {
					pgno := uint32(tx + i + 1)
					c := uint32(0)
					if i == tx%3 {
						commit = max(commit, pgno)
						c = commit
					}
					all = append(all, wantFrame{pgno, c, w.frame(pgno, c, w.page(pgno, tx), frameOK)})
				}
				ends = append(ends, w.pos())
			}
			r := bytes.NewReader(w.buf)
			hdr, err := wal.ReadHeader(r)
			if err != nil {
				t.Fatal(err)
			}
			full, err := wal.Read(r, hdr, wal.Start(hdr), 0)
			if err != nil {
				t.Fatal(err)
			}
			checkScan(t, w, full, all, ends[len(ends)-1], commit)

			// The limit stops the scan at each commit boundary.
			for k, end := range ends {
				part, err := wal.Read(r, hdr, wal.Start(hdr), end.Offset)
				if err != nil {
					t.Fatal(err)
				}
				n := frameCount(all, end.Offset)
				checkScan(t, w, part, all[:n], end, all[n-1].commit)
				// And the rest of the log reads on from there.
				rest, err := wal.Read(r, hdr, part.End, 0)
				if err != nil {
					t.Fatal(err)
				}
				wantCommit := commit
				if k == len(ends)-1 {
					wantCommit = 0
				}
				checkScan(t, w, rest, all[n:], ends[len(ends)-1], wantCommit)
			}

			// Continue from a mid-file position in several steps.
			pos := wal.Start(hdr)
			var got []wal.Frame
			for _, end := range ends {
				s, err := wal.Read(r, hdr, pos, end.Offset)
				if err != nil {
					t.Fatal(err)
				}
				if s.End != end {
					t.Fatalf("End %+v; want %+v", s.End, end)
				}
				got = append(got, s.Frames...)
				pos = s.End
			}
			if len(got) != len(all) {
				t.Fatalf("piecewise reads returned %d frames; want %d", len(got), len(all))
			}

			// A position with the right offset but a wrong checksum verifies
			// nothing: the checksum is cumulative.
			bad := ends[1]
			bad.Checksum1++
			s, err := wal.Read(r, hdr, bad, 0)
			if err != nil {
				t.Fatal(err)
			}
			checkScan(t, w, s, nil, bad, 0)
			// Nor does the start-of-log checksum used mid-file.
			mid := wal.Start(hdr)
			mid.Offset = ends[1].Offset
			s, err = wal.Read(r, hdr, mid, 0)
			if err != nil {
				t.Fatal(err)
			}
			checkScan(t, w, s, nil, mid, 0)

			// A position from another generation is refused.
			other := ends[0]
			other.Salt2++
			if _, err := wal.Read(r, hdr, other, 0); err == nil {
				t.Fatal("Read accepted a position from another generation")
			}
			if other.SameGeneration(hdr) || !ends[0].SameGeneration(hdr) {
				t.Fatal("SameGeneration is wrong")
			}
		})
	}
}

func frameCount(frames []wantFrame, end int64) int {
	n := 0
	for _, f := range frames {
		if f.off < end {
			n++
		}
	}
	return n
}

// TestReadLimitInsideTransaction: a limit that falls after some frames of a
// transaction but before its commit returns only the earlier transactions.
func TestReadLimitInsideTransaction(t *testing.T) {
	w := newWAL(false, 512)
	w.frame(1, 1, w.page(1, 0), frameOK)
	first := w.pos()
	w.frame(2, 0, w.page(2, 0), frameOK)
	mid := w.pos().Offset
	w.frame(3, 3, w.page(3, 0), frameOK)
	r := bytes.NewReader(w.buf)
	hdr, err := wal.ReadHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	s, err := wal.Read(r, hdr, wal.Start(hdr), mid)
	if err != nil {
		t.Fatal(err)
	}
	checkScan(t, w, s, []wantFrame{{1, 1, wal.HeaderSize}}, first, 1)
	// A limit of the header size returns nothing.
	s, err = wal.Read(r, hdr, wal.Start(hdr), wal.HeaderSize)
	if err != nil {
		t.Fatal(err)
	}
	checkScan(t, w, s, nil, wal.Start(hdr), 0)
}

// TestReadLarge reads a log larger than Read's read-ahead chunk (1 MiB), with
// transactions that straddle chunk boundaries.
func TestReadLarge(t *testing.T) {
	const n = 600
	for _, tc := range []struct {
		name     string
		pageSize uint32
		be       bool
		badAt    int // frame index with a bad checksum; -1 for none
	}{
		{"4096", 4096, false, -1},
		{"4096 big-endian", 4096, true, -1},
		{"4096 bad frame in the third chunk", 4096, false, 560},
		{"65536", 65536, false, -1},
		{"512", 512, false, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames := n
			if tc.pageSize == 65536 {
				frames = 40 // still 2.6 MB
			}
			if tc.pageSize == 512 {
				frames = 3000 // 1.6 MB
			}
			w := newWAL(tc.be, tc.pageSize)
			var want []wantFrame
			var end wal.Position
			var commit uint32
			stopped := false
			for i := range frames {
				pgno := uint32(i%97 + 1)
				c := uint32(0)
				if i%7 == 6 || i == frames-1 {
					c = uint32(min(i+1, 97))
				}
				opt := frameOK
				if i == tc.badAt {
					opt = frameBadChecksum
					stopped = true
				}
				off := w.frame(pgno, c, w.page(pgno, i), opt)
				if !stopped {
					want = append(want, wantFrame{pgno, c, off})
					if c != 0 {
						end, commit = w.pos(), c
					}
				}
			}
			// Drop the uncommitted frames before the bad one.
			for len(want) > 0 && want[len(want)-1].commit == 0 {
				want = want[:len(want)-1]
			}
			if int64(len(w.buf)) <= 1<<20 {
				t.Fatalf("log of %d bytes is not larger than the read-ahead", len(w.buf))
			}
			path := filepath.Join(t.TempDir(), "db-wal")
			if err := os.WriteFile(path, w.buf, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			hdr, err := wal.ReadHeader(f)
			if err != nil {
				t.Fatal(err)
			}
			s, err := wal.Read(f, hdr, wal.Start(hdr), 0)
			if err != nil {
				t.Fatal(err)
			}
			checkScan(t, w, s, want, end, commit)
			if tc.badAt < 0 && s.End.Offset != int64(len(w.buf)) {
				t.Errorf("End.Offset %d; want the file size %d", s.End.Offset, len(w.buf))
			}
		})
	}
}

// TestReadIOError: a read error other than EOF is returned, not taken for the
// end of the log.
func TestReadIOError(t *testing.T) {
	w := newWAL(false, 4096)
	for i := range 400 {
		w.frame(uint32(i+1), uint32(i+1), w.page(uint32(i+1), 0), frameOK)
	}
	boom := errors.New("disk on fire")
	for _, at := range []int64{wal.HeaderSize, wal.HeaderSize + 10, 1 << 20, int64(len(w.buf)) - 100} {
		r := errReaderAt{r: bytes.NewReader(w.buf), at: at, err: boom}
		hdr, err := wal.ReadHeader(bytes.NewReader(w.buf))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wal.Read(r, hdr, wal.Start(hdr), 0); !errors.Is(err, boom) {
			t.Errorf("error at %d: Read returned %v; want %v", at, err, boom)
		}
	}
}

// BenchmarkChecksum is the cost of verifying one 4 KiB frame.
func BenchmarkChecksum(b *testing.B) {
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	var s1, s2 uint32
	for b.Loop() {
		s1, s2 = wal.Checksum(false, s1, s2, buf)
	}
}
