package webdav

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// body is the content of one upload, readable again from its start for
// every attempt, with a known length.
type body struct {
	size int64

	seeker io.ReadSeeker // the caller's reader, when it can seek
	start  int64         // where the content starts in seeker

	mem  []byte   // the content, when small enough to hold in memory
	file *os.File // the content spooled to a temporary file otherwise
}

// newBody prepares r for upload. A reader that can seek (an *os.File, a
// *bytes.Reader) is used in place, from its current position to its end.
// Any other is read into memory up to memLimit bytes and spooled to a
// temporary file beyond that.
func newBody(r io.Reader, memLimit int64) (*body, error) {
	if rs, ok := r.(io.ReadSeeker); ok {
		start, err := rs.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		end, err := rs.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, err
		}
		if _, err := rs.Seek(start, io.SeekStart); err != nil {
			return nil, err
		}
		return &body{size: end - start, seeker: rs, start: start}, nil
	}

	var buf bytes.Buffer
	n, err := io.CopyN(&buf, r, memLimit+1)
	if errors.Is(err, io.EOF) {
		return &body{size: n, mem: buf.Bytes()}, nil
	} else if err != nil {
		return nil, err
	}

	f, err := os.CreateTemp("", "walship-webdav-*.ltx")
	if err != nil {
		return nil, fmt.Errorf("spool to a temporary file: %w", err)
	}
	b := &body{file: f}
	if _, err := f.Write(buf.Bytes()); err != nil {
		b.close()
		return nil, fmt.Errorf("spool to a temporary file: %w", err)
	}
	rest, err := io.Copy(f, r)
	if err != nil {
		b.close()
		return nil, err
	}
	b.size = int64(buf.Len()) + rest
	return b, nil
}

// reader returns the content from its start.
func (b *body) reader() (io.Reader, error) {
	switch {
	case b.seeker != nil:
		if _, err := b.seeker.Seek(b.start, io.SeekStart); err != nil {
			return nil, &sourceError{err: err}
		}
		return io.LimitReader(b.seeker, b.size), nil
	case b.file != nil:
		return io.NewSectionReader(b.file, 0, b.size), nil
	default:
		return bytes.NewReader(b.mem), nil
	}
}

// close removes the temporary file, if any.
func (b *body) close() {
	if b.file != nil {
		b.file.Close()
		os.Remove(b.file.Name())
	}
}
