package file

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/walship/walship/internal/fsutil"
	"github.com/walship/walship/storage"
)

// Records live beside ltx/ as <dir>/<name>. Their version is the SHA-256 of
// their content. A write takes an flock on <dir>/.<name>.lock, so that the
// compare and the rename are one step for every process on this host (and
// on file systems that share flock between hosts); the exclusive create
// itself is a link(2), which fails when the name exists on any file system.

// ReadRecord returns the record and the SHA-256 of its content.
func (c *Client) ReadRecord(ctx context.Context, name string) ([]byte, string, error) {
	if err := storage.CheckRecord(name, nil); err != nil {
		return nil, "", c.errorf("read %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, "", c.errorf("read record %s: %w", name, err)
	}
	data, err := readRecord(filepath.Join(c.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", c.errorf("record %s: %w", name, storage.ErrNotFound)
	}
	if err != nil {
		return nil, "", c.errorf("read record %s: %w", name, err)
	}
	return data, recordVersion(data), nil
}

func readRecord(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, storage.MaxRecordSize))
}

func recordVersion(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// WriteRecord writes the record if its content still hashes to version (or,
// with an empty version, if it does not exist).
func (c *Client) WriteRecord(ctx context.Context, name string, data []byte, version string) (string, error) {
	if err := storage.CheckRecord(name, data); err != nil {
		return "", c.errorf("write %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", c.errorf("write record %s: %w", name, err)
	}
	if err := os.MkdirAll(c.dir, dirMode); err != nil {
		return "", c.errorf("write record %s: %w", name, err)
	}
	lock, err := fsutil.WaitLock(filepath.Join(c.dir, "."+name+".lock"))
	if err != nil {
		return "", c.errorf("write record %s: %w", name, err)
	}
	defer lock.Unlock()

	path := filepath.Join(c.dir, name)
	if version != "" {
		cur, err := readRecord(path)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && recordVersion(cur) != version) {
			return "", c.errorf("write record %s: %w", name, storage.ErrConflict)
		}
		if err != nil {
			return "", c.errorf("write record %s: %w", name, err)
		}
	}
	f, tmp, err := createTemp(c.dir, name)
	if err != nil {
		return "", c.errorf("write record %s: %w", name, err)
	}
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", c.errorf("write record %s: %w", name, err)
	}
	if version == "" {
		err = os.Link(tmp, path)
		if errors.Is(err, fs.ErrExist) {
			return "", c.errorf("write record %s: %w", name, storage.ErrConflict)
		}
	} else {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return "", c.errorf("write record %s: %w", name, err)
	}
	if err := fsutil.SyncDir(c.dir); err != nil {
		return "", c.errorf("write record %s: %w", name, err)
	}
	return recordVersion(data), nil
}
