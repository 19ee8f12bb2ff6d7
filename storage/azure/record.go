package azure

import (
	"bytes"
	"context"
	"io"
	"path"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/walship/walship/storage"
)

// Records are blobs beside ltx/, <path>/<name>, and their version is the
// blob's ETag. Azure itself decides between writers: a create is a Put Blob
// with If-None-Match: *, a replace one with If-Match: <ETag>, and the
// service refuses either (409 BlobAlreadyExists, 412 ConditionNotMet) when
// the blob is not as the writer last saw it.
//
// Records take no slot of storage.Transfers: they are a few kilobytes, and a
// record write (an owner renewing its claim, say) must not wait behind the
// uploads of every database of the process.

// recordBlob returns the name of the blob that holds a record.
func (c *Client) recordBlob(name string) string {
	return path.Join(c.prefix, name)
}

// ReadRecord returns the record and its ETag. A missing record (or
// container) is an error wrapping storage.ErrNotFound.
func (c *Client) ReadRecord(ctx context.Context, name string) ([]byte, string, error) {
	if err := storage.CheckRecord(name, nil); err != nil {
		return nil, "", c.errorf("read %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, "", c.errorf("read record %s: %w", name, err)
	}
	blobName := c.recordBlob(name)
	resp, err := c.cc.NewBlobClient(blobName).DownloadStream(ctx, nil)
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound):
		return nil, "", c.errorf("read record %s: %w: blob %s: %w", name, storage.ErrNotFound, blobName, c.sdkError(err))
	case err != nil:
		return nil, "", c.errorf("read record %s: %w", name, c.sdkError(err))
	}
	// The retry reader resumes a broken read only while the ETag is the
	// same, so the content always belongs to the version returned.
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: downloadRetries})
	defer body.Close()
	if resp.ETag == nil || *resp.ETag == "" {
		return nil, "", c.errorf("read record %s: blob %s came without an ETag, which records need as their version", name, blobName)
	}
	if n := deref(resp.ContentLength); n > storage.MaxRecordSize {
		return nil, "", c.errorf("read record %s: blob %s is %d bytes, more than the %d a record may hold", name, blobName, n, storage.MaxRecordSize)
	}
	data, err := io.ReadAll(io.LimitReader(body, storage.MaxRecordSize+1))
	if err != nil {
		return nil, "", c.errorf("read record %s: %w", name, c.sdkError(err))
	}
	if len(data) > storage.MaxRecordSize {
		return nil, "", c.errorf("read record %s: blob %s holds more than the %d bytes a record may hold", name, blobName, storage.MaxRecordSize)
	}
	return data, string(*resp.ETag), nil
}

// WriteRecord stores the record in one conditional Put Blob and returns the
// new ETag.
//
// The SDK retries the request after a lost answer (see Open). When the lost
// answer was that of a write that succeeded, the retry finds the blob
// changed, by this very write, and WriteRecord reports a conflict: a caller
// re-reads the record after a conflict, and finds its own content there.
func (c *Client) WriteRecord(ctx context.Context, name string, data []byte, version string) (string, error) {
	if err := storage.CheckRecord(name, data); err != nil {
		return "", c.errorf("write %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", c.errorf("write record %s: %w", name, err)
	}
	blobName := c.recordBlob(name)
	cond := &blob.ModifiedAccessConditions{IfNoneMatch: ptr(azcore.ETagAny)}
	if version != "" {
		cond = &blob.ModifiedAccessConditions{IfMatch: ptr(azcore.ETag(version))}
	}
	resp, err := c.cc.NewBlockBlobClient(blobName).Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), &blockblob.UploadOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: cond},
	})
	switch {
	case err == nil:
	case version == "" && bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet):
		return "", c.errorf("write record %s: %w: blob %s exists already: %w", name, storage.ErrConflict, blobName, c.sdkError(err))
	case version != "" && bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobNotFound):
		// If-Match also fails on a blob that is gone.
		return "", c.errorf("write record %s: %w: blob %s is no longer at version %s: %w", name, storage.ErrConflict, blobName, version, c.sdkError(err))
	default:
		return "", c.errorf("write record %s: %w", name, c.sdkError(err))
	}
	if resp.ETag == nil || *resp.ETag == "" {
		return "", c.errorf("write record %s: blob %s was written but the answer has no ETag, which records need as their version", name, blobName)
	}
	return string(*resp.ETag), nil
}
