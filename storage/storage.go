// Package storage defines the interface every replica backend implements and the
// helpers shared by all of them. A backend stores LTX files by level and TXID range;
// it knows nothing about SQLite or WAL files.
package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/superfly/ltx"
)

// SnapshotLevel is the level that holds full-database snapshots.
const SnapshotLevel = 9

// MaxLevel is the highest level a replica may hold.
const MaxLevel = SnapshotLevel

// ErrNotFound is returned (wrapped) by OpenLTXFile when the file does not exist.
var ErrNotFound = errors.New("not found")

// ErrKey is wrapped by the error of reading a file without the encryption
// key it was written with, or a file that is not encrypted with a key
// (package storage/crypt): reading it again cannot help.
var ErrKey = errors.New("encryption key")

// Client is one replica destination. All methods are safe for concurrent use.
// Their errors name the destination ("replica s3://bucket/db: ..."), so
// callers do not wrap them with it again.
type Client interface {
	// Type names the backend: "file", "s3", ...
	Type() string

	// String describes the destination for log and error messages. It never
	// contains credentials.
	String() string

	// LTXFiles lists the files of one level, sorted by MinTXID then MaxTXID.
	// Files that are not valid LTX names are ignored. A level that does not
	// exist yet is an empty list, not an error.
	LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error)

	// OpenLTXFile opens a file for reading from offset. A size of zero reads to
	// the end of the file; otherwise at most size bytes are returned. A missing
	// file is an error wrapping ErrNotFound.
	OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error)

	// WriteLTXFile stores the whole of r as the given file, atomically: a reader
	// sees either the complete file or none. createdAt (the LTX header timestamp)
	// is stored with it and returned by LTXFiles as CreatedAt.
	WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error)

	// DeleteLTXFiles removes the given files. Files already gone are not an error.
	DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error

	Records
}

// FileName returns the name of an LTX file inside its level directory.
func FileName(minTXID, maxTXID ltx.TXID) string {
	return ltx.FormatFilename(minTXID, maxTXID)
}

// Describe formats a file for messages: "level 0 file 0000000000000001-0000000000000003.ltx".
func Describe(level int, minTXID, maxTXID ltx.TXID) string {
	return fmt.Sprintf("level %d file %s", level, FileName(minTXID, maxTXID))
}

// RangeReader is implemented by clients that say whether OpenLTXFile with an
// offset is a ranged read on the server. One that is not (the NATS object
// store) reads and discards the bytes before the offset, so restore fetches
// its files in one stream instead of in parallel ranges. Clients that do not
// implement it are taken to read ranges.
type RangeReader interface {
	RangedReads() bool
}

// CheckLevel returns an error for a level outside 0..MaxLevel.
func CheckLevel(level int) error {
	if level < 0 || level > MaxLevel {
		return fmt.Errorf("invalid level %d (must be 0-%d)", level, MaxLevel)
	}
	return nil
}

// SortFiles sorts files by MinTXID, then MaxTXID: the order LTXFiles returns.
func SortFiles(files []*ltx.FileInfo) {
	slices.SortFunc(files, func(a, b *ltx.FileInfo) int {
		return cmp.Or(cmp.Compare(a.MinTXID, b.MinTXID), cmp.Compare(a.MaxTXID, b.MaxTXID))
	})
}

// CheckWrite is where every backend's WriteLTXFile starts: it returns an
// error for a level outside 0..MaxLevel, a TXID range that names no file,
// or a context that has already ended, before anything is sent.
func CheckWrite(ctx context.Context, level int, minTXID, maxTXID ltx.TXID) error {
	if err := CheckLevel(level); err != nil {
		return err
	}
	if minTXID == 0 || minTXID > maxTXID {
		return fmt.Errorf("invalid TXID range %s-%s", minTXID, maxTXID)
	}
	return ctx.Err()
}
