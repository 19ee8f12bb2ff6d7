// Package storagetest is the conformance suite every replica backend must
// pass: the behaviour of storage.Client that the engine and restore rely on,
// checked against a real destination.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// Options adjust the suite to what a backend can store.
type Options struct {
	// TimestampPrecision is how precisely the backend keeps a file's
	// timestamp: zero means to the millisecond (object metadata); SFTP and
	// WebDAV keep it as a modification time in whole seconds. LTXFiles must
	// then report the timestamp truncated to that precision.
	TimestampPrecision time.Duration
}

// Run runs the suite. newClient returns a client for an empty, unique
// destination (a fresh prefix or directory) each time it is called.
func Run(t *testing.T, newClient func(t *testing.T) storage.Client) {
	RunWith(t, Options{}, newClient)
}

// RunWith runs the suite with options.
func RunWith(t *testing.T, opts Options, newClient func(t *testing.T) storage.Client) {
	precision := max(opts.TimestampPrecision, time.Millisecond)
	tests := []struct {
		name string
		fn   func(t *testing.T, c storage.Client)
	}{
		{"EmptyLevel", testEmptyLevel},
		{"WriteListOpen", func(t *testing.T, c storage.Client) { testWriteListOpen(t, c, precision) }},
		{"RangedRead", testRangedRead},
		{"Order", testOrder},
		{"Levels", testLevels},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"LargeFile", testLargeFile},
		{"Concurrent", testConcurrent},
		{"Cancelled", testCancelled},
		{"String", testString},
		{"RecordMissing", testRecordMissing},
		{"RecordCreateReplace", testRecordCreateReplace},
		{"RecordRace", testRecordRace},
		{"RecordChecks", testRecordChecks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newClient(t)) })
	}
}

// File returns the bytes of a valid LTX file for TXIDs min..max with n pages
// of random data (a snapshot when min is 1).
func File(t *testing.T, min, max ltx.TXID, n int, seed uint64) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, uint64(min)))
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	hdr := ltx.Header{Version: ltx.Version, PageSize: 4096, Commit: uint32(n), MinTXID: min, MaxTXID: max, Timestamp: time.Now().UnixMilli()}
	if min > 1 {
		hdr.PreApplyChecksum = ltx.ChecksumFlag | 1
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		t.Fatal(err)
	}
	var sum ltx.Checksum
	page := make([]byte, 4096)
	for pgno := uint32(1); pgno <= uint32(n); pgno++ {
		for i := range page {
			page[i] = byte(rng.Uint32())
		}
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, page); err != nil {
			t.Fatal(err)
		}
		sum ^= ltx.ChecksumPage(pgno, page)
	}
	enc.SetPostApplyChecksum(ltx.ChecksumFlag | sum)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func write(t *testing.T, c storage.Client, level int, min, max ltx.TXID, b []byte, at time.Time) *ltx.FileInfo {
	t.Helper()
	info, err := c.WriteLTXFile(context.Background(), level, min, max, bytes.NewReader(b), at)
	if err != nil {
		t.Fatalf("write %s: %v", storage.Describe(level, min, max), err)
	}
	if info.Level != level || info.MinTXID != min || info.MaxTXID != max || info.Size != int64(len(b)) {
		t.Fatalf("write returned %+v; want level %d, %s-%s, %d bytes", info, level, min, max, len(b))
	}
	return info
}

func read(t *testing.T, c storage.Client, level int, min, max ltx.TXID, off, n int64) []byte {
	t.Helper()
	rc, err := c.OpenLTXFile(context.Background(), level, min, max, off, n)
	if err != nil {
		t.Fatalf("open %s: %v", storage.Describe(level, min, max), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", storage.Describe(level, min, max), err)
	}
	return b
}

func list(t *testing.T, c storage.Client, level int) []*ltx.FileInfo {
	t.Helper()
	files, err := c.LTXFiles(context.Background(), level)
	if err != nil {
		t.Fatalf("list level %d: %v", level, err)
	}
	return files
}

func testEmptyLevel(t *testing.T, c storage.Client) {
	for level := 0; level <= storage.MaxLevel; level++ {
		if files := list(t, c, level); len(files) != 0 {
			t.Fatalf("a new destination lists %d files at level %d", len(files), level)
		}
	}
}

func testWriteListOpen(t *testing.T, c storage.Client, precision time.Duration) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	b := File(t, 1, 1, 3, 1)
	write(t, c, 0, 1, 1, b, at)
	files := list(t, c, 0)
	if len(files) != 1 {
		t.Fatalf("listed %d files; want 1", len(files))
	}
	f := files[0]
	if f.Level != 0 || f.MinTXID != 1 || f.MaxTXID != 1 || f.Size != int64(len(b)) {
		t.Fatalf("listed %+v", f)
	}
	if want := at.Truncate(precision); !f.CreatedAt.Equal(want) {
		t.Fatalf("created-at %s; want the LTX timestamp %s, to the %s", f.CreatedAt, want, precision)
	}
	if got := read(t, c, 0, 1, 1, 0, 0); !bytes.Equal(got, b) {
		t.Fatalf("read back %d bytes that differ from the %d written", len(got), len(b))
	}
	dec := ltx.NewDecoder(bytes.NewReader(read(t, c, 0, 1, 1, 0, 0)))
	if err := dec.Verify(); err != nil {
		t.Fatalf("the file read back is not valid LTX: %v", err)
	}
}

func testRangedRead(t *testing.T, c storage.Client) {
	b := File(t, 1, 1, 5, 2)
	write(t, c, 0, 1, 1, b, time.Now())
	n := int64(len(b))
	for _, r := range [][2]int64{{0, ltx.HeaderSize}, {n - ltx.TrailerSize, ltx.TrailerSize}, {100, 1000}, {n / 2, 0}, {n - 1, 0}} {
		want := b[r[0]:]
		if r[1] > 0 {
			want = b[r[0] : r[0]+r[1]]
		}
		if got := read(t, c, 0, 1, 1, r[0], r[1]); !bytes.Equal(got, want) {
			t.Fatalf("read offset %d size %d: got %d bytes, want %d", r[0], r[1], len(got), len(want))
		}
	}
}

func testOrder(t *testing.T, c storage.Client) {
	// Written out of order; listed by MinTXID, then MaxTXID. TXIDs above
	// 0xff check that the order is numeric, not that of decimal names.
	ranges := [][2]ltx.TXID{{0x300, 0x300}, {2, 2}, {0x100, 0x2ff}, {3, 0xff}, {1, 1}}
	for i, r := range ranges {
		write(t, c, 1, r[0], r[1], File(t, r[0], r[1], 1, uint64(i)), time.Now())
	}
	files := list(t, c, 1)
	want := [][2]ltx.TXID{{1, 1}, {2, 2}, {3, 0xff}, {0x100, 0x2ff}, {0x300, 0x300}}
	if len(files) != len(want) {
		t.Fatalf("listed %d files; want %d", len(files), len(want))
	}
	for i, f := range files {
		if f.MinTXID != want[i][0] || f.MaxTXID != want[i][1] {
			t.Fatalf("file %d is %s-%s; want %s-%s", i, f.MinTXID, f.MaxTXID, want[i][0], want[i][1])
		}
	}
}

func testLevels(t *testing.T, c storage.Client) {
	for level := 0; level <= storage.MaxLevel; level++ {
		write(t, c, level, 1, ltx.TXID(level+1), File(t, 1, ltx.TXID(level+1), 1, uint64(level)), time.Now())
	}
	for level := 0; level <= storage.MaxLevel; level++ {
		files := list(t, c, level)
		if len(files) != 1 || files[0].Level != level || files[0].MaxTXID != ltx.TXID(level+1) {
			t.Fatalf("level %d lists %+v", level, files)
		}
	}
}

func testOverwrite(t *testing.T, c storage.Client) {
	write(t, c, 0, 1, 1, File(t, 1, 1, 2, 1), time.Now())
	b := File(t, 1, 1, 4, 2)
	write(t, c, 0, 1, 1, b, time.Now())
	if files := list(t, c, 0); len(files) != 1 || files[0].Size != int64(len(b)) {
		t.Fatalf("after an overwrite: %+v", files)
	}
	if got := read(t, c, 0, 1, 1, 0, 0); !bytes.Equal(got, b) {
		t.Fatal("an overwrite did not replace the content")
	}
}

func testDelete(t *testing.T, c storage.Client) {
	var infos []*ltx.FileInfo
	for txid := ltx.TXID(1); txid <= 5; txid++ {
		infos = append(infos, write(t, c, 0, txid, txid, File(t, txid, txid, 1, uint64(txid)), time.Now()))
	}
	if err := c.DeleteLTXFiles(context.Background(), []*ltx.FileInfo{infos[1], infos[3]}); err != nil {
		t.Fatal(err)
	}
	files := list(t, c, 0)
	if len(files) != 3 || files[0].MaxTXID != 1 || files[1].MaxTXID != 3 || files[2].MaxTXID != 5 {
		t.Fatalf("after deleting 2 and 4: %+v", files)
	}
	// Deleting what is gone is not an error.
	if err := c.DeleteLTXFiles(context.Background(), []*ltx.FileInfo{infos[1]}); err != nil {
		t.Fatalf("deleting a missing file: %v", err)
	}
	if err := c.DeleteLTXFiles(context.Background(), nil); err != nil {
		t.Fatalf("deleting nothing: %v", err)
	}
}

func testNotFound(t *testing.T, c storage.Client) {
	_, err := c.OpenLTXFile(context.Background(), 0, 7, 7, 0, 0)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("opening a missing file: %v; want an error wrapping storage.ErrNotFound", err)
	}
}

func testLargeFile(t *testing.T, c storage.Client) {
	b := File(t, 1, 1, 3000, 9) // ~12 MB of incompressible pages
	write(t, c, 9, 1, 1, b, time.Now())
	if got := read(t, c, 9, 1, 1, 0, 0); !bytes.Equal(got, b) {
		t.Fatalf("a %d-byte file read back as %d bytes that differ", len(b), len(got))
	}
	tail := read(t, c, 9, 1, 1, int64(len(b))-ltx.TrailerSize, ltx.TrailerSize)
	if !bytes.Equal(tail, b[len(b)-ltx.TrailerSize:]) {
		t.Fatal("ranged read of the trailer differs")
	}
}

func testConcurrent(t *testing.T, c storage.Client) {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			txid := ltx.TXID(i + 1)
			if _, err := c.WriteLTXFile(context.Background(), 0, txid, txid, bytes.NewReader(File(t, txid, txid, 2, uint64(i))), time.Now()); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if files := list(t, c, 0); len(files) != 16 {
		t.Fatalf("16 concurrent writes listed %d files", len(files))
	}
}

func testCancelled(t *testing.T, c storage.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(File(t, 1, 1, 2, 1)), time.Now()); err == nil {
		t.Fatal("a write with a cancelled context succeeded")
	}
	// A reader that fails midway leaves no file behind: writes are atomic.
	b := File(t, 2, 2, 50, 2)
	r := io.MultiReader(bytes.NewReader(b[:len(b)/2]), errReader{})
	if _, err := c.WriteLTXFile(context.Background(), 0, 2, 2, r, time.Now()); err == nil {
		t.Fatal("a write whose reader failed succeeded")
	}
	if files := list(t, c, 0); len(files) != 0 {
		t.Fatalf("failed writes left %d files: %+v", len(files), files)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("source failed") }

func testString(t *testing.T, c storage.Client) {
	if c.Type() == "" || c.String() == "" {
		t.Fatalf("Type %q, String %q: both must describe the destination", c.Type(), c.String())
	}
}
