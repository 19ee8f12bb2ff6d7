package litestream03

import (
	"bytes"
	"io"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// FuzzParseName: names that parse are the names Litestream v0.3 writes.
func FuzzParseName(f *testing.F) {
	f.Add("generations/0123456789abcdef/snapshots/0000000a.snapshot.lz4")
	f.Add("generations/0123456789abcdef/wal/0000000a_00001038.wal.lz4")
	f.Add("generations/0123456789abcdef/wal/0000000a_100001038.wal.lz4")
	f.Add("generations/0123456789abcdef/wal/0000000a_00001038.wal.lz4.tmp")
	f.Fuzz(func(t *testing.T, name string) {
		g, snap, seg, ok := ParseName(name)
		if !ok {
			return
		}
		switch {
		case snap != nil && seg == nil:
			if SnapshotName(g, snap.Index) != name {
				t.Fatalf("%q parses as snapshot %d of %s", name, snap.Index, g)
			}
		case seg != nil && snap == nil:
			if SegmentName(g, seg.Index, seg.Offset) != name || seg.Offset < 0 {
				t.Fatalf("%q parses as segment %d at %d of %s", name, seg.Index, seg.Offset, g)
			}
		default:
			t.Fatalf("%q parses as %v and %v", name, snap, seg)
		}
	})
}

// FuzzSegment: the decompressed bytes of a first segment either verify as
// a WAL header and whole frames, kept at their offsets, or are an error.
func FuzzSegment(f *testing.F) {
	w := newWALIndex(512, 0x42, nil)
	page := bytes.Repeat([]byte{7}, 512)
	w.frame(1, 0, page)
	w.frame(2, 2, page)
	f.Add(w.b.Bytes())
	f.Add(w.b.Bytes()[:100])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		out := &memFile{}
		s := &walStream{pageSize: 512, out: out}
		if err := s.segment(bytes.NewReader(b)); err != nil {
			return
		}
		if s.off != int64(len(b)) || s.off != s.frameOffset(len(s.frames)) || !bytes.Equal(out.b, b) {
			t.Fatalf("%d bytes verified as %d frames ending at %d", len(b), len(s.frames), s.off)
		}
	})
}

// FuzzDecompress: an object either decompresses whole or is an error.
func FuzzDecompress(f *testing.F) {
	var c bytes.Buffer
	zw := lz4.NewWriter(&c)
	if _, err := zw.Write(bytes.Repeat([]byte("wal"), 1000)); err != nil || zw.Close() != nil {
		f.Fatal("compress the seed")
	}
	f.Add(c.Bytes())
	f.Add(c.Bytes()[:c.Len()-4])
	f.Add([]byte("age-encryption.org/v1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decompress(bytes.NewReader(b))
		if err == nil {
			_, _ = io.Copy(io.Discard, r)
		}
	})
}

// memFile is an io.WriterAt in memory.
type memFile struct{ b []byte }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	copy(m.b[off:], p)
	return len(p), nil
}
