package s3

import (
	"context"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walship/walship/storage"
)

var _ storage.Objects = (*Client)(nil)

// ListObjects lists the objects under dir, a directory of the replica (""
// for all of it), at any depth, sorted by name, with their last-modified
// times.
func (c *Client) ListObjects(ctx context.Context, dir string) ([]storage.ObjectInfo, error) {
	op := "list " + dir
	if err := storage.CheckObjectDir(dir); err != nil {
		return nil, c.errorf("%s: %w", op, err)
	}
	api, _, err := c.sdk(ctx)
	if err != nil {
		return nil, c.errorf("%s: %w", op, err)
	}
	prefix := storage.ObjectKey(c.opts.prefix, dir)
	objs := []storage.ObjectInfo{}
	pages := s3.NewListObjectsV2Paginator(api, &s3.ListObjectsV2Input{
		Bucket: aws.String(c.opts.bucket),
		Prefix: aws.String(prefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, c.opError(op, err)
		}
		for _, obj := range page.Contents {
			name, ok := storage.ObjectName(c.opts.prefix, aws.ToString(obj.Key))
			if !ok {
				continue
			}
			objs = append(objs, storage.ObjectInfo{Name: name, Size: aws.ToInt64(obj.Size), ModTime: aws.ToTime(obj.LastModified).UTC()})
		}
	}
	storage.SortObjects(objs)
	return objs, nil
}

// OpenObject opens an object of the replica by its name, with a GET that
// resumes where it stopped if the connection breaks. The reader holds a
// transfer slot until it is closed.
func (c *Client) OpenObject(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := storage.CheckObjectName(name); err != nil {
		return nil, c.errorf("open %s: %w", name, err)
	}
	api, _, err := c.sdk(ctx)
	if err != nil {
		return nil, c.errorf("open %s: %w", name, err)
	}
	release, err := c.transfers.Acquire(ctx, 0)
	if err != nil {
		return nil, c.errorf("open %s: %w", name, err)
	}
	r := &objectReader{c: c, api: api, ctx: ctx, key: storage.ObjectKey(c.opts.prefix, name), desc: name, end: -1, release: release}
	if err := r.open(); err != nil {
		release()
		if isNotFound(err) {
			return nil, c.errorf("open %s: %w: %w", name, storage.ErrNotFound, err)
		}
		return nil, c.opError("open "+name, err)
	}
	return r, nil
}
