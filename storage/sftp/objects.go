package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"

	"github.com/walship/walship/storage"
)

var _ storage.Objects = (*Client)(nil)

// ListObjects lists the regular files under dir, a directory of the
// replica ("" for all of it), at any depth, sorted by name, with their
// modification times (whole seconds). A missing directory is an empty
// list.
func (c *Client) ListObjects(ctx context.Context, dir string) ([]storage.ObjectInfo, error) {
	if err := storage.CheckObjectDir(dir); err != nil {
		return nil, c.errorf("list %s: %w", dir, err)
	}
	var objs []storage.ObjectInfo
	err := c.do(ctx, nil, func(ctx context.Context, cn *conn) error {
		objs = []storage.ObjectInfo{}
		var walk func(rel string) error
		walk = func(rel string) error {
			full := path.Join(c.cfg.path, rel)
			entries, err := cn.sftp.ReadDirContext(ctx, full)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			} else if err != nil {
				return fmt.Errorf("read directory %s: %w", full, err)
			}
			for _, e := range entries {
				name := path.Join(rel, e.Name())
				switch {
				case e.IsDir():
					if err := walk(name); err != nil {
						return err
					}
				case e.Mode().IsRegular():
					objs = append(objs, storage.ObjectInfo{Name: name, Size: e.Size(), ModTime: e.ModTime().UTC()})
				}
			}
			return nil
		}
		return walk(dir)
	})
	if err != nil {
		return nil, c.errorf("list %s: %w", dir, err)
	}
	storage.SortObjects(objs)
	return objs, nil
}

// OpenObject opens a file of the replica by its name. If the connection
// breaks, the reader carries on from where it was on a new one. It holds a
// transfer slot until it is closed.
func (c *Client) OpenObject(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := storage.CheckObjectName(name); err != nil {
		return nil, c.errorf("open %s: %w", name, err)
	}
	release, err := c.transfers.Acquire(ctx, readChunkSize)
	if err != nil {
		return nil, c.errorf("open %s: %w", name, err)
	}
	r := &reader{c: c, ctx: ctx, desc: name, path: path.Join(c.cfg.path, name), release: release}
	if err := r.open(); err != nil {
		release()
		return nil, c.errorf("open %s: %w", name, err)
	}
	return r, nil
}
