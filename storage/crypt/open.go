package crypt

import (
	"bufio"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
)

// opened decrypts chunks of an object, in order, from the sealed bytes of
// chunk first on. It reads one byte ahead to know which chunk is the last.
type opened struct {
	aead   cipher.AEAD
	ad     []byte
	src    *bufio.Reader
	closer io.Closer
	first  uint64 // index of the first chunk read
	next   uint64 // index of the next chunk
	skip   int64  // plaintext bytes to drop before the first returned
	remain int64  // plaintext bytes still to return; -1: to the end
	sealed [sealedChunk]byte
	out    []byte // decrypted bytes not yet returned
	last   bool   // the last chunk was decrypted
	err    error
	failed func(error) error // turns a failure into the error to return
	atEnd  func() error      // checks that the chunk before first is the last
}

func (o *opened) Read(p []byte) (int, error) {
	for len(o.out) == 0 {
		if o.err != nil {
			return 0, o.err
		}
		if o.last || o.remain == 0 {
			return 0, io.EOF
		}
		if err := o.openNext(); err != nil {
			o.err = err
			return 0, err
		}
	}
	if o.remain >= 0 && int64(len(o.out)) > o.remain {
		o.out = o.out[:o.remain]
	}
	n := copy(p, o.out)
	o.out = o.out[n:]
	if o.remain >= 0 {
		o.remain -= int64(n)
	}
	return n, nil
}

func (o *opened) openNext() error {
	n, end, err := fill(o.src, o.sealed[:])
	switch {
	case err != nil:
		return err // the backend's: the object could not be read
	case end:
		o.last = true
	default:
		if _, err := o.src.Peek(1); err == io.EOF {
			o.last = true
		} else if err != nil {
			return err
		}
	}
	switch {
	case n == 0 && o.next == o.first && o.first > 0 && o.atEnd != nil:
		// A read from the end: the chunk before must be the last.
		if err := o.atEnd(); err != nil {
			return err
		}
		o.last = true
		return nil
	case n < tagSize:
		return o.failed(errors.New("it is cut short"))
	case n == tagSize && o.last && o.next > 0:
		// Only an empty object has an empty last chunk.
		return o.failed(errors.New("it ends with an empty chunk"))
	}
	out, err := o.aead.Open(o.sealed[:0], nonce(o.next, o.last), o.sealed[:n], o.ad)
	if err != nil {
		what := fmt.Sprintf("chunk %d", o.next)
		if o.last {
			what = fmt.Sprintf("chunk %d (the last read)", o.next)
		}
		return o.failed(fmt.Errorf("%s does not authenticate", what))
	}
	o.next++
	if o.skip > 0 {
		d := min(o.skip, int64(len(out)))
		out, o.skip = out[d:], o.skip-d
	}
	o.out = out
	return nil
}

func (o *opened) Close() error { return o.closer.Close() }

// fill reads into b until it is full or r ends (end). Unlike io.ReadFull,
// it tells the end of r from a read that failed with io.ErrUnexpectedEOF,
// as a connection cut short does.
func fill(r io.Reader, b []byte) (n int, end bool, err error) {
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}
