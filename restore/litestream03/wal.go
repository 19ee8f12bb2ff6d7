package litestream03

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/pierrec/lz4/v4"

	"github.com/walship/walship/internal/wal"
)

// frame is one WAL frame that verified.
type frame struct {
	pgno   uint32
	commit uint32 // the database's size in pages after a commit frame; else 0
}

// walStream checks the bytes of one WAL index as its segments arrive, in
// order, and keeps them in out at their offsets in the index: the header's
// checksum, then each frame's salts (the header's) and SQLite's cumulative
// checksum, which also proves the segments follow each other.
type walStream struct {
	pageSize uint32 // the database's: the WAL's must be the same
	out      io.WriterAt
	hdr      wal.Header
	off      int64 // bytes of the index read so far
	s1, s2   uint32
	frames   []frame
	buf      []byte
}

// walVersion is the file format version of every WAL header SQLite writes.
const walVersion = 3007000

func (w *walStream) frameSize() int64 { return wal.FrameHeaderSize + int64(w.pageSize) }

// frameOffset returns the offset of frame i in the index.
func (w *walStream) frameOffset(i int) int64 { return wal.HeaderSize + int64(i)*w.frameSize() }

// segment reads the decompressed bytes of one segment, which start at
// w.off. A failed write to out is a diskError; any other error is r's, or
// says what is wrong with the bytes.
func (w *walStream) segment(r io.Reader) error {
	first := w.off == 0
	if first {
		b := make([]byte, wal.HeaderSize)
		if n, err := io.ReadFull(r, b); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return fmt.Errorf("it decompresses to %d bytes, less than a WAL header", n)
			}
			return err
		}
		hdr, err := wal.ParseHeader(b)
		if err != nil {
			return fmt.Errorf("it does not start with a valid WAL header: %w", err)
		}
		if hdr.Version != walVersion {
			return fmt.Errorf("its WAL header gives format version %d, not SQLite's %d", hdr.Version, walVersion)
		}
		if hdr.PageSize != w.pageSize {
			return fmt.Errorf("its WAL header gives %d-byte pages; the snapshot's are %d bytes", hdr.PageSize, w.pageSize)
		}
		if _, err := w.out.WriteAt(b, 0); err != nil {
			return diskError{err}
		}
		w.hdr, w.s1, w.s2, w.off = hdr, hdr.Checksum1, hdr.Checksum2, wal.HeaderSize
	}
	size := w.frameSize()
	if len(w.buf) != int(size) {
		w.buf = make([]byte, size)
	}
	n := 0
	for ; ; n++ {
		k, err := io.ReadFull(r, w.buf)
		if err == io.EOF {
			break
		} else if err == io.ErrUnexpectedEOF {
			return fmt.Errorf("it ends %d bytes into the WAL frame at offset %d: it was cut short", k, w.off)
		} else if err != nil {
			return err
		}
		b := w.buf
		if binary.BigEndian.Uint32(b[8:]) != w.hdr.Salt1 || binary.BigEndian.Uint32(b[12:]) != w.hdr.Salt2 {
			return fmt.Errorf("the WAL frame at offset %d has salts %08x %08x, not its WAL header's %08x %08x: it belongs to another WAL",
				w.off, binary.BigEndian.Uint32(b[8:]), binary.BigEndian.Uint32(b[12:]), w.hdr.Salt1, w.hdr.Salt2)
		}
		s1, s2 := wal.Checksum(w.hdr.BigEndian(), w.s1, w.s2, b[:8])
		s1, s2 = wal.Checksum(w.hdr.BigEndian(), s1, s2, b[wal.FrameHeaderSize:])
		if s1 != binary.BigEndian.Uint32(b[16:]) || s2 != binary.BigEndian.Uint32(b[20:]) {
			return fmt.Errorf("the WAL frame at offset %d fails its checksum: it, or a frame before it in this WAL index, is not what SQLite wrote", w.off)
		}
		pgno := binary.BigEndian.Uint32(b)
		if pgno == 0 {
			return fmt.Errorf("the WAL frame at offset %d is of page 0, which does not exist", w.off)
		}
		if _, err := w.out.WriteAt(b, w.off); err != nil {
			return diskError{err}
		}
		w.s1, w.s2 = s1, s2
		w.frames = append(w.frames, frame{pgno: pgno, commit: binary.BigEndian.Uint32(b[4:])})
		w.off += size
	}
	if n == 0 && !first {
		return errors.New("it holds no WAL frame")
	}
	return nil
}

// The first bytes of an LZ4 frame, and of a file encrypted with age
// (Litestream v0.3's age: setting).
var (
	lz4Magic = []byte{0x04, 0x22, 0x4d, 0x18}
	ageMagic = []byte("age-encryption.org/")
)

// ErrEncrypted is wrapped by the error of an object that Litestream v0.3
// encrypted with age, which walship does not decrypt.
var ErrEncrypted = errors.New("it is encrypted with age (Litestream's age: setting), which walship does not decrypt: restore it with Litestream v0.3 (litestream restore), which holds the identity")

// decompress returns the decompressed content of an object read from r,
// which must be one LZ4 frame, as Litestream v0.3 writes them. Reading it
// fails unless the frame is whole: its checksums verify (those it carries)
// and it ends with its end mark.
func decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(len(ageMagic))
	if bytes.Equal(head, ageMagic) {
		return nil, ErrEncrypted
	}
	if len(head) < len(lz4Magic)+1 {
		if err != nil && err != io.EOF {
			return nil, err
		}
		return nil, fmt.Errorf("it is %d bytes long, too short for an LZ4 frame", len(head))
	}
	if !bytes.Equal(head[:len(lz4Magic)], lz4Magic) {
		return nil, errors.New("it is not LZ4-compressed, as Litestream v0.3 writes every object")
	}
	t := &tailReader{r: br}
	return &lz4Stream{zr: lz4.NewReader(t), tail: t, checksummed: head[4]&0x04 != 0}, nil
}

// lz4Stream reads an LZ4 frame whole, or fails.
type lz4Stream struct {
	zr          *lz4.Reader
	tail        *tailReader
	checksummed bool // the frame carries a checksum of its content
}

func (s *lz4Stream) Read(p []byte) (int, error) {
	n, err := s.zr.Read(p)
	switch {
	case err == io.EOF && !s.checksummed && s.tail.last != [4]byte{}:
		// Without a content checksum, the LZ4 reader cannot tell a frame
		// cut short at a block's end from its end mark.
		return n, errors.New("its LZ4 frame has no end mark: it was cut short")
	case err == io.ErrUnexpectedEOF:
		return n, errors.New("its LZ4 data ends early: it was cut short")
	case err != nil && err != io.EOF:
		return n, fmt.Errorf("it does not decompress: %w", err)
	}
	return n, err
}

// tailReader remembers the last 4 bytes read through it.
type tailReader struct {
	r    io.Reader
	last [4]byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n >= len(t.last) {
		copy(t.last[:], p[n-len(t.last):n])
	} else if n > 0 {
		copy(t.last[:], t.last[n:])
		copy(t.last[len(t.last)-n:], p[:n])
	}
	return n, err
}
