package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// WriteLTXFile stores the whole of r as the given file, with createdAt (the
// current time if zero) as its litestream-timestamp metadata. A file of at
// most part-size bytes is one PutObject, larger ones a multipart upload;
// both are atomic.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckWrite(ctx, level, minTXID, maxTXID); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if createdAt.IsZero() {
		createdAt = time.Now()
	}
	createdAt = createdAt.UTC()
	api, uploader, err := c.sdk(ctx)
	if err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}

	in := &s3.PutObjectInput{
		Bucket:      aws.String(c.opts.bucket),
		Key:         aws.String(c.Key(level, minTXID, maxTXID)),
		ContentType: aws.String("application/octet-stream"),
		Metadata:    map[string]string{storage.TimestampMetadata: storage.FormatTimestamp(createdAt)},
	}
	c.opts.sse.putObject(in)
	if c.opts.storageClass != "" {
		in.StorageClass = types.StorageClass(c.opts.storageClass)
	}
	n, err := c.upload(ctx, api, uploader, in, r)
	if err != nil {
		return nil, c.opError("write "+desc, err)
	}
	return &ltx.FileInfo{
		Level:     level,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Size:      n,
		CreatedAt: createdAt,
	}, nil
}

// upload sends r as in's object and returns its size. It holds a transfer
// slot, with the memory the upload buffers, while it runs.
func (c *Client) upload(ctx context.Context, api *s3.Client, uploader *manager.Uploader, in *s3.PutObjectInput, r io.Reader) (int64, error) {
	body, size, ok, err := seekable(r)
	if err != nil {
		return 0, err
	}
	if ok {
		// Nothing is buffered, unless a multipart upload of a reader that
		// cannot ReadAt has to copy its parts.
		multipart := size > c.opts.partSize
		var buffered int64
		if _, readerAt := body.(io.ReaderAt); multipart && !readerAt {
			buffered = c.multipartMemory()
		}
		release, err := c.transfers.Acquire(ctx, buffered)
		if err != nil {
			return 0, err
		}
		defer release()
		in.Body = body
		if !multipart {
			in.ContentLength = aws.Int64(size)
			_, err = api.PutObject(ctx, in)
			return size, err
		}
		return size, c.multipart(ctx, api, uploader, in)
	}

	// Not seekable: read up to one part to learn whether the file fits in
	// one PUT, which can then be retried from the buffer.
	release, err := c.transfers.Acquire(ctx, c.opts.partSize)
	if err != nil {
		return 0, err
	}
	first, err := io.ReadAll(io.LimitReader(r, c.opts.partSize+1))
	if err != nil {
		release()
		return 0, fmt.Errorf("read the file to upload: %w", err)
	}
	if int64(len(first)) <= c.opts.partSize {
		defer release()
		in.Body = bytes.NewReader(first)
		in.ContentLength = aws.Int64(int64(len(first)))
		_, err = api.PutObject(ctx, in)
		return int64(len(first)), err
	}
	// Larger: trade the budget for a multipart upload's. Never hold both:
	// two uploads each holding one budget and waiting for the other could
	// wait for ever.
	release()
	if release, err = c.transfers.Acquire(ctx, c.multipartMemory()); err != nil {
		return 0, err
	}
	defer release()
	rest := &storage.CountingReader{R: r}
	in.Body = io.MultiReader(bytes.NewReader(first), rest)
	err = c.multipart(ctx, api, uploader, in)
	return int64(len(first)) + rest.N, err
}

// multipartMemory is what a multipart upload of a reader without ReadAt
// holds: a buffer per part in flight, the one being filled, and the first
// part read to decide on a multipart upload.
func (c *Client) multipartMemory() int64 {
	return c.opts.partSize * int64(c.opts.concurrency+2)
}

// multipart runs a multipart upload, and aborts it if it fails, so that
// its parts do not linger.
func (c *Client) multipart(ctx context.Context, api *s3.Client, uploader *manager.Uploader, in *s3.PutObjectInput) error {
	_, err := uploader.Upload(ctx, in)
	var failed manager.MultiUploadFailure
	if err != nil && errors.As(err, &failed) && failed.UploadID() != "" {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_, aerr := api.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket:   in.Bucket,
			Key:      in.Key,
			UploadId: aws.String(failed.UploadID()),
		})
		if aerr != nil && !isNoSuchUpload(aerr) {
			c.log.Warn("could not abort a failed multipart upload: its parts stay in the bucket until a lifecycle rule removes them",
				"key", aws.ToString(in.Key), "upload_id", failed.UploadID(), "error", aerr)
		}
	}
	return err
}

// seekable returns r as a reader of its remaining bytes, positioned at
// its start, and their number, when r can seek. A reader that can also
// ReadAt (an *os.File, a *bytes.Reader) becomes an *io.SectionReader, which
// the multipart uploader reads in parallel without copying.
func seekable(r io.Reader) (body io.ReadSeeker, size int64, ok bool, err error) {
	s, ok := r.(io.ReadSeeker)
	if !ok {
		return nil, 0, false, nil
	}
	pos, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, 0, false, nil // a pipe, say: read it as a stream
	}
	end, err := s.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, 0, false, nil
	}
	if _, err := s.Seek(pos, io.SeekStart); err != nil {
		return nil, 0, false, fmt.Errorf("seek the file to upload back to %d: %w", pos, err)
	}
	if ra, ok := r.(io.ReaderAt); ok {
		return io.NewSectionReader(ra, pos, end-pos), end - pos, true, nil
	}
	return s, end - pos, true, nil
}

// DeleteLTXFiles removes the given files with DeleteObjects, up to 1000 per
// request. Files already gone are not an error; any file the store refuses
// to delete is.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	descs := make(map[string]string, len(files))
	keys := make([]string, 0, len(files))
	for _, f := range files {
		if f == nil {
			continue
		}
		desc := storage.Describe(f.Level, f.MinTXID, f.MaxTXID)
		if err := storage.CheckLevel(f.Level); err != nil {
			return c.errorf("delete %s: %w", desc, err)
		}
		key := c.Key(f.Level, f.MinTXID, f.MaxTXID)
		if _, dup := descs[key]; !dup {
			descs[key] = desc
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	api, _, err := c.sdk(ctx)
	if err != nil {
		return c.errorf("delete %d files: %w", len(keys), err)
	}

	for batch := range slices.Chunk(keys, maxDeleteKeys) {
		objs := make([]types.ObjectIdentifier, len(batch))
		for i, key := range batch {
			objs[i] = types.ObjectIdentifier{Key: aws.String(key)}
		}
		out, err := api.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(c.opts.bucket),
			Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
		}, withContentMD5)
		if err != nil {
			return c.opError(fmt.Sprintf("delete %d files from %s", len(batch), descs[batch[0]]), err)
		}
		var errs []error
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" {
				continue
			}
			what := descs[aws.ToString(e.Key)]
			if what == "" {
				what = aws.ToString(e.Key)
			}
			errs = append(errs, fmt.Errorf("%s: %s: %s", what, aws.ToString(e.Code), aws.ToString(e.Message)))
		}
		if len(errs) > 0 {
			return c.errorf("delete %d of %d files failed: %w", len(errs), len(batch), errors.Join(errs...))
		}
	}
	return nil
}
