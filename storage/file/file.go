// Package file implements a replica in a local directory (or any mounted file
// system). The layout is the one used by Litestream 0.5, so a replica written by
// walship can be restored by Litestream and vice versa:
//
//	<dir>/ltx/<level>/<minTXID>-<maxTXID>.ltx
//
// where level is written in decimal and both TXIDs as 16 lower-case hex digits.
// Level 9 (storage.SnapshotLevel) holds snapshots. A file's modification time is
// its LTX header timestamp.
//
// Files are written to a temporary file in the same directory (named by
// storage.TempName, so starting with "."), then fsynced and renamed into
// place, so readers see either a complete file or none. Names starting with
// "." are never listed.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/fsutil"
	"github.com/walship/walship/storage"
)

// Type is the value returned by Client.Type.
const Type = "file"

const (
	dirMode = 0o755
	// LTX files never change once written, and a staged file and a file
	// replica on one file system may be one inode (see link): read-only,
	// so that a tool editing one in place fails rather than damaging both.
	fileMode = 0o444
)

var _ storage.Client = (*Client)(nil)

// Client is a replica rooted at a local directory. It holds no mutable state and
// is safe for concurrent use.
type Client struct {
	dir string
}

// New returns a client for the replica rooted at dir (an absolute or relative path; made absolute).
func New(dir string) *Client {
	abs, err := filepath.Abs(dir)
	if err != nil {
		// Only possible when the working directory cannot be determined.
		abs = filepath.Clean(dir)
	}
	return &Client{dir: abs}
}

// Type returns "file".
func (c *Client) Type() string { return Type }

// String returns "file://" followed by the absolute replica directory.
func (c *Client) String() string { return "file://" + c.dir }

// Dir returns the absolute replica directory.
func (c *Client) Dir() string { return c.dir }

// LevelDir returns the directory holding the files of one level.
func (c *Client) LevelDir(level int) string {
	return filepath.Join(c.dir, "ltx", strconv.Itoa(level))
}

// LTXFilePath returns the path of one LTX file.
func (c *Client) LTXFilePath(level int, minTXID, maxTXID ltx.TXID) string {
	return filepath.Join(c.LevelDir(level), ltx.FormatFilename(minTXID, maxTXID))
}

// errorf prefixes an error with the replica description.
func (c *Client) errorf(format string, args ...any) error {
	return fmt.Errorf("replica %s: "+format, append([]any{c}, args...)...)
}

// LTXFiles lists the files of one level, sorted by MinTXID then MaxTXID.
// CreatedAt is the file's modification time in UTC. A missing level directory is
// an empty list. Names that are not LTX file names (including temp files) and
// anything that is not a regular file are ignored.
func (c *Client) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("list level %d: %w", level, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.errorf("list level %d: %w", level, err)
	}

	entries, err := os.ReadDir(c.LevelDir(level))
	if errors.Is(err, fs.ErrNotExist) {
		return []*ltx.FileInfo{}, nil
	} else if err != nil {
		return nil, c.errorf("list level %d: %w", level, err)
	}

	infos := make([]*ltx.FileInfo, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !e.Type().IsRegular() {
			continue
		}
		minTXID, maxTXID, err := ltx.ParseFilename(name)
		if err != nil {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the directory was read
		} else if err != nil {
			return nil, c.errorf("list level %d: %w", level, err)
		}
		infos = append(infos, &ltx.FileInfo{
			Level:     level,
			MinTXID:   minTXID,
			MaxTXID:   maxTXID,
			Size:      fi.Size(),
			CreatedAt: fi.ModTime().UTC(),
		})
	}

	storage.SortFiles(infos)
	return infos, nil
}

// link puts src, a whole LTX file of another directory of the same file
// system (a staged file: written once, fsynced and never changed), in place
// by a hard link rather than a copy: a snapshot of a large database is then
// written to the disk once, not once per directory. It reports false, having
// changed nothing, when it cannot (another file system, a file system
// without links, a file read in part or with another timestamp), and the
// caller copies.
func (c *Client) link(src *os.File, dir, name string, level int, minTXID, maxTXID ltx.TXID, createdAt time.Time) (*ltx.FileInfo, bool) {
	if off, err := src.Seek(0, io.SeekCurrent); err != nil || off != 0 {
		return nil, false
	}
	fi, err := src.Stat()
	if err != nil || !fi.Mode().IsRegular() || !fi.ModTime().Equal(createdAt) {
		return nil, false
	}
	tmp := filepath.Join(dir, storage.TempName(name, time.Now()))
	if err := os.Link(src.Name(), tmp); err != nil {
		return nil, false
	}
	if lfi, err := os.Stat(tmp); err != nil || !os.SameFile(fi, lfi) {
		os.Remove(tmp)
		return nil, false
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return nil, false
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return nil, false
	}
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: fi.Size(), CreatedAt: createdAt.UTC()}, true
}

// OpenLTXFile opens a file for reading from offset. A size of zero reads to the
// end of the file; otherwise at most size bytes are returned. A missing file is
// an error wrapping storage.ErrNotFound.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	if offset < 0 || size < 0 {
		return nil, c.errorf("open %s: invalid offset %d or size %d", desc, offset, size)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}

	path := c.LTXFilePath(level, minTXID, maxTXID)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, c.errorf("open %s: %w: %w", desc, storage.ErrNotFound, err)
	} else if err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}

	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			_ = f.Close()
			return nil, c.errorf("open %s: seek %s to %d: %w", desc, path, offset, err)
		}
	}
	if size == 0 {
		return f, nil
	}
	return &limitedFile{Reader: io.LimitReader(f, size), f: f}, nil
}

// limitedFile reads at most a given number of bytes from a file.
type limitedFile struct {
	io.Reader
	f *os.File
}

func (l *limitedFile) Close() error { return l.f.Close() }

// WriteLTXFile stores the whole of r as the given file, atomically. The file's
// modification time is set to createdAt (the current time if zero), which
// LTXFiles returns as CreatedAt.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckWrite(ctx, level, minTXID, maxTXID); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if createdAt.IsZero() {
		createdAt = time.Now()
	}

	dir := c.LevelDir(level)
	name := ltx.FormatFilename(minTXID, maxTXID)
	path := filepath.Join(dir, name)

	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, c.errorf("write %s: create level directory: %w", desc, err)
	}

	if src, ok := r.(*os.File); ok {
		if info, ok := c.link(src, dir, name, level, minTXID, maxTXID, createdAt); ok {
			return info, nil
		}
	}

	f, tmp, err := createTemp(dir, name)
	if err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = f.Close() // may already be closed
			_ = os.Remove(tmp)
		}
	}()

	// A large file (a first snapshot) goes to the disk as it is written.
	n, err := io.Copy(fsutil.NewWritebackWriter(f), storage.ContextReader(ctx, r))
	if err != nil {
		return nil, c.errorf("write %s: copy to %s: %w", desc, tmp, err)
	}
	if err := f.Sync(); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if err := f.Close(); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if err := os.Chtimes(tmp, createdAt, createdAt); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	committed = true

	if err := fsutil.SyncDir(dir); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}

	return &ltx.FileInfo{
		Level:     level,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Size:      n,
		CreatedAt: createdAt.UTC(),
	}, nil
}

// createTemp creates a temporary file for name in dir, exclusively.
func createTemp(dir, name string) (*os.File, string, error) {
	for range 10 {
		path := filepath.Join(dir, storage.TempName(name, time.Now()))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		} else if err != nil {
			return nil, "", err
		}
		return f, path, nil
	}
	return nil, "", fmt.Errorf("create temp file in %s: too many collisions", dir)
}

// DeleteLTXFiles removes the given files. Files already gone are not an error.
// The level directories that changed are fsynced once at the end, including
// when an error stops the deletion part way.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) (err error) {
	var dirs []string
	defer func() {
		for _, dir := range dirs {
			if e := fsutil.SyncDir(dir); e != nil && !errors.Is(e, fs.ErrNotExist) && err == nil {
				err = c.errorf("delete: %w", e)
			}
		}
	}()

	for _, info := range files {
		if info == nil {
			continue
		}
		desc := storage.Describe(info.Level, info.MinTXID, info.MaxTXID)
		if err := storage.CheckLevel(info.Level); err != nil {
			return c.errorf("delete %s: %w", desc, err)
		}
		if err := ctx.Err(); err != nil {
			return c.errorf("delete %s: %w", desc, err)
		}
		path := c.LTXFilePath(info.Level, info.MinTXID, info.MaxTXID)
		if err := os.Remove(path); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return c.errorf("delete %s: %w", desc, err)
		}
		if dir := filepath.Dir(path); !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	return nil
}

// RemoveTempFiles deletes temp files (storage.IsTempName) left in the level directories
// by writes that were interrupted, e.g. by a crash. Call it at start-up, before
// any write to the replica starts. Missing directories are not an error; other
// errors are collected and returned together after trying every level.
func (c *Client) RemoveTempFiles() error {
	var errs []error
	for level := 0; level <= storage.MaxLevel; level++ {
		dir := c.LevelDir(level)
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			errs = append(errs, c.errorf("remove temp files: %w", err))
			continue
		}

		removed := false
		for _, e := range entries {
			if !storage.IsTempName(e.Name()) || e.IsDir() {
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, c.errorf("remove temp files: %w", err))
				continue
			}
			removed = true
		}
		if removed {
			if err := fsutil.SyncDir(dir); err != nil {
				errs = append(errs, c.errorf("remove temp files: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}
