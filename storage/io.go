package storage

import (
	"context"
	"errors"
	"io"
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
}

func (r *CountingReader) Read(p []byte) (int, error) {
	n, err := r.R.Read(p)
	r.N += int64(n)
	return n, err
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
