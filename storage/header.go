package storage

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/superfly/ltx"
)

// Reader is the read side of a Client: what checking and merging files
// needs.
type Reader interface {
	String() string
	LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error)
	OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error)
}

// ErrDamaged is wrapped by the errors of ReadHeaderTrailer about a file's
// content, as opposed to a read that failed.
var ErrDamaged = errors.New("the file is damaged")

// ReadHeaderTrailer reads the header and trailer of one file with two ranged
// reads, and checks that the header's TXIDs are the file name's.
func ReadHeaderTrailer(ctx context.Context, c Reader, f *ltx.FileInfo) (ltx.Header, ltx.Trailer, error) {
	var hdr ltx.Header
	var trailer ltx.Trailer
	name := Describe(f.Level, f.MinTXID, f.MaxTXID)
	if f.Size < ltx.HeaderSize+ltx.TrailerSize {
		return hdr, trailer, fmt.Errorf("replica %s: %s is truncated (%d bytes)", c, name, f.Size)
	}
	b, err := readRange(ctx, c, f, 0, ltx.HeaderSize)
	if err != nil {
		return hdr, trailer, err
	}
	if err := hdr.UnmarshalBinary(b); err != nil {
		return hdr, trailer, fmt.Errorf("replica %s: %s: bad header: %w (%w)", c, name, err, ErrDamaged)
	}
	if b, err = readRange(ctx, c, f, f.Size-ltx.TrailerSize, ltx.TrailerSize); err != nil {
		return hdr, trailer, err
	}
	if err := trailer.UnmarshalBinary(b); err != nil {
		return hdr, trailer, fmt.Errorf("replica %s: %s: bad trailer: %w (%w)", c, name, err, ErrDamaged)
	}
	if hdr.MinTXID != f.MinTXID || hdr.MaxTXID != f.MaxTXID {
		return hdr, trailer, fmt.Errorf("replica %s: %s has TXIDs %s-%s in its header (%w)", c, name, hdr.MinTXID, hdr.MaxTXID, ErrDamaged)
	}
	return hdr, trailer, nil
}

func readRange(ctx context.Context, c Reader, f *ltx.FileInfo, off, n int64) ([]byte, error) {
	rc, err := c.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("replica %s: read %s: %w", c, Describe(f.Level, f.MinTXID, f.MaxTXID), err)
	}
	return b, nil
}

// HeaderError words the error the LTX decoder gave for hdr, the header it
// read, for an operator: its own message prints TXIDs in decimal, while
// every name and message of walship's prints them as the 16 hex digits of
// the file names.
func HeaderError(hdr ltx.Header, err error) error {
	if err == nil {
		return nil
	}
	if hdr.MinTXID != 0 && hdr.MaxTXID != 0 && hdr.MinTXID > hdr.MaxTXID {
		return fmt.Errorf("its header's TXIDs are out of order: %s-%s", hdr.MinTXID, hdr.MaxTXID)
	}
	return err
}

// IsFullCopy reports whether f, whose header is hdr, holds every page of
// the database it describes (the lock page aside, which no file holds),
// from the page index at the end of the file: two more ranged reads, and
// memory that does not grow with the file. walship writes such a file when
// a database's page size changes; a restore replaces the database with it.
func IsFullCopy(ctx context.Context, c Reader, f *ltx.FileInfo, hdr ltx.Header) (bool, error) {
	name := Describe(f.Level, f.MinTXID, f.MaxTXID)
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("replica %s: %s: %s (%w)", c, name, fmt.Sprintf(format, args...), ErrDamaged)
	}
	const sizeField = 8
	end := f.Size - ltx.TrailerSize - sizeField
	if end < ltx.HeaderSize {
		return false, damaged("too short for a page index (%d bytes)", f.Size)
	}
	b, err := readRange(ctx, c, f, end, sizeField)
	if err != nil {
		return false, err
	}
	n := int64(binary.BigEndian.Uint64(b))
	if n < 1 || n > end-ltx.HeaderSize {
		return false, damaged("its page index size, %d, does not fit the file", n)
	}
	rc, err := c.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, end-n, n)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	fc := NewFullCopy(hdr)
	for {
		pgno, err := binary.ReadUvarint(br)
		if err != nil {
			return false, damaged("read its page index: %v", err)
		}
		if pgno == 0 { // the end of the index
			return fc.Full(), nil
		}
		if pgno > uint64(hdr.Commit) || !fc.See(uint32(pgno)) {
			return false, nil
		}
		// Each entry also holds the page's offset and size.
		for range 2 {
			if _, err := binary.ReadUvarint(br); err != nil {
				return false, damaged("read its page index: %v", err)
			}
		}
	}
}
