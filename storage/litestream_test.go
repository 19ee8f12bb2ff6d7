package storage_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// TestToLitestream: the copy carries no database checksums, keeps the state
// after it in NodeID, keeps the pages, and names the empty WAL segment at
// the start of the file's WAL generation, so that a Litestream started
// after walship reads that generation again or, if a checkpoint restarted
// the WAL meanwhile, takes a snapshot (a resume from the file's own WAL
// position would miss the commits the restart took out of the WAL).
func TestToLitestream(t *testing.T) {
	const pageSize = 512
	in := ltx.Header{
		Version: ltx.Version, PageSize: pageSize, Commit: 3, MinTXID: 5, MaxTXID: 6,
		Timestamp:        1700000000000,
		PreApplyChecksum: ltx.ChecksumFlag | 1,
		WALOffset:        32 + 4*(24+pageSize), WALSize: 2 * (24 + pageSize), WALSalt1: 7, WALSalt2: 9,
	}
	pages := map[uint32][]byte{1: bytes.Repeat([]byte{1}, pageSize), 3: bytes.Repeat([]byte{3}, pageSize)}
	var src bytes.Buffer
	enc, err := ltx.NewEncoder(&src)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.EncodeHeader(in); err != nil {
		t.Fatal(err)
	}
	for _, pgno := range []uint32{1, 3} {
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, pages[pgno]); err != nil {
			t.Fatal(err)
		}
	}
	const post = ltx.ChecksumFlag | 2
	enc.SetPostApplyChecksum(post)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if _, err := storage.ToLitestream(&out, &src, post, ""); err != nil {
		t.Fatal(err)
	}
	dec := ltx.NewDecoder(&out)
	if err := dec.DecodeHeader(); err != nil {
		t.Fatal(err)
	}
	got := dec.Header()
	if !got.NoChecksum() || got.PreApplyChecksum != 0 || ltx.Checksum(got.NodeID) != post {
		t.Errorf("checksums: flags %#x, pre-apply %s, NodeID %#x; want no checksum, 0, %s", got.Flags, got.PreApplyChecksum, got.NodeID, post)
	}
	if got.WALOffset != 32 || got.WALSize != 0 || got.WALSalt1 != in.WALSalt1 || got.WALSalt2 != in.WALSalt2 {
		t.Errorf("WAL segment: offset %d, size %d, salts %d %d; want 32, 0, %d %d", got.WALOffset, got.WALSize, got.WALSalt1, got.WALSalt2, in.WALSalt1, in.WALSalt2)
	}
	if got.MinTXID != in.MinTXID || got.MaxTXID != in.MaxTXID || got.Commit != in.Commit || got.Timestamp != in.Timestamp {
		t.Errorf("header %+v; want the TXIDs, size and time of %+v", got, in)
	}
	var n int
	data := make([]byte, pageSize)
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, data); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, pages[ph.Pgno]) {
			t.Errorf("page %d differs", ph.Pgno)
		}
		n++
	}
	if n != len(pages) {
		t.Errorf("%d pages; want %d", n, len(pages))
	}
	if err := dec.Close(); err != nil {
		t.Fatal(err)
	}
	if got := dec.Trailer().PostApplyChecksum; got != 0 {
		t.Errorf("post-apply checksum %s; want none", got)
	}
}
