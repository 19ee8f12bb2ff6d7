package crc64iso

import (
	"math/rand/v2"
	"testing"
)

// TestCombine checks that combining the checksums of two parts gives the
// checksum of the whole, for several part lengths and random prefixes.
func TestCombine(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 7, 16, 100, 4096} {
		s := NewShifter(n)
		if s.Len() != n {
			t.Fatalf("Len() = %d, want %d", s.Len(), n)
		}
		for range 50 {
			a := make([]byte, r.IntN(300))
			b := make([]byte, n)
			for i := range a {
				a[i] = byte(r.Uint32())
			}
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			whole := Checksum(append(append([]byte{}, a...), b...))
			if got := s.Combine(Checksum(a), Checksum(b)); got != whole {
				t.Fatalf("n=%d, len(a)=%d: Combine = %#x, Checksum(a||b) = %#x", n, len(a), got, whole)
			}
			// A running checksum can be extended part by part too.
			seed := r.Uint64()
			if got, want := s.Combine(Update(seed, a), Checksum(b)), Update(Update(seed, a), b); got != want {
				t.Fatalf("n=%d: extending a running checksum: %#x, want %#x", n, got, want)
			}
		}
	}
}

func FuzzCombine(f *testing.F) {
	f.Add([]byte("abc"), []byte("defgh"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		s := NewShifter(len(b))
		if got, want := s.Combine(Checksum(a), Checksum(b)), Checksum(append(append([]byte{}, a...), b...)); got != want {
			t.Fatalf("Combine = %#x, Checksum(a||b) = %#x", got, want)
		}
	})
}
