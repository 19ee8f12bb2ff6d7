package azure

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/walship/walship/storage"
)

// WriteLTXFile stores the whole of r as the given file, atomically, with
// createdAt (the current time if zero) as its litestreamtimestamp metadata.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckWrite(ctx, level, minTXID, maxTXID); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if createdAt.IsZero() {
		createdAt = time.Now().Truncate(time.Millisecond)
	}
	createdAt = createdAt.UTC()

	u := target{
		bb:       c.cc.NewBlockBlobClient(c.BlobName(level, minTXID, maxTXID)),
		metadata: map[string]*string{storage.TimestampMetadataAzure: ptr(storage.FormatTimestamp(createdAt))},
		headers:  &blob.HTTPHeaders{BlobContentType: ptr("application/octet-stream")},
	}
	n, err := c.upload(ctx, u, r)
	if err != nil {
		return nil, c.errorf("write %s: %w", desc, c.sdkError(err))
	}
	return &ltx.FileInfo{
		Level:     level,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Size:      n,
		CreatedAt: createdAt,
	}, nil
}

// target is the blob being written, and what to store with it.
type target struct {
	bb       *blockblob.Client
	metadata map[string]*string
	headers  *blob.HTTPHeaders
}

// seekableSource is a source that uploads read in place, without buffers.
type seekableSource interface {
	io.ReaderAt
	io.Seeker
}

// upload writes r to u.bb and returns the number of bytes written.
func (c *Client) upload(ctx context.Context, u target, r io.Reader) (int64, error) {
	if src, ok := r.(seekableSource); ok {
		start, size, ok := extent(src)
		if ok && size <= max(singleUploadSize, c.partSize) {
			return size, c.uploadSingle(ctx, u, io.NewSectionReader(src, start, size))
		}
		if ok {
			return size, c.uploadBlocks(ctx, u, io.NewSectionReader(src, start, size))
		}
		// Not seekable after all (a pipe): stream it.
	}
	return c.uploadStream(ctx, u, r)
}

// extent returns the current offset of src and the number of bytes from
// there to the end, leaving src at the end. ok is false when src cannot
// seek.
func extent(src io.Seeker) (start, size int64, ok bool) {
	start, err := src.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, 0, false
	}
	end, err := src.Seek(0, io.SeekEnd)
	if err != nil || end < start {
		_, _ = src.Seek(start, io.SeekStart)
		return 0, 0, false
	}
	return start, end - start, true
}

// uploadSingle sends a seekable source in one Put Blob request.
func (c *Client) uploadSingle(ctx context.Context, u target, src *io.SectionReader) error {
	release, err := c.transfers.Acquire(ctx, 0)
	if err != nil {
		return err
	}
	defer release()
	_, err = u.bb.Upload(ctx, streaming.NopCloser(src), &blockblob.UploadOptions{
		Metadata:    u.metadata,
		HTTPHeaders: u.headers,
	})
	return err
}

// uploadBlocks stages a seekable source in blocks read in place, then
// commits them.
func (c *Client) uploadBlocks(ctx context.Context, u target, src *io.SectionReader) error {
	size := src.Size()
	blockSize := max(c.partSize, (size+blockblob.MaxBlocks-1)/blockblob.MaxBlocks)
	if blockSize > maxPartSize {
		return fmt.Errorf("%d bytes is more than a block blob holds", size)
	}
	release, err := c.transfers.Acquire(ctx, 0)
	if err != nil {
		return err
	}
	defer release()

	prefix := newBlockIDPrefix()
	ids := make([]string, (size+blockSize-1)/blockSize)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.concurrency)
	for i := range ids {
		ids[i] = blockID(prefix, uint32(i))
		if gctx.Err() != nil {
			break
		}
		off := int64(i) * blockSize
		block := io.NewSectionReader(src, off, min(blockSize, size-off))
		g.Go(func() error {
			_, err := u.bb.StageBlock(gctx, ids[i], streaming.NopCloser(block), nil)
			if err != nil {
				return fmt.Errorf("block %d of %d: %w", i+1, len(ids), c.sdkError(err))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err = u.bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{
		Metadata:    u.metadata,
		HTTPHeaders: u.headers,
	})
	return err
}

// sdkBlockIDLen is the length of a block ID, before base64, as the SDK's
// UploadStream makes them (blockblob/chunkwriting.go: a 16-byte UUID, the
// block number as 4 big-endian bytes, then zeros). Azure refuses a block
// whose ID has another length than the uncommitted blocks of its blob (400
// InvalidBlobOrBlock, until they expire after 7 days), so staged uploads use
// the same length as streamed ones, walship's and Litestream's: a blob where
// either crashed midway can still be written.
const sdkBlockIDLen = 64

// newBlockIDPrefix returns the random start of the block IDs of one
// upload, which keeps the blocks of concurrent writers of one blob apart.
func newBlockIDPrefix() [16]byte {
	var p [16]byte
	_, _ = rand.Read(p[:]) // never fails
	return p
}

// blockID returns the base64 ID of block n of an upload, laid out as the
// SDK's.
func blockID(prefix [16]byte, n uint32) string {
	var id [sdkBlockIDLen]byte
	copy(id[:], prefix[:])
	binary.BigEndian.PutUint32(id[len(prefix):], n)
	return base64.StdEncoding.EncodeToString(id[:])
}

// uploadStream streams r in blocks of part-size, buffering at most
// part-size × concurrency bytes, and commits them when r ends.
func (c *Client) uploadStream(ctx context.Context, u target, r io.Reader) (int64, error) {
	release, err := c.transfers.Acquire(ctx, c.partSize*int64(c.concurrency))
	if err != nil {
		return 0, err
	}
	defer release()
	cr := &storage.CountingReader{R: r}
	_, err = u.bb.UploadStream(ctx, cr, &blockblob.UploadStreamOptions{
		BlockSize:   c.partSize,
		Concurrency: c.concurrency,
		Metadata:    u.metadata,
		HTTPHeaders: u.headers,
	})
	return cr.N, err
}
