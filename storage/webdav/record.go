package webdav

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"time"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/filerecord"
)

// recordFiles are the server's files, on which storage/filerecord keeps
// records. WebDAV has no compare-and-swap that servers agree on (rclone
// serve webdav ignores If-Match and If-None-Match on PUT, and its ETags are
// modification time and size, not content), but RFC 4918 gives one
// exclusive step: MOVE with Overwrite: F, which must fail with 412
// Precondition Failed when the destination exists. A MOVE with Overwrite: T
// is not atomic (RFC 4918 has the server DELETE the destination first, and
// rclone does), so records never use it: a replacement moves the old record
// aside first.
//
// Each request retries on its own when that may help, so the files are
// their own filerecord.Server: Do runs a step once, and Retry runs it again
// on files whose DELETE is sent once.
type recordFiles struct {
	c          *Client
	deleteOnce bool // Remove never sends its DELETE again
}

func (f recordFiles) Do(ctx context.Context, op func(ctx context.Context, f filerecord.Files) error) error {
	return op(ctx, f)
}

func (f recordFiles) Retry(ctx context.Context, op func(ctx context.Context, f filerecord.Files) error) error {
	return storage.Retry(ctx, f.c.retry, retryable, func(ctx context.Context) error {
		return op(ctx, recordFiles{c: f.c, deleteOnce: true})
	})
}

// Read reads the file p with GET, and its Last-Modified time (zero when
// the server sends none: ModTime asks with PROPFIND).
func (f recordFiles) Read(ctx context.Context, p string) ([]byte, time.Time, error) {
	var (
		data  []byte
		mtime time.Time
	)
	err := storage.Retry(ctx, f.c.retry, retryable, func(ctx context.Context) error {
		var err error
		data, mtime, err = f.c.getSmall(ctx, p)
		return err
	})
	return data, mtime, err
}

// ModTime returns the getlastmodified of the file p.
func (f recordFiles) ModTime(ctx context.Context, p string) (time.Time, error) {
	e, err := f.c.stat(ctx, p)
	return e.mtime, err
}

// Write uploads data to p, a unique temp name, so that a PUT sent again is
// harmless. It sets no X-OC-Mtime: the file's time is the server's clock,
// which stale locks are told by.
func (f recordFiles) Write(ctx context.Context, p string, data []byte) error {
	dir := path.Dir(p)
	if err := f.c.mkdirAll(ctx, dir); err != nil {
		return fmt.Errorf("create collection %s: %w", dir, err)
	}
	b := &body{size: int64(len(data)), mem: data}
	return f.c.putTemp(ctx, dir, func(ctx context.Context) error { return f.c.put(ctx, p, b, time.Time{}) })
}

// Move renames from to to with MOVE and Overwrite: F: 412 Precondition
// Failed when to exists is fs.ErrExist, and 404 Not Found is
// fs.ErrNotExist. Sent again after its answer was lost, a MOVE that was
// done finds from gone; storage/filerecord looks at to then.
func (f recordFiles) Move(ctx context.Context, from, to string) error {
	return storage.Retry(ctx, f.c.retry, retryable, func(ctx context.Context) error {
		status, err := f.c.sendMove(ctx, from, to, false, http.StatusPreconditionFailed, http.StatusNotFound)
		switch {
		case status == http.StatusPreconditionFailed:
			return fmt.Errorf("MOVE %s to %s: %w", from, to, fs.ErrExist)
		case status == http.StatusNotFound:
			return fmt.Errorf("MOVE %s to %s: %w", from, to, fs.ErrNotExist)
		}
		return err
	})
}

// Replace is not done with MOVE and Overwrite: T, which deletes the
// destination before it moves the source: readers would find no record in
// between, and one sent again after a lost answer would, on servers built
// on golang.org/x/net/webdav (rclone's), delete the file just moved.
func (f recordFiles) Replace(context.Context, string, string) error {
	return errors.ErrUnsupported
}

// Remove deletes the file p, if it exists.
func (f recordFiles) Remove(ctx context.Context, p string) error {
	if f.deleteOnce {
		return f.c.deleteOnce(ctx, p)
	}
	return f.c.delete(ctx, p)
}

// getSmall reads the file p, which may hold at most storage.MaxRecordSize
// bytes, with one GET, and returns its Last-Modified time (zero when the
// server sends none). A missing p is an error wrapping fs.ErrNotExist.
func (c *Client) getSmall(ctx context.Context, p string) (data []byte, mtime time.Time, err error) {
	req, err := c.newRequest(ctx, http.MethodGet, p, nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	res, err := c.http.Do(req)
	if err != nil {
		return nil, time.Time{}, err
	}
	switch res.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		drain(res)
		return nil, time.Time{}, fmt.Errorf("GET %s: %w", p, fs.ErrNotExist)
	default:
		return nil, time.Time{}, c.statusError(res)
	}
	defer res.Body.Close()
	data, err = io.ReadAll(io.LimitReader(res.Body, storage.MaxRecordSize+1))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("GET %s: read the answer: %w", p, retryLater(err))
	}
	if len(data) > storage.MaxRecordSize {
		return nil, time.Time{}, permanent(fmt.Errorf("GET %s: the file holds more than the %d bytes a record may: it was not written by walship", p, storage.MaxRecordSize))
	}
	if t, err := http.ParseTime(res.Header.Get("Last-Modified")); err == nil {
		mtime = t.UTC()
	}
	return data, mtime, nil
}
