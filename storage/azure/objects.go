package azure

import (
	"context"
	"io"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/walship/walship/storage"
)

var _ storage.Objects = (*Client)(nil)

// ListObjects lists the blobs under dir, a directory of the replica (""
// for all of it), at any depth, sorted by name, with their creation times
// (else their last-modified times).
func (c *Client) ListObjects(ctx context.Context, dir string) ([]storage.ObjectInfo, error) {
	if err := storage.CheckObjectDir(dir); err != nil {
		return nil, c.errorf("list %s: %w", dir, err)
	}
	prefix := storage.ObjectKey(c.prefix, dir)
	pager := c.cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	objs := []storage.ObjectInfo{}
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, c.errorf("list %s: %w", dir, c.sdkError(err))
		}
		for _, item := range page.Segment.BlobItems {
			if item == nil || item.Name == nil || item.Properties == nil {
				continue
			}
			name, ok := storage.ObjectName(c.prefix, *item.Name)
			if !ok {
				continue
			}
			at := deref(item.Properties.CreationTime)
			if at.IsZero() {
				at = deref(item.Properties.LastModified)
			}
			objs = append(objs, storage.ObjectInfo{Name: name, Size: deref(item.Properties.ContentLength), ModTime: at.UTC()})
		}
	}
	storage.SortObjects(objs)
	return objs, nil
}

// OpenObject opens a blob of the replica by its name. A read that fails part
// way is resumed as OpenLTXFile's are. The reader holds a transfer slot
// until it is closed.
func (c *Client) OpenObject(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := storage.CheckObjectName(name); err != nil {
		return nil, c.errorf("open %s: %w", name, err)
	}
	release, err := c.transfers.Acquire(ctx, 0)
	if err != nil {
		return nil, c.errorf("open %s: %w", name, err)
	}
	resp, err := c.cc.NewBlobClient(storage.ObjectKey(c.prefix, name)).DownloadStream(ctx, nil)
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound):
		release()
		return nil, c.errorf("open %s: %w: %w", name, storage.ErrNotFound, c.sdkError(err))
	case err != nil:
		release()
		return nil, c.errorf("open %s: %w", name, c.sdkError(err))
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: downloadRetries})
	return &download{c: c, desc: name, rc: body, release: sync.OnceFunc(release)}, nil
}
