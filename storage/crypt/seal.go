package crypt

import (
	"bufio"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/superfly/ltx"
)

// seal returns the encrypted object of the plaintext r, to be stored under
// the given name. When r can be read at any offset and its size is known
// (an *os.File), so can the result, which lets a backend retry an upload
// from the start and send parts of it in parallel; the plaintext must not
// change meanwhile, since a chunk sealed twice is sealed with the same
// nonce.
func seal(k Key, r io.Reader, level int, minTXID, maxTXID ltx.TXID) (io.Reader, error) {
	h := header{keyID: k.id()}
	if _, err := rand.Read(h.salt[:]); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	aead, err := h.aead(k)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	hdr := h.marshal()
	s := sealer{aead: aead, hdr: hdr, ad: additionalData(hdr, level, minTXID, maxTXID)}
	if ra, ok := r.(interface {
		io.ReaderAt
		io.Seeker
	}); ok {
		start, err := ra.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		end, err := ra.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, err
		}
		if _, err := ra.Seek(start, io.SeekStart); err != nil {
			return nil, err
		}
		plain := io.NewSectionReader(ra, start, end-start)
		return &sealedAt{sealer: s, plain: plain, size: SealedSize(end - start)}, nil
	}
	return &sealedStream{sealer: s, src: bufio.NewReaderSize(r, chunkSize), out: slices.Clone(hdr)}, nil
}

type sealer struct {
	aead cipher.AEAD
	hdr  []byte
	ad   []byte
}

// sealChunk appends chunk i of the plaintext p to dst.
func (s *sealer) sealChunk(dst, p []byte, i uint64, last bool) []byte {
	return s.aead.Seal(dst, nonce(i, last), p, s.ad)
}

// sealedStream encrypts a plaintext read once, in order. It reads one byte
// ahead to know which chunk is the last.
type sealedStream struct {
	sealer
	src   *bufio.Reader
	plain [chunkSize]byte
	out   []byte // sealed bytes not yet read
	next  uint64 // the next chunk's index
	done  bool
	err   error
}

func (s *sealedStream) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.done {
			return 0, io.EOF
		}
		if s.err != nil {
			return 0, s.err
		}
		n, end, err := fill(s.src, s.plain[:])
		switch {
		case err != nil:
			s.err = err
			return 0, err
		case end:
			s.done = true
		default:
			if _, err := s.src.Peek(1); err == io.EOF {
				s.done = true
			} else if err != nil {
				s.err = err
				return 0, err
			}
		}
		if s.next > 0 && n == 0 {
			// The peek saw a byte the read then did not get: the
			// previous chunk was sealed as not the last.
			s.err = fmt.Errorf("encrypt: read: %w", io.ErrUnexpectedEOF)
			return 0, s.err
		}
		s.out = s.sealChunk(s.out[:0], s.plain[:n], s.next, s.done)
		s.next++
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// sealedAt encrypts a plaintext that can be read at any offset: the
// encrypted object can be too. A backend reads it in parts, concurrently,
// and again from the start to retry: a chunk may be sealed more than once.
// Sealed again, a chunk must be what it was, since its nonce is the same:
// each chunk's tag is kept (16 bytes per 64 KiB), and a plaintext that
// changed meanwhile fails the upload rather than be sealed twice.
//
// The few chunks sealed last are kept for readers that read one in several
// calls, and their buffers are used again once pushed out, so that an
// object of any size is sealed in the same few buffers: readers copy from
// a kept chunk only under the lock, so a buffer pushed out is no one's.
type sealedAt struct {
	sealer
	plain *io.SectionReader
	size  int64
	off   int64 // for Read and Seek

	mu     sync.Mutex
	tags   map[int64][tagSize]byte
	recent map[int64][]byte // sealed chunks kept
	order  []int64          // of recent, oldest first
	free   [][]byte         // buffers of chunks pushed out
}

// recentChunks is how many sealed chunks sealedAt keeps: enough for the
// parts a backend uploads at once.
const recentChunks = 16

func (s *sealedAt) Size() int64 { return s.size }

func (s *sealedAt) Read(p []byte) (int, error) {
	n, err := s.ReadAt(p, s.off)
	s.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (s *sealedAt) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += s.off
	case io.SeekEnd:
		offset += s.size
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	s.off = offset
	return offset, nil
}

func (s *sealedAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("read at a negative offset")
	}
	var n int
	for len(p) > 0 && off < s.size {
		var m int
		if off < int64(headerSize) {
			m = copy(p, s.hdr[off:])
		} else {
			var err error
			i := (off - int64(headerSize)) / sealedChunk
			if m, err = s.readChunk(p, i, (off-int64(headerSize))%sealedChunk); err != nil {
				return n, err
			}
		}
		n, off, p = n+m, off+int64(m), p[m:]
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}

// readChunk copies sealed chunk i, from byte from, to p.
func (s *sealedAt) readChunk(p []byte, i, from int64) (int, error) {
	s.mu.Lock()
	if c, ok := s.recent[i]; ok {
		defer s.mu.Unlock()
		return copy(p, c[from:]), nil
	}
	var buf []byte
	if n := len(s.free); n > 0 {
		buf, s.free = s.free[n-1], s.free[:n-1]
	}
	s.mu.Unlock()

	c, err := s.seal(buf, i)
	if err != nil {
		return 0, err
	}
	var tag [tagSize]byte
	copy(tag[:], c[len(c)-tagSize:])

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tags == nil {
		s.tags, s.recent = map[int64][tagSize]byte{}, map[int64][]byte{}
	}
	if t, ok := s.tags[i]; ok && t != tag {
		return 0, errors.New("encrypt: the file changed while it was uploaded")
	}
	s.tags[i] = tag
	n := copy(p, c[from:])
	if _, ok := s.recent[i]; ok {
		// Sealed meanwhile by another reader too.
		s.release(c)
		return n, nil
	}
	if len(s.order) == recentChunks {
		s.release(s.recent[s.order[0]])
		delete(s.recent, s.order[0])
		s.order = s.order[1:]
	}
	s.recent[i], s.order = c, append(s.order, i)
	return n, nil
}

// release keeps a buffer no chunk uses any more for the next seal. s.mu
// must be held.
func (s *sealedAt) release(buf []byte) {
	if buf != nil && len(s.free) < recentChunks {
		s.free = append(s.free, buf[:0])
	}
}

// seal seals chunk i into buf, which it grows as needed.
func (s *sealedAt) seal(buf []byte, i int64) ([]byte, error) {
	plainSize := s.plain.Size()
	last := i == max(0, (plainSize-1)/chunkSize)
	n := int64(chunkSize)
	if last {
		n = plainSize - i*chunkSize
	}
	if int64(cap(buf)) < n+tagSize {
		buf = make([]byte, 0, chunkSize+tagSize)
	}
	buf = buf[:n]
	if m, err := s.plain.ReadAt(buf, i*chunkSize); int64(m) < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF // the plaintext shrank
		}
		return nil, fmt.Errorf("encrypt: read: %w", err)
	}
	return s.sealChunk(buf[:0], buf, uint64(i), last), nil
}

// forget drops chunk i from the kept ones, as if pushed out.
func (s *sealedAt) forget(i int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.release(s.recent[i])
	delete(s.recent, i)
	s.order = slices.DeleteFunc(s.order, func(j int64) bool { return j == i })
}
