package fsutil

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// A WritebackWriter writes every byte it is given, in order, across the
// points where it starts the writeback of what came before.
func TestWritebackWriterWritesEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := make([]byte, 3*writebackEvery+12345)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range want {
		want[i] = byte(r.Uint32())
	}
	w := NewWritebackWriter(f)
	// Odd-sized writes, so that the writeback points fall inside writes.
	n, err := io.CopyBuffer(w, bytes.NewReader(want), make([]byte, 100_003))
	if err != nil || n != int64(len(want)) {
		t.Fatalf("copied %d of %d bytes: %v", n, len(want), err)
	}
	// The writeback of all but the last few megabytes was started.
	if total := int64(len(want)); w.off != total || w.started > total || w.started <= total-writebackEvery-100_003 {
		t.Errorf("wrote %d bytes, writeback started up to byte %d; want %d, and within %d of it", w.off, w.started, total, writebackEvery+100_003)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the file differs from what was written")
	}
}

// sizeRecorder is a reader that records the largest read asked of it.
type sizeRecorder struct {
	r       io.Reader
	largest int
}

func (s *sizeRecorder) Read(p []byte) (int, error) {
	s.largest = max(s.largest, len(p))
	return s.r.Read(p)
}

// io.Copy to a WritebackWriter reads a quarter-megabyte at a time, so that
// the writer at the other end of a pipe hands its buffer over at once, and
// the file holds every byte.
func TestWritebackWriterReadsLargeBuffers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := bytes.Repeat([]byte("walship"), 200_000)
	pr, pw := io.Pipe()
	go func() {
		for b := want; len(b) > 0; {
			n := min(len(b), copyBufferSize)
			if _, err := pw.Write(b[:n]); err != nil {
				pw.CloseWithError(err)
				return
			}
			b = b[n:]
		}
		pw.Close()
	}()
	src := &sizeRecorder{r: pr}
	n, err := io.Copy(NewWritebackWriter(f), src)
	if err != nil || n != int64(len(want)) {
		t.Fatalf("copied %d of %d bytes: %v", n, len(want), err)
	}
	if src.largest < copyBufferSize {
		t.Errorf("the largest read asked for %d bytes; want %d", src.largest, copyBufferSize)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the file differs from what was written")
	}
}
