package storage

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
)

// ContextReader returns a reader of r that fails once ctx is done, whether
// or not r watches ctx itself.
func ContextReader(ctx context.Context, r io.Reader) io.Reader {
	return &ctxReader{ctx: ctx, r: r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// CountingReader counts the bytes read through it.
type CountingReader struct {
	R io.Reader
	N int64
	// Each, when set, is told the length of every read (a progress meter).
	Each func(n int)
}

func (r *CountingReader) Read(p []byte) (int, error) {
	n, err := r.R.Read(p)
	r.N += int64(n)
	if r.Each != nil && n > 0 {
		r.Each(n)
	}
	return n, err
}

// ProgressCounter returns a function that adds n bytes to those done and
// tells report the bytes done so far, of total: what a reader's Each (or
// any loop over bytes) calls to drive a progress meter. It returns nil when
// report is nil, and is safe for concurrent use.
func ProgressCounter(report func(done, total int64), total int64) func(n int) {
	if report == nil {
		return nil
	}
	var done atomic.Int64
	return func(n int) { report(done.Add(int64(n)), total) }
}

// SourceReader remembers the error of a failed read (Err), as opposed to
// the end of the data: when a decoder fails, the first means the source
// could not be read, the second that the data is shorter than it says. A
// read that found the data damaged (ErrDamaged: an encrypted file that does
// not authenticate) is the data's problem, not the source's.
type SourceReader struct {
	R   io.Reader
	Err error
}

func (s *SourceReader) Read(p []byte) (int, error) {
	n, err := s.R.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, ErrDamaged) {
		s.Err = err
	}
	return n, err
}
