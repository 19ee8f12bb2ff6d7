package crc64iso

// A Shifter extends checksums by a fixed number n of bytes: it lets the
// checksum of a message be put together from the checksums of its parts,
// computed apart (in parallel, or once for two uses), as
//
//	Checksum(a || b) == s.Combine(Checksum(a), Checksum(b)) // len(b) == n
//
// CRCs are linear over GF(2): appending b to a changes the register as
// appending n zero bytes does, then adds b's own CRC. The zero-extension is
// a linear map on 64 bits, kept as one 256-entry table per byte of the
// register.
type Shifter struct {
	n int
	t [8][256]uint64
}

// NewShifter returns a Shifter for parts of n bytes. It costs 64 passes of
// the CRC over n zero bytes: build one per length, not per message.
func NewShifter(n int) *Shifter {
	s := &Shifter{n: n}
	zeros := make([]byte, n)
	var basis [64]uint64
	for i := range basis {
		basis[i] = update16(1<<i, zeros)
	}
	for j := range 8 {
		for v := range 256 {
			var x uint64
			for k := range 8 {
				if v&(1<<k) != 0 {
					x ^= basis[8*j+k]
				}
			}
			s.t[j][v] = x
		}
	}
	return s
}

// Len returns the length of the parts s combines.
func (s *Shifter) Len() int { return s.n }

// shift returns the register crc after n zero bytes.
func (s *Shifter) shift(crc uint64) uint64 {
	t := &s.t
	return t[0][crc&0xff] ^ t[1][crc>>8&0xff] ^ t[2][crc>>16&0xff] ^ t[3][crc>>24&0xff] ^
		t[4][crc>>32&0xff] ^ t[5][crc>>40&0xff] ^ t[6][crc>>48&0xff] ^ t[7][crc>>56]
}

// Combine returns the checksum of a || b from a's checksum (as Update
// returns it, after any bytes) and the checksum of b alone, of s.Len()
// bytes.
func (s *Shifter) Combine(crcA, crcB uint64) uint64 {
	// Update(c, b) = ^update(^c, b), and update(x, b) = shift(x) ^ update(0, b):
	// the inversions of the standard form cancel, leaving shift(crcA) ^ crcB.
	return s.shift(crcA) ^ crcB
}
