package restore

import (
	"context"
	"errors"
	"io"

	"github.com/walship/walship/storage"
)

// Read-ahead: an LTX file is read from the replica by its own goroutine, in
// chunks of readChunk bytes, up to readChunks chunks ahead of the decoder, so
// reading (a disk or the network) overlaps with decoding. The chunks are
// allocated once per restore and reused for every file.
const (
	readChunk  = 256 << 10
	readChunks = 4
)

// readBuffers returns the chunks a restore reads its files into.
func readBuffers() [][]byte {
	bufs := make([][]byte, readChunks)
	for i := range bufs {
		bufs[i] = make([]byte, readChunk)
	}
	return bufs
}

// sourceError is an error of the replica's reader (not of the data it
// returned), so that a failed read is not reported as corrupt data.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// chunk is one read of the source: buf[:n], then err (io.EOF at the end).
type chunk struct {
	buf []byte
	n   int
	err error
}

// aheadReader is an io.Reader over the chunks its goroutine reads. It is not
// safe for concurrent use; stop must be called once the reader is no longer
// needed, and returns only when the goroutine has stopped reading the
// source.
type aheadReader struct {
	full chan chunk    // read, in order
	free chan []byte   // to be read into
	quit chan struct{} // closed by stop
	done chan struct{} // closed when the goroutine returns

	src io.Reader

	buf []byte // the chunk being consumed
	cur []byte // its unread part
	err error  // the error after cur
	// consumed, when set, is told the length of each chunk as the reader
	// starts on it.
	consumed func(n int)
}

// readAhead starts reading r into bufs. The goroutine checks ctx before each
// read.
func readAhead(ctx context.Context, r io.Reader, bufs [][]byte) *aheadReader {
	ar := &aheadReader{
		full: make(chan chunk, len(bufs)),
		free: make(chan []byte, len(bufs)),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	for _, b := range bufs {
		ar.free <- b
	}
	ar.src = r
	go ar.loop(ctx, r)
	return ar
}

func (ar *aheadReader) loop(ctx context.Context, r io.Reader) {
	defer close(ar.done)
	for {
		var buf []byte
		select {
		case buf = <-ar.free:
		case <-ar.quit:
			return
		}
		var n int
		err := ctx.Err()
		if err == nil {
			n, err = io.ReadFull(r, buf)
			switch {
			case err == io.ErrUnexpectedEOF:
				err = io.EOF
			case err != nil && err != io.EOF && !errors.Is(err, storage.ErrDamaged):
				// A read that found the data damaged (an encrypted
				// file that does not authenticate) is not the source's.
				err = &sourceError{err}
			}
		}
		// full holds as many chunks as there are buffers: never blocks.
		ar.full <- chunk{buf, n, err}
		if err != nil {
			return
		}
	}
}

func (ar *aheadReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(ar.cur) == 0 {
		if ar.err != nil {
			return 0, ar.err
		}
		if ar.buf != nil {
			ar.free <- ar.buf // free holds every buffer: never blocks
			ar.buf = nil
		}
		c := <-ar.full
		ar.buf, ar.cur, ar.err = c.buf, c.buf[:c.n], c.err
		if ar.consumed != nil && c.n > 0 {
			ar.consumed(c.n)
		}
	}
	n := copy(p, ar.cur)
	ar.cur = ar.cur[n:]
	return n, nil
}

// stop makes the goroutine stop reading and waits for it: after stop
// returns, the source may be closed and the buffers reused. A source that
// can be interrupted (an interrupter) is, so that stop does not wait for a
// read that would block.
func (ar *aheadReader) stop() {
	close(ar.quit)
	if i, ok := ar.src.(interrupter); ok {
		i.interrupt()
	}
	<-ar.done
}

// interrupter is a source whose blocked reads can be ended.
type interrupter interface{ interrupt() }

// isSourceError reports whether err is a failed read of the replica, and
// returns the replica's error.
func isSourceError(err error) (error, bool) {
	var se *sourceError
	if errors.As(err, &se) {
		return se.err, true
	}
	return nil, false
}
