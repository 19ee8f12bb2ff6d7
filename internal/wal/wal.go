// Package wal reads SQLite write-ahead log files exactly as SQLite does: it checks
// the header magic, the header checksum, the salts and the cumulative frame
// checksums, and reports frames only up to the last one that verifies. It knows
// nothing about SQL; it only parses the file format.
package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Sizes of the WAL file structures.
const (
	HeaderSize      = 32
	FrameHeaderSize = 24
)

const (
	magicLE = 0x377f0682 // checksums computed on little-endian words
	magicBE = 0x377f0683 // checksums computed on big-endian words
)

// ErrNoHeader reports a WAL file shorter than its header: SQLite has not written
// to it yet, or truncated it after a checkpoint.
var ErrNoHeader = errors.New("wal has no header")

// Header is the 32-byte WAL file header.
type Header struct {
	Magic         uint32
	Version       uint32
	PageSize      uint32
	CheckpointSeq uint32
	Salt1, Salt2  uint32
	Checksum1     uint32
	Checksum2     uint32
}

// BigEndian reports whether frame checksums use big-endian words.
func (h Header) BigEndian() bool { return h.Magic == magicBE }

// ParseHeader decodes and verifies a WAL header.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrNoHeader
	}
	h := Header{
		Magic:         binary.BigEndian.Uint32(b[0:]),
		Version:       binary.BigEndian.Uint32(b[4:]),
		PageSize:      binary.BigEndian.Uint32(b[8:]),
		CheckpointSeq: binary.BigEndian.Uint32(b[12:]),
		Salt1:         binary.BigEndian.Uint32(b[16:]),
		Salt2:         binary.BigEndian.Uint32(b[20:]),
		Checksum1:     binary.BigEndian.Uint32(b[24:]),
		Checksum2:     binary.BigEndian.Uint32(b[28:]),
	}
	if h.Magic != magicLE && h.Magic != magicBE {
		return Header{}, fmt.Errorf("bad wal magic %08x", h.Magic)
	}
	if h.PageSize == 1 { // older encodings of 65536
		h.PageSize = 65536
	}
	if h.PageSize < 512 || h.PageSize > 65536 || h.PageSize&(h.PageSize-1) != 0 {
		return Header{}, fmt.Errorf("bad wal page size %d", h.PageSize)
	}
	s1, s2 := Checksum(h.BigEndian(), 0, 0, b[:24])
	if s1 != h.Checksum1 || s2 != h.Checksum2 {
		return Header{}, errors.New("wal header checksum mismatch")
	}
	return h, nil
}

// Checksum continues SQLite's WAL checksum (s1, s2) over b, whose length must be
// a multiple of 8.
func Checksum(bigEndian bool, s1, s2 uint32, b []byte) (uint32, uint32) {
	// One loop per byte order, so that the loads inline: this runs over
	// every byte the application writes.
	b = b[:len(b)&^7]
	if bigEndian {
		for ; len(b) >= 8; b = b[8:] {
			s1 += binary.BigEndian.Uint32(b) + s2
			s2 += binary.BigEndian.Uint32(b[4:]) + s1
		}
		return s1, s2
	}
	for ; len(b) >= 32; b = b[32:] {
		s1 += binary.LittleEndian.Uint32(b) + s2
		s2 += binary.LittleEndian.Uint32(b[4:]) + s1
		s1 += binary.LittleEndian.Uint32(b[8:]) + s2
		s2 += binary.LittleEndian.Uint32(b[12:]) + s1
		s1 += binary.LittleEndian.Uint32(b[16:]) + s2
		s2 += binary.LittleEndian.Uint32(b[20:]) + s1
		s1 += binary.LittleEndian.Uint32(b[24:]) + s2
		s2 += binary.LittleEndian.Uint32(b[28:]) + s1
	}
	for ; len(b) >= 8; b = b[8:] {
		s1 += binary.LittleEndian.Uint32(b) + s2
		s2 += binary.LittleEndian.Uint32(b[4:]) + s1
	}
	return s1, s2
}

// Position is a point in one generation of a WAL file (a generation lasts from
// one restart of the log to the next, and is identified by its salts). Offset is
// the byte offset just past a commit frame (or HeaderSize for the start of the
// generation); Checksum1/2 are the cumulative checksums at that point, needed to
// verify the frames that follow.
type Position struct {
	Salt1, Salt2         uint32
	Offset               int64
	Checksum1, Checksum2 uint32
}

// SameGeneration reports whether p and h belong to the same log generation.
func (p Position) SameGeneration(h Header) bool {
	return p.Salt1 == h.Salt1 && p.Salt2 == h.Salt2
}

// Start returns the position at the beginning of the generation h heads.
func Start(h Header) Position {
	return Position{Salt1: h.Salt1, Salt2: h.Salt2, Offset: HeaderSize, Checksum1: h.Checksum1, Checksum2: h.Checksum2}
}

// Frame is one verified, committed WAL frame.
type Frame struct {
	Offset int64  // offset of the frame header in the file
	Pgno   uint32 // page number
	Commit uint32 // database size in pages if this frame ends a transaction, else 0
}

// DataOffset returns the offset of the frame's page data.
func (f Frame) DataOffset() int64 { return f.Offset + FrameHeaderSize }

// Scan is the result of reading committed transactions from a WAL.
type Scan struct {
	Header Header
	Frames []Frame  // committed frames in log order
	End    Position // position after the last committed frame
	Commit uint32   // database size after the last commit; 0 if no frame was committed
}

// FrameSize returns the size of one frame for the header's page size.
func (h Header) FrameSize() int64 { return FrameHeaderSize + int64(h.PageSize) }

// Read reads the committed frames that follow from in the log r, whose header is
// hdr. It stops at the first frame that fails verification (wrong salts or
// checksum, or a short read): frames past it are not part of the log. Frames of a
// transaction that has no commit frame yet are not returned. from must be in the
// generation of hdr. A limit above zero stops the scan at that offset.
func Read(r io.ReaderAt, hdr Header, from Position, limit int64) (*Scan, error) {
	if !from.SameGeneration(hdr) {
		return nil, errors.New("position is not in this wal generation")
	}
	scan := &Scan{Header: hdr, End: from}
	frameSize := hdr.FrameSize()
	// Read many frames per system call: a busy log grows by thousands of
	// frames a second.
	pooled := chunks.Get().(*[]byte)
	defer chunks.Put(pooled)
	chunk := (*pooled)[:frameSize*max(1, readAhead/frameSize)]
	var buf []byte // unread frames of the current chunk
	s1, s2 := from.Checksum1, from.Checksum2
	var pending []Frame
	for off := from.Offset; limit <= 0 || off < limit; off += frameSize {
		if len(buf) < int(frameSize) {
			n, err := r.ReadAt(chunk, off)
			if n < int(frameSize) {
				if err == io.EOF || err == nil {
					break
				}
				return nil, fmt.Errorf("read wal frame at offset %d: %w", off, err)
			}
			buf = chunk[:n-n%int(frameSize)]
		}
		frame := buf[:frameSize]
		buf = buf[frameSize:]
		if binary.BigEndian.Uint32(frame[8:]) != hdr.Salt1 || binary.BigEndian.Uint32(frame[12:]) != hdr.Salt2 {
			break
		}
		c1, c2 := Checksum(hdr.BigEndian(), s1, s2, frame[:8])
		c1, c2 = Checksum(hdr.BigEndian(), c1, c2, frame[FrameHeaderSize:])
		if c1 != binary.BigEndian.Uint32(frame[16:]) || c2 != binary.BigEndian.Uint32(frame[20:]) {
			break
		}
		s1, s2 = c1, c2
		f := Frame{Offset: off, Pgno: binary.BigEndian.Uint32(frame[0:]), Commit: binary.BigEndian.Uint32(frame[4:])}
		if f.Pgno == 0 {
			break
		}
		pending = append(pending, f)
		if f.Commit != 0 {
			scan.Frames = append(scan.Frames, pending...)
			pending = pending[:0]
			scan.Commit = f.Commit
			scan.End = Position{Salt1: hdr.Salt1, Salt2: hdr.Salt2, Offset: off + frameSize, Checksum1: s1, Checksum2: s2}
		}
	}
	return scan, nil
}

// readAhead is how many bytes Read asks for at a time.
const readAhead = 1 << 20

// chunks recycles Read's buffers: a busy log is read hundreds of times a
// second. Each holds at least one frame of the largest page size.
var chunks = sync.Pool{New: func() any {
	b := make([]byte, readAhead+FrameHeaderSize+65536)
	return &b
}}

// ReadHeader reads and verifies the header of the log r.
func ReadHeader(r io.ReaderAt) (Header, error) {
	b := make([]byte, HeaderSize)
	n, err := r.ReadAt(b, 0)
	if n < HeaderSize {
		if err == nil || err == io.EOF {
			return Header{}, ErrNoHeader
		}
		return Header{}, err
	}
	return ParseHeader(b)
}
