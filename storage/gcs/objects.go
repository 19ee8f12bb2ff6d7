package gcs

import (
	"context"
	"errors"
	"io"

	gcs "cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/walship/walship/storage"
)

var _ storage.Objects = (*Client)(nil)

// ListObjects lists the objects under dir, a directory of the replica (""
// for all of it), at any depth, sorted by name, with their creation times.
func (c *Client) ListObjects(ctx context.Context, dir string) ([]storage.ObjectInfo, error) {
	if err := storage.CheckObjectDir(dir); err != nil {
		return nil, c.errorf("list %s: %w", dir, err)
	}
	q := &gcs.Query{Prefix: storage.ObjectKey(c.prefix, dir)}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Created"}); err != nil {
		return nil, c.errorf("list %s: %w", dir, err)
	}
	objs := []storage.ObjectInfo{}
	it := c.bkt.Objects(ctx, q)
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		} else if err != nil {
			return nil, c.errorf("list %s: %w", dir, c.explain(err))
		}
		name, ok := storage.ObjectName(c.prefix, attrs.Name)
		if !ok {
			continue
		}
		objs = append(objs, storage.ObjectInfo{Name: name, Size: attrs.Size, ModTime: attrs.Created.UTC()})
	}
	storage.SortObjects(objs)
	return objs, nil
}

// OpenObject opens an object of the replica by its name. The reader holds a
// transfer slot until it is closed.
func (c *Client) OpenObject(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := storage.CheckObjectName(name); err != nil {
		return nil, c.errorf("open %s: %w", name, err)
	}
	release, err := c.transfers.Acquire(ctx, 0)
	if err != nil {
		return nil, c.errorf("open %s: %w", name, err)
	}
	r, err := c.bkt.Object(storage.ObjectKey(c.prefix, name)).NewReader(ctx)
	switch {
	case errors.Is(err, gcs.ErrObjectNotExist):
		release()
		return nil, c.errorf("open %s: %w: %w", name, storage.ErrNotFound, err)
	case err != nil:
		release()
		return nil, c.errorf("open %s: %w", name, c.explain(err))
	}
	return &reader{r: r, release: release}, nil
}
