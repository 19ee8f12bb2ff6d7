package storage

import (
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"
)

// Objects reads any object under a replica's path, not only LTX files:
// what reading a replica that another tool laid out needs (Litestream
// v0.3's generations/, see restore/litestream03). It is read-only and
// optional: a reader checks for it with a type assertion. The clients of
// the destinations Litestream v0.3 wrote to implement it: file, s3, gs, abs
// and sftp.
type Objects interface {
	// ListObjects lists every object under dir, at any depth, sorted by
	// name. dir is a directory relative to the replica's path: "" or a
	// name ending in "/" ("generations/"). Names are relative to the
	// replica's path, "/"-separated. A dir that holds nothing, or does
	// not exist, is an empty list.
	ListObjects(ctx context.Context, dir string) ([]ObjectInfo, error)

	// OpenObject opens an object by its name (as ListObjects gives it) to
	// read it whole. A missing object is an error wrapping ErrNotFound.
	OpenObject(ctx context.Context, name string) (io.ReadCloser, error)
}

// ObjectInfo is one object that ListObjects found.
type ObjectInfo struct {
	Name    string    // relative to the replica's path, "/"-separated
	Size    int64     // in bytes
	ModTime time.Time // when it was written, as the store dates it, in UTC
}

// CheckObjectDir refuses a dir argument of ListObjects that is not "" or
// a relative directory name ending in "/".
func CheckObjectDir(dir string) error {
	if dir == "" {
		return nil
	}
	if !strings.HasSuffix(dir, "/") {
		return fmt.Errorf("invalid object directory %q: it must end in /", dir)
	}
	return CheckObjectName(strings.TrimSuffix(dir, "/"))
}

// CheckObjectName refuses a name that is not a clean relative path inside
// a replica: empty, absolute, with "." or ".." elements, empty elements or
// backslashes.
func CheckObjectName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00") || path.Clean(name) != name {
		return fmt.Errorf("invalid object name %q", name)
	}
	for _, e := range strings.Split(name, "/") {
		if e == "." || e == ".." {
			return fmt.Errorf("invalid object name %q", name)
		}
	}
	return nil
}

// ObjectKey returns the key of the object name in a store where the
// replica's path is the key prefix (S3, GCS, Azure): prefix/name, or name
// when the replica is at the top of its bucket.
func ObjectKey(prefix, name string) string {
	if p := strings.Trim(prefix, "/"); p != "" {
		return p + "/" + name
	}
	return name
}

// ObjectName returns the name of the object at key under prefix, the
// inverse of ObjectKey; ok is false for a key outside prefix.
func ObjectName(prefix, key string) (name string, ok bool) {
	if p := strings.Trim(prefix, "/"); p != "" {
		name, ok = strings.CutPrefix(key, p+"/")
		return name, ok && name != ""
	}
	return key, key != ""
}

// SortObjects sorts objects by name: the order ListObjects returns.
func SortObjects(objs []ObjectInfo) {
	slices.SortFunc(objs, func(a, b ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
}
