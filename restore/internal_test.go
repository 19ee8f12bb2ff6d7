package restore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/superfly/ltx"
)

// page returns the content of page pgno in these tests.
func page(pgno uint32, size int) []byte {
	b := bytes.Repeat([]byte{byte(pgno), byte(pgno >> 8), 0x5a}, size/3+1)
	return b[:size]
}

// writePages adds the pages to w, as apply does, and flushes them.
func writePages(t *testing.T, w *pageWriter, pgnos []uint32, size int) (ltx.Checksum, error) {
	t.Helper()
	for _, pgno := range pgnos {
		buf, err := w.next()
		if err != nil {
			return 0, err
		}
		copy(buf, page(pgno, size))
		w.add(pgno)
	}
	return w.flush()
}

// TestPageWriterRuns: consecutive pages are written together, up to
// runBytes at a time; a gap in the page numbers starts a new write; the
// file holds every page where it belongs and nothing else.
func TestPageWriterRuns(t *testing.T) {
	const size = 512
	perRun := uint32(runBytes / size)
	var pgnos []uint32
	for p := uint32(1); p <= 3; p++ { // one run
		pgnos = append(pgnos, p)
	}
	pgnos = append(pgnos, 5, 6)                     // a gap of one page, then a run
	for p := uint32(100); p < 100+2*perRun+7; p++ { // three runs: two full
		pgnos = append(pgnos, p)
	}
	pgnos = append(pgnos, 100+2*perRun+9) // alone after a gap
	wantWrites := 1 + 1 + 3 + 1

	f, err := os.Create(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := newPageWriter(f)
	defer w.close()
	last := pgnos[len(pgnos)-1]
	var sums pageSums
	sums.resize(last)
	for _, p := range pgnos {
		sums.ensure(p)
	}
	w.begin(size, &sums, 0)
	acc, err := writePages(t, w, pgnos, size)
	if err != nil {
		t.Fatal(err)
	}
	if w.writes != wantWrites {
		t.Errorf("%d pages written in %d writes; want %d", len(pgnos), w.writes, wantWrites)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, int(last)*size)
	wantAcc := ltx.Checksum(0)
	for _, p := range pgnos {
		copy(want[int(p-1)*size:], page(p, size))
		c := ltx.ChecksumPage(p, page(p, size))
		wantAcc ^= c
		if sums.get(p) != c {
			t.Fatalf("checksum of page %d: %s; want %s", p, sums.get(p), c)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the file does not hold the pages where they belong")
	}
	if acc != wantAcc {
		t.Errorf("checksum delta %s; want %s", acc, wantAcc)
	}

	// Overwriting pages whose checksums are not known reads their old
	// content to take them out of the checksum.
	over := []uint32{2, 3, 4, 100 + perRun}
	for _, p := range over {
		sums.set(p, 0)
	}
	w.begin(size, &sums, last)
	for _, p := range over {
		sums.ensure(p)
	}
	var newAcc ltx.Checksum
	for _, p := range over {
		buf, err := w.next()
		if err != nil {
			t.Fatal(err)
		}
		nb := bytes.Repeat([]byte{0xee}, size)
		copy(buf, nb)
		w.add(p)
		old := make([]byte, size) // page 4 was never written: zeros
		if p != 4 {
			old = page(p, size)
		}
		newAcc ^= ltx.ChecksumPage(p, old) ^ ltx.ChecksumPage(p, nb)
	}
	acc, err = w.flush()
	if err != nil {
		t.Fatal(err)
	}
	if acc != newAcc {
		t.Errorf("checksum delta of the overwrite %s; want %s", acc, newAcc)
	}
}

// TestPageWriterError: a failed write is returned by the next call, names
// the pages, and the writer can still be closed.
func TestPageWriterError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path) // read-only: writes fail
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := newPageWriter(f)
	w.begin(4096, nil, 0)
	var pgnos []uint32
	for p := uint32(1); p <= 200; p++ {
		pgnos = append(pgnos, p)
	}
	_, err = writePages(t, w, pgnos, 4096)
	if err == nil || !strings.Contains(err.Error(), "write restored pages 1-") {
		t.Fatalf("error %v; want a failed write of the first pages", err)
	}
	w.close()
}

// slowSource returns its data a few bytes at a time, then err.
type slowSource struct {
	data []byte
	err  error
}

func (s *slowSource) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, s.err
	}
	n := copy(p[:min(len(p), 7)], s.data)
	s.data = s.data[n:]
	return n, nil
}

// TestReadAhead: the reader returns the source's bytes in order, across
// chunks, then its end; a failed read is a sourceError after the bytes read
// before it.
func TestReadAhead(t *testing.T) {
	data := make([]byte, 3*readChunk+12345)
	for i := range data {
		data[i] = byte(i * 31 / 7)
	}
	bufs := readBuffers()
	ctx := context.Background()

	ar := readAhead(ctx, bytes.NewReader(data), bufs)
	if err := iotest.TestReader(ar, data); err != nil {
		t.Error(err)
	}
	ar.stop()

	broken := errors.New("connection reset")
	ar = readAhead(ctx, &slowSource{bytes.Clone(data[:readChunk+10]), broken}, bufs)
	got, err := io.ReadAll(ar)
	ar.stop()
	if !bytes.Equal(got, data[:readChunk+10]) {
		t.Errorf("read %d bytes before the error; want %d", len(got), readChunk+10)
	}
	if serr, ok := isSourceError(err); !ok || serr != broken {
		t.Errorf("error %v; want the source's, as a sourceError", err)
	}

	// A canceled context stops the reads with its error.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	ar = readAhead(canceled, bytes.NewReader(data), bufs)
	if _, err := io.ReadAll(ar); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v; want context.Canceled", err)
	}
	ar.stop()
}

// blockingSource blocks every read until it is interrupted.
type blockingSource struct{ stop chan struct{} }

func (b *blockingSource) Read([]byte) (int, error) {
	<-b.stop
	return 0, errApplied
}

func (b *blockingSource) interrupt() { close(b.stop) }

// TestReadAheadStop: stop returns while the source's read is blocked, by
// interrupting it, and when nothing was read at all.
func TestReadAheadStop(t *testing.T) {
	ar := readAhead(context.Background(), &blockingSource{make(chan struct{})}, readBuffers())
	ar.stop()
	ar = readAhead(context.Background(), bytes.NewReader(make([]byte, 5*readChunk)), readBuffers())
	ar.stop() // the goroutine waits for a free chunk
}

// TestPageSums: checksums are zero until set, chunks are allocated only for
// non-zero checksums, and resizing drops the checksums past the new size.
func TestPageSums(t *testing.T) {
	var s pageSums
	s.resize(3 * sumChunk)
	if s.len() != 3*sumChunk || s.get(1) != 0 || s.get(3*sumChunk) != 0 {
		t.Fatal("a new pageSums is not all zeros")
	}
	s.set(5, 0)
	s.set(sumChunk+1, 0)
	for _, c := range s.chunks {
		if c != nil {
			t.Fatal("a zero checksum allocated a chunk")
		}
	}
	s.set(5, 0x8000000000000005)
	s.set(2*sumChunk+2, 0x8000000000000007)
	s.set(2*sumChunk+9, 0x8000000000000009)
	if s.get(5) != 0x8000000000000005 || s.get(6) != 0 || s.chunks[1] != nil {
		t.Fatal("set")
	}
	s.resize(2*sumChunk + 4) // drops 2*sumChunk+9
	s.resize(3 * sumChunk)
	if s.get(2*sumChunk+2) != 0x8000000000000007 || s.get(2*sumChunk+9) != 0 {
		t.Fatalf("after shrinking and growing: %s, %s", s.get(2*sumChunk+2), s.get(2*sumChunk+9))
	}
	s.resize(sumChunk) // drops two chunks
	s.resize(3 * sumChunk)
	if s.get(2*sumChunk+2) != 0 || s.get(5) != 0x8000000000000005 {
		t.Fatal("after shrinking by whole chunks")
	}
}
