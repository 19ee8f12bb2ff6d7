package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrConflict is returned (wrapped) by WriteRecord when the record is not at
// the version the write was conditional on: another process wrote it first.
var ErrConflict = errors.New("the record was changed by another writer")

// MaxRecordSize bounds a record: records are small JSON documents, and a
// reader never loads more than this.
const MaxRecordSize = 64 << 10

// Records are small named objects at a replica's path, beside its levels
// (the replica's owner, for instance), that the backend writes with its own
// conditional-write primitive: two processes writing the same record at
// the same instant cannot both succeed. Every Client implements them.
type Records interface {
	// ReadRecord returns the record's content and its version, an opaque
	// string that WriteRecord compares. A missing record is an error
	// wrapping ErrNotFound. A version may repeat when the content does (an
	// S3 ETag is its content's MD5, say): writers that need every write to
	// change the version put something unique in each.
	ReadRecord(ctx context.Context, name string) (data []byte, version string, err error)

	// WriteRecord stores data as the record, atomically, if the record is
	// still at version; an empty version means the record must not exist.
	// It returns the new version. When the record is not at version it
	// writes nothing and returns an error wrapping ErrConflict.
	WriteRecord(ctx context.Context, name string, data []byte, version string) (string, error)
}

// CheckRecord is where every backend's ReadRecord and WriteRecord start: it
// refuses a name that is not a plain file name, and data larger than
// MaxRecordSize.
func CheckRecord(name string, data []byte) error {
	// Names starting with "." are the backends' temporary and lock files;
	// "ltx" is the levels' directory on most of them.
	if name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") || name == "ltx" || strings.HasSuffix(name, ".ltx") {
		return fmt.Errorf("invalid record name %q", name)
	}
	if len(data) > MaxRecordSize {
		return fmt.Errorf("record %s is %d bytes, more than the %d a record may hold", name, len(data), MaxRecordSize)
	}
	return nil
}

// RecordAtomicity is implemented by a Client whose WriteRecord is atomic
// only in some configurations (S3 with conditional-writes: false reads and
// then writes): RecordsAtomic says why its records are not atomic, nil
// when they are. A Client that does not implement it is atomic.
type RecordAtomicity interface {
	RecordsAtomic() error
}

// RecordsAtomic returns nil if c's WriteRecord is an atomic conditional
// write, and otherwise why not: a lease (the one role only one node may
// hold) must not be built on anything weaker.
func RecordsAtomic(c Client) error {
	if a, ok := c.(RecordAtomicity); ok {
		return a.RecordsAtomic()
	}
	return nil
}
