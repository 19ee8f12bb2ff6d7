package file

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/walship/walship/storage"
)

var _ storage.Objects = (*Client)(nil)

// ListObjects lists the regular files under dir, a directory of the
// replica ("" for all of it), at any depth, sorted by name, with their
// modification times. A missing directory is an empty list.
func (c *Client) ListObjects(ctx context.Context, dir string) ([]storage.ObjectInfo, error) {
	if err := storage.CheckObjectDir(dir); err != nil {
		return nil, c.errorf("list %s: %w", dir, err)
	}
	objs := []storage.ObjectInfo{}
	root := filepath.Join(c.dir, filepath.FromSlash(dir))
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // the directory, or something in it, went away
		} else if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		rel, err := filepath.Rel(c.dir, p)
		if err != nil {
			return err
		}
		objs = append(objs, storage.ObjectInfo{Name: filepath.ToSlash(rel), Size: fi.Size(), ModTime: fi.ModTime().UTC()})
		return nil
	})
	if err != nil {
		return nil, c.errorf("list %s: %w", path.Join(c.dir, dir), err)
	}
	storage.SortObjects(objs)
	return objs, nil
}

// OpenObject opens a file of the replica by its name.
func (c *Client) OpenObject(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := storage.CheckObjectName(name); err != nil {
		return nil, c.errorf("open %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.errorf("open %s: %w", name, err)
	}
	f, err := os.Open(filepath.Join(c.dir, filepath.FromSlash(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, c.errorf("open %s: %w: %w", name, storage.ErrNotFound, err)
	} else if err != nil {
		return nil, c.errorf("open %s: %w", name, err)
	}
	return f, nil
}
