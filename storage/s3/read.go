package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/walship/walship/storage"
)

// LTXFiles lists the files of one level, sorted by MinTXID then MaxTXID,
// with CreatedAt from the litestream-timestamp metadata (or the
// last-modified time, to the second, where it is missing). Keys that are not
// LTX file names are ignored; a level with no objects is an empty list.
func (c *Client) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	op := fmt.Sprintf("list level %d", level)
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("%s: %w", op, err)
	}
	api, _, err := c.sdk(ctx)
	if err != nil {
		return nil, c.errorf("%s: %w", op, err)
	}

	dir := storage.HexLevelDir(c.opts.prefix, level)
	var objs []listedObject
	pages := s3.NewListObjectsV2Paginator(api, &s3.ListObjectsV2Input{
		Bucket:    aws.String(c.opts.bucket),
		Prefix:    aws.String(dir),
		Delimiter: aws.String("/"),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, c.opError(op, err)
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			name, ok := strings.CutPrefix(key, dir)
			if !ok || strings.Contains(name, "/") {
				continue
			}
			minTXID, maxTXID, ok := storage.ParseFileName(name)
			if !ok {
				continue
			}
			objs = append(objs, listedObject{
				key: key,
				info: &ltx.FileInfo{
					Level:   level,
					MinTXID: minTXID,
					MaxTXID: maxTXID,
					Size:    aws.ToInt64(obj.Size),
				},
				etag:     aws.ToString(obj.ETag),
				modified: aws.ToTime(obj.LastModified).UTC(),
			})
		}
	}

	infos, err := c.dateObjects(ctx, api, level, objs)
	if err != nil {
		return nil, err
	}
	storage.SortFiles(infos)
	return infos, nil
}

// listedObject is an LTX file as a listing shows it.
type listedObject struct {
	key      string
	info     *ltx.FileInfo
	etag     string
	modified time.Time
}

// dateObjects sets the CreatedAt of listed files: remembered, or read with
// HEAD requests, headConcurrency at a time. Files deleted since the listing
// are dropped.
func (c *Client) dateObjects(ctx context.Context, api *s3.Client, level int, objs []listedObject) ([]*ltx.FileInfo, error) {
	c.timesMu.Lock()
	known := c.times[level]
	c.timesMu.Unlock()

	var mu sync.Mutex // guards seen and infos
	seen := make(map[string]objectTime, len(objs))
	infos := make([]*ltx.FileInfo, 0, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(headConcurrency)
	for _, obj := range objs {
		version := objectTime{etag: obj.etag, modified: obj.modified, size: obj.info.Size}
		if t, ok := known[obj.key]; ok && !version.modified.IsZero() && t.etag == version.etag && t.modified.Equal(version.modified) && t.size == version.size {
			obj.info.CreatedAt = t.createdAt
			mu.Lock()
			seen[obj.key] = t
			infos = append(infos, obj.info)
			mu.Unlock()
			continue
		}
		g.Go(func() error {
			createdAt, exists, err := c.headCreatedAt(gctx, api, obj)
			if err != nil || !exists {
				return err
			}
			obj.info.CreatedAt = createdAt
			version.createdAt = createdAt
			mu.Lock()
			defer mu.Unlock()
			if !version.modified.IsZero() {
				seen[obj.key] = version
			}
			infos = append(infos, obj.info)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	// What was not seen is gone: forget it.
	c.timesMu.Lock()
	c.times[level] = seen
	c.timesMu.Unlock()
	return infos, nil
}

// headCreatedAt reads an object's timestamp metadata. exists is false when
// the object was deleted since it was listed.
func (c *Client) headCreatedAt(ctx context.Context, api *s3.Client, obj listedObject) (createdAt time.Time, exists bool, err error) {
	desc := storage.Describe(obj.info.Level, obj.info.MinTXID, obj.info.MaxTXID)
	in := &s3.HeadObjectInput{Bucket: aws.String(c.opts.bucket), Key: aws.String(obj.key)}
	c.opts.sse.headObject(in)
	out, err := api.HeadObject(ctx, in)
	if isNotFound(err) {
		return time.Time{}, false, nil
	} else if err != nil {
		return time.Time{}, false, c.opError("read the timestamp of "+desc, err)
	}
	for k, v := range out.Metadata {
		if !strings.EqualFold(k, storage.TimestampMetadata) {
			continue
		}
		t, err := storage.ParseTimestamp(v)
		if err == nil {
			return t, true, nil
		}
		c.log.Warn("unreadable timestamp metadata; using the object's last-modified time", "file", desc, "error", err)
		break
	}
	modified := obj.modified
	if modified.IsZero() {
		modified = aws.ToTime(out.LastModified)
	}
	return modified.Truncate(time.Second).UTC(), true, nil
}

// OpenLTXFile opens a file for reading from offset, with a ranged GET. A
// size of zero reads to the end of the file; otherwise at most size bytes
// are returned. A missing file is an error wrapping storage.ErrNotFound.
// The reader uses ctx until it is closed, and holds a transfer slot until
// then.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	if offset < 0 || size < 0 {
		return nil, c.errorf("open %s: invalid offset %d or size %d", desc, offset, size)
	}
	api, _, err := c.sdk(ctx)
	if err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	release, err := c.transfers.Acquire(ctx, 0)
	if err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	r := &objectReader{
		c:       c,
		api:     api,
		ctx:     ctx,
		key:     c.Key(level, minTXID, maxTXID),
		desc:    desc,
		pos:     offset,
		end:     -1,
		release: release,
	}
	if size > 0 {
		r.end = offset + size
	}
	if err := r.open(); err != nil {
		release()
		if isNotFound(err) {
			return nil, c.errorf("open %s: %w: %w", desc, storage.ErrNotFound, err)
		}
		return nil, c.opError("open "+desc, err)
	}
	return r, nil
}

// objectReader reads a range of an object and resumes the read, from where
// it stopped and pinned to the same version of the object, when the
// connection breaks.
type objectReader struct {
	c    *Client
	api  *s3.Client
	ctx  context.Context
	key  string
	desc string

	pos, end int64  // next offset; end of the range (exclusive), or -1
	etag     string // the object's version, once known
	body     io.ReadCloser
	failures int   // resumes since the last byte read
	err      error // the error that ended the read, returned ever after

	release func()
	closed  bool
}

// open sends the GET for the rest of the range.
func (r *objectReader) open() error {
	in := &s3.GetObjectInput{Bucket: aws.String(r.c.opts.bucket), Key: aws.String(r.key)}
	switch {
	case r.end >= 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", r.pos, r.end-1))
	case r.pos > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", r.pos))
	}
	if r.etag != "" {
		in.IfMatch = aws.String(r.etag)
	}
	r.c.opts.sse.getObject(in)
	out, err := r.api.GetObject(r.ctx, in)
	if isInvalidRange(err) {
		// The offset is at or past the end of the object: nothing to read.
		r.body = io.NopCloser(bytes.NewReader(nil))
		return nil
	} else if err != nil {
		return err
	}
	// A server (or a proxy) that ignores the Range header, or serves
	// another range, would hand the caller the wrong bytes.
	status := 0
	if resp, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); ok {
		status = resp.StatusCode
	}
	if err := checkRange(status, aws.ToString(out.ContentRange), r.pos, r.end); err != nil {
		_ = out.Body.Close()
		return err
	}
	r.body = out.Body
	if r.etag == "" {
		r.etag = aws.ToString(out.ETag)
	}
	return nil
}

// errBadRange is the error of a GET answered with other bytes than those
// asked for.
var errBadRange = errors.New("the server did not answer with the range asked for")

// checkRange checks the status and Content-Range of the answer to a GET
// from start to end (exclusive; -1 for the end of the object). A GET of a
// whole object must be a 200; any other must be a 206 of the bytes asked
// for, or of fewer when the object ends sooner.
func checkRange(status int, contentRange string, start, end int64) error {
	if start == 0 && end < 0 {
		if status != http.StatusOK {
			return fmt.Errorf("%w: asked for the whole object, got HTTP status %d", errBadRange, status)
		}
		return nil
	}
	want := fmt.Sprintf("bytes %d-", start)
	if end >= 0 {
		want += fmt.Sprint(end - 1)
	}
	if status != http.StatusPartialContent {
		return fmt.Errorf("%w: asked for %s, got HTTP status %d instead of 206 (does the store support ranged reads?)", errBadRange, want, status)
	}
	bad := func() error {
		return fmt.Errorf("%w: asked for %s, got Content-Range %q", errBadRange, want, contentRange)
	}
	// bytes FIRST-LAST/TOTAL, TOTAL possibly "*" (unknown).
	spec, ok := strings.CutPrefix(contentRange, "bytes ")
	if !ok {
		return bad()
	}
	span, total, ok := strings.Cut(spec, "/")
	if !ok {
		return bad()
	}
	first, last, ok := strings.Cut(span, "-")
	if !ok {
		return bad()
	}
	a, err1 := strconv.ParseInt(first, 10, 64)
	b, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || a != start || b < a {
		return bad()
	}
	size := int64(-1)
	if total != "*" {
		n, err := strconv.ParseInt(total, 10, 64)
		if err != nil || b >= n {
			return bad()
		}
		size = n
	}
	switch {
	case end >= 0 && b == end-1:
	case end >= 0 && b < end-1 && b == size-1: // the object ends sooner
	case end < 0 && (b == size-1 || size < 0):
	default:
		return bad()
	}
	return nil
}

func (r *objectReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, r.c.errorf("read %s: reader is closed", r.desc)
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.end >= 0 && r.pos >= r.end {
		return 0, io.EOF
	}
	for {
		n, err := r.body.Read(p)
		r.pos += int64(n)
		if n > 0 {
			r.failures = 0
		}
		if err == nil || err == io.EOF {
			return n, err
		}
		if rerr := r.resume(err); rerr != nil {
			r.err = r.c.errorf("read %s at byte %d: %w", r.desc, r.pos, rerr)
			return n, r.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// resume reopens the object at the current offset after a read failed
// with readErr, after a short jittered pause. It returns an error when it
// gives up.
func (r *objectReader) resume(readErr error) error {
	if r.ctx.Err() != nil || r.failures >= maxResumes {
		return readErr
	}
	r.failures++
	_ = r.body.Close()
	t := time.NewTimer(storage.DefaultRetry.Delay(r.failures))
	select {
	case <-r.ctx.Done():
		t.Stop()
		r.body = io.NopCloser(bytes.NewReader(nil))
		return fmt.Errorf("%w (%w)", readErr, r.ctx.Err())
	case <-t.C:
	}
	if err := r.open(); err != nil {
		r.body = io.NopCloser(bytes.NewReader(nil))
		r.failures = maxResumes // an error answer is final
		return fmt.Errorf("%w; resuming the download failed: %w", readErr, err)
	}
	r.c.log.Debug("resumed an interrupted download", "file", r.desc, "offset", r.pos, "error", readErr)
	return nil
}

// Close ends the download and frees its transfer slot.
func (r *objectReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.body.Close()
	r.release()
	return err
}
