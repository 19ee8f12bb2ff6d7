package staging

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/pagesum"
)

// FuzzPosition: whatever the position file holds, reading it fails or gives
// a position that writing and reading again gives back.
func FuzzPosition(f *testing.F) {
	f.Add([]byte("0000000000000003 8000000000000001 305419896 2271560481 4152\n"))
	f.Add([]byte("0000000000000001 8000000000000001 0 0 0\n"))
	f.Add([]byte("0000000000000001 zz 0 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pos, at, err := parsePosition(b)
		if err != nil {
			return
		}
		d := New(t.TempDir(), slog.New(slog.DiscardHandler))
		if err := d.WritePosition(pos, at); err != nil {
			t.Fatal(err)
		}
		pos2, at2, err := d.ReadPosition()
		if err != nil || pos2 != pos || (at == nil) != (at2 == nil) || (at != nil && *at != *at2) {
			t.Fatalf("%q: read %v %v, wrote %v %v (%v)", b, pos2, at2, pos, at, err)
		}
	})
}

// FuzzChecksums: whatever the checksums file holds, loading it fails or
// gives page checksums that add up to the position's checksum, in memory
// bounded by the file's size.
func FuzzChecksums(f *testing.F) {
	st := pagesum.New(4096, 3)
	st.Set(1, 0x1234)
	st.Set(3, 0x5678)
	d := New(f.TempDir(), slog.New(slog.DiscardHandler))
	if err := d.Open(); err != nil {
		f.Fatal(err)
	}
	if err := d.SaveChecksums(7, nil, st); err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(d.sums.f); err != nil {
		f.Fatal(err)
	}
	d.Close()
	f.Add(buf.Bytes(), uint64(7), uint64(st.Total()))
	f.Add([]byte("WSCK"), uint64(1), uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, txid, sum uint64) {
		pos := ltx.NewPos(ltx.TXID(txid), ltx.Checksum(sum))
		got, err := loadChecksums(bytes.NewReader(b), pos, nil)
		if err != nil {
			return
		}
		if got.Total() != pos.PostApplyChecksum || !ltx.IsValidPageSize(got.PageSize()) || int64(got.Commit())*8 > int64(len(b)) {
			t.Fatalf("loaded %d pages of %d bytes, checksum %s, from %d bytes for %v", got.Commit(), got.PageSize(), got.Total(), len(b), pos)
		}
	})
}
