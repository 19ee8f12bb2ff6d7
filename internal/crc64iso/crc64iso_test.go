package crc64iso

import (
	"hash/crc64"
	"math/rand/v2"
	"testing"

	"github.com/superfly/ltx"
)

var isoTable = crc64.MakeTable(crc64.ISO)

// TestMatchesHashCRC64 checks Update against hash/crc64 for every length up
// to a few blocks, at every alignment, and chained from random states.
func TestMatchesHashCRC64(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 300)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for off := range 17 {
		for n := 0; off+n <= len(buf); n++ {
			p := buf[off : off+n]
			seed := r.Uint64()
			if got, want := Update(seed, p), crc64.Update(seed, isoTable, p); got != want {
				t.Fatalf("Update(%#x, buf[%d:%d]) = %#x, hash/crc64 says %#x", seed, off, off+n, got, want)
			}
		}
	}
	// Past 4*laneLen bytes the four-lane loop runs: lengths around its
	// multiples, from random states.
	big := make([]byte, 5*4*laneLen+100)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	for _, n := range []int{4*laneLen - 1, 4 * laneLen, 4*laneLen + 1, 4*laneLen + 15, 8 * laneLen, 8*laneLen + 7, 12*laneLen - 1, len(big) - 3} {
		for off := range 3 {
			seed := r.Uint64()
			p := big[off : off+n]
			if got, want := Update(seed, p), crc64.Update(seed, isoTable, p); got != want {
				t.Fatalf("Update(%#x, %d bytes) = %#x, hash/crc64 says %#x", seed, n, got, want)
			}
		}
	}
	page := make([]byte, 65536)
	for i := range page {
		page[i] = byte(r.Uint32())
	}
	if got, want := Checksum(page), crc64.Checksum(page, isoTable); got != want {
		t.Fatalf("Checksum(64 KiB) = %#x, hash/crc64 says %#x", got, want)
	}
}

// TestHashMatchesHashCRC64 checks the hash.Hash64 against crc64.New over
// writes split at arbitrary points.
func TestHashMatchesHashCRC64(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 10000)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for range 100 {
		got, want := New(), crc64.New(isoTable)
		for p := data; len(p) > 0; {
			n := min(len(p), r.IntN(100))
			got.Write(p[:n])
			want.Write(p[:n])
			p = p[n:]
		}
		if got.Sum64() != want.Sum64() || string(got.Sum([]byte("x"))) != string(want.Sum([]byte("x"))) {
			t.Fatalf("sums differ: %#x, hash/crc64 says %#x", got.Sum64(), want.Sum64())
		}
		got.Reset()
		if got.Sum64() != 0 || got.Size() != want.Size() || got.BlockSize() != want.BlockSize() {
			t.Fatal("Reset, Size or BlockSize differ from hash/crc64")
		}
	}
}

func FuzzMatchesHashCRC64(f *testing.F) {
	f.Add(uint64(0), []byte(""))
	f.Add(uint64(0), []byte("123456789"))
	f.Add(^uint64(0), make([]byte, 4096))
	f.Add(uint64(1), make([]byte, 4*laneLen+9))
	f.Fuzz(func(t *testing.T, seed uint64, p []byte) {
		if got, want := Update(seed, p), crc64.Update(seed, isoTable, p); got != want {
			t.Fatalf("Update(%#x, %d bytes) = %#x, hash/crc64 says %#x", seed, len(p), got, want)
		}
	})
}

func BenchmarkPage(b *testing.B) {
	page := make([]byte, 4096)
	b.Run("crc64iso", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			Checksum(page)
		}
	})
	b.Run("slicing16", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			update16(0, page)
		}
	})
	b.Run("hash-crc64", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			crc64.Checksum(page, isoTable)
		}
	})
}

// TestLTXPageChecksum checks that ltx's page checksum computed with this
// package's hash is the one ltx computes with hash/crc64, the way walship
// calls it.
func TestLTXPageChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	h := New()
	for _, size := range []int{512, 4096, 65536} {
		page := make([]byte, size)
		for range 20 {
			for i := range page {
				page[i] = byte(r.Uint32())
			}
			pgno := r.Uint32()
			if got, want := ltx.ChecksumPageWithHasher(h, pgno, page), ltx.ChecksumPage(pgno, page); got != want {
				t.Fatalf("page %d of %d bytes: checksum %s, ltx says %s", pgno, size, got, want)
			}
		}
	}
}
