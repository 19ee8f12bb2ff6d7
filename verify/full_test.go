package verify

import (
	"bytes"
	"testing"

	"github.com/superfly/ltx"
)

// encodeLevel0 encodes a level-0 file of a database of commit pages that
// holds the pages pgnos.
func encodeLevel0(t *testing.T, commit uint32, pgnos ...uint32) []byte {
	t.Helper()
	var b bytes.Buffer
	enc, err := ltx.NewEncoder(&b)
	if err != nil {
		t.Fatal(err)
	}
	hdr := ltx.Header{Version: ltx.Version, PageSize: 512, Commit: commit, MinTXID: 5, MaxTXID: 5, Timestamp: 1, PreApplyChecksum: ltx.ChecksumFlag | 1}
	if err := enc.EncodeHeader(hdr); err != nil {
		t.Fatal(err)
	}
	for _, pgno := range pgnos {
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, bytes.Repeat([]byte{byte(pgno)}, 512)); err != nil {
			t.Fatal(err)
		}
	}
	enc.SetPostApplyChecksum(ltx.ChecksumFlag | 2)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestDecodeAllFull: reading a file whole tells a full copy of the
// database (which may follow a change of page size) from any other file.
func TestDecodeAllFull(t *testing.T) {
	tests := []struct {
		name   string
		commit uint32
		pgnos  []uint32
		want   bool
	}{
		{"every page", 4, []uint32{1, 2, 3, 4}, true},
		{"one page missing", 4, []uint32{1, 2, 4}, false},
		{"the last page missing", 4, []uint32{1, 2, 3}, false},
		{"the first page missing", 4, []uint32{2, 3, 4}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			full, err := decodeAll(ltx.NewDecoder(bytes.NewReader(encodeLevel0(t, tt.commit, tt.pgnos...))))
			if err != nil {
				t.Fatal(err)
			}
			if full != tt.want {
				t.Errorf("full %v; want %v", full, tt.want)
			}
		})
	}
	b := encodeLevel0(t, 4, 1, 2, 3, 4)
	if _, err := decodeAll(ltx.NewDecoder(bytes.NewReader(b[:len(b)-20]))); err == nil {
		t.Error("a truncated file decoded")
	}
}
