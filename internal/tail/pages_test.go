package tail

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A full copy reads a small database through a buffer the size of the
// database, not a megabyte, and reads every page right, also past the end
// of a file that grew after the buffer was made.
func TestSequentialReadAheadFitsTheFile(t *testing.T) {
	const ps = 4096
	path := filepath.Join(t.TempDir(), "db")
	page := func(pgno int) []byte { return bytes.Repeat([]byte{byte(pgno)}, ps) }
	var data []byte
	for pgno := 1; pgno <= 3; pgno++ {
		data = append(data, page(pgno)...)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &PageReader{db: f, pageSize: ps, sequential: true}
	buf := make([]byte, ps)
	if err := r.ReadPage(1, buf); err != nil {
		t.Fatal(err)
	}
	if len(r.ahead) != 3*ps {
		t.Fatalf("read-ahead buffer of %d bytes for a 3-page file; want %d", len(r.ahead), 3*ps)
	}
	if !bytes.Equal(buf, page(1)) {
		t.Fatal("page 1 read wrong")
	}
	// The file grows by two pages; the reader goes on in order.
	if _, err := f.WriteAt(append(page(4), page(5)...), 3*ps); err != nil {
		t.Fatal(err)
	}
	for pgno := 2; pgno <= 5; pgno++ {
		if err := r.ReadPage(uint32(pgno), buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, page(pgno)) {
			t.Fatalf("page %d read wrong after the file grew", pgno)
		}
	}
	// Past the end of the file, a page reads as zeros, as SQLite reads it.
	if err := r.ReadPage(6, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, make([]byte, ps)) {
		t.Fatal("page 6, past the end, is not zeros")
	}
}

// A large file still gets a megabyte at a time.
func TestSequentialReadAheadCapped(t *testing.T) {
	const ps = 4096
	path := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(path, make([]byte, 2*readAheadBytes), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &PageReader{db: f, pageSize: ps, sequential: true}
	if err := r.ReadPage(1, make([]byte, ps)); err != nil {
		t.Fatal(err)
	}
	if len(r.ahead) != readAheadBytes {
		t.Fatalf("read-ahead buffer of %d bytes; want %d", len(r.ahead), readAheadBytes)
	}
}
