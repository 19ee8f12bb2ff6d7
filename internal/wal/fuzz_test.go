package wal_test

import (
	"bytes"
	"testing"

	"github.com/walship/walship/internal/wal"
)

// FuzzRead feeds arbitrary bytes to the WAL reader as a log file: it must
// not panic, and whatever it accepts must lie inside the file, in order,
// with every accepted frame ending a committed transaction at the end.
func FuzzRead(f *testing.F) {
	w := newWAL(false, 512)
	w.frame(1, 0, w.page(1, 1), frameOK)
	w.frame(2, 2, w.page(2, 1), frameOK)
	w.frame(1, 2, w.page(1, 2), frameBadChecksum)
	f.Add(w.buf, int64(0))
	be := newWAL(true, 1024)
	be.frame(3, 3, be.page(3, 1), frameOK)
	f.Add(be.buf, int64(wal.HeaderSize+1))
	f.Fuzz(func(t *testing.T, data []byte, limit int64) {
		r := bytes.NewReader(data)
		hdr, err := wal.ReadHeader(r)
		if err != nil {
			return
		}
		scan, err := wal.Read(r, hdr, wal.Start(hdr), limit)
		if err != nil {
			t.Fatalf("reading from memory failed: %v", err)
		}
		if scan.End.Offset > int64(len(data)) || scan.End.Offset < wal.HeaderSize {
			t.Fatalf("scan ends at %d of a %d-byte file", scan.End.Offset, len(data))
		}
		prev := int64(0)
		for i, fr := range scan.Frames {
			if fr.Offset <= prev || fr.Offset+hdr.FrameSize() > scan.End.Offset || fr.Pgno == 0 {
				t.Fatalf("frame %d at %d (page %d) is outside the scan ending at %d", i, fr.Offset, fr.Pgno, scan.End.Offset)
			}
			prev = fr.Offset
		}
		if n := len(scan.Frames); n > 0 && (scan.Frames[n-1].Commit == 0 || scan.Frames[n-1].Commit != scan.Commit) {
			t.Fatalf("the last frame returned does not end a transaction: %+v", scan.Frames[n-1])
		}
	})
}
