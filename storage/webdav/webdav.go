// Package webdav is the replica backend for a WebDAV server (rclone serve
// webdav, Nextcloud, ownCloud, Apache mod_dav, nginx, ...), over http
// (webdav://) or https (webdavs://). The layout is Litestream 0.5's for
// every backend but S3:
//
//	<path>/ltx/<level>/<minTXID>-<maxTXID>.ltx
//
// A file's timestamp is its modification time, in whole seconds. It is set
// on upload with the X-OC-Mtime header (unix seconds), which rclone (v1.63
// and later), Nextcloud and ownCloud honour; listings read it back from
// getlastmodified. A server that ignores the header stamps files with the
// upload time; the client notices this after its first upload and logs a
// warning once.
//
// Writes are atomic: the file is uploaded with PUT to a temporary name in
// the same collection (".<name>.tmp-<unix seconds>-<random>", never listed),
// its size is checked with PROPFIND, and only a complete file is renamed
// into place with MOVE and Overwrite: T. Temp files left by an interrupted
// write are removed by listings once they are a day old. Missing
// collections are created with MKCOL. Reads use Range requests. Requests
// that fail for a reason that may pass (429, 5xx, a reset connection, a
// timeout) are retried with exponential backoff, bounded by the caller's
// context.
//
// Configuration: the URL webdav[s]://[user[:password]@]host[:port]/path and
// the replica keys user (or username), password, path (overrides the URL's),
// skip-verify (do not verify the https certificate) and ca-file (a PEM file
// of certificate authorities to trust besides the system's). The password
// is read from the password key, else the URL, else the environment
// variable WALSHIP_WEBDAV_PASSWORD. Authentication is HTTP Basic; use
// webdavs:// anywhere but on a trusted network.
//
// The client speaks HTTP itself (net/http and encoding/xml) rather than
// through a WebDAV library: it needs per-request headers (X-OC-Mtime,
// Range, Destination, Overwrite), the exact status of every response to
// decide what to retry, uploads whose body is re-read on a retry, and
// errors that never carry the password.
package webdav

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/filerecord"
)

// Type is the value returned by Client.Type.
const Type = "webdav"

// MemoryBuffer is how much of an upload whose reader cannot seek is held in
// memory; a larger one is spooled to a temporary file, so that every upload
// has a known length (some servers lose chunked request bodies) and can be
// retried.
const MemoryBuffer = 4 << 20

// deleteConcurrency bounds the DELETE requests of one DeleteLTXFiles call.
const deleteConcurrency = 8

// sweepTimeout bounds the removal of one stale temp file during a listing.
const sweepTimeout = 10 * time.Second

var _ storage.Client = (*Client)(nil)

// Client stores LTX files on a WebDAV server. It is safe for concurrent use.
type Client struct {
	// Records are kept on the files of the replica's path, beside ltx/
	// (see record.go).
	*filerecord.Records

	cfg       *config
	desc      string  // webdav[s]://host/path, no credentials
	base      url.URL // http[s]://host, no credentials
	http      *http.Client
	transfers *storage.Transfers
	log       *slog.Logger
	retry     storage.RetryPolicy
	secrets   []string // strings to remove from server text quoted in errors

	dirs        sync.Map // collections known to exist (path -> struct{})
	mtimeWarned atomic.Bool
}

// Open returns a client for the destination of spec:
// webdav[s]://[user[:password]@]host[:port]/path and the keys user
// (username), password, path, skip-verify and ca-file. The password may also
// come from WALSHIP_WEBDAV_PASSWORD. Open does no network I/O.
func Open(ctx context.Context, spec storage.Spec) (*Client, error) {
	cfg, err := parseConfig(spec, os.Getenv)
	if err != nil {
		return nil, err
	}
	hc, err := cfg.httpClient()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:       cfg,
		desc:      cfg.display(),
		base:      url.URL{Scheme: "http", Host: cfg.host},
		http:      hc,
		transfers: spec.Transfers,
		log:       spec.Log(),
		retry:     storage.DefaultRetry,
	}
	if cfg.https {
		c.base.Scheme = "https"
	}
	c.Records = filerecord.New(cfg.root, recordFiles{c: c}, c.errorf, c.log.With("destination", c.desc))
	if cfg.password != "" {
		c.secrets = append(c.secrets, cfg.password, url.QueryEscape(cfg.password), url.PathEscape(cfg.password),
			base64.StdEncoding.EncodeToString([]byte(cfg.user+":"+cfg.password)))
	}
	return c, nil
}

// Type returns "webdav".
func (c *Client) Type() string { return Type }

// String returns the destination, webdav[s]://host[:port]/path, without
// credentials.
func (c *Client) String() string { return c.desc }

// errorf prefixes an error with the destination.
func (c *Client) errorf(format string, args ...any) error {
	return fmt.Errorf("replica %s: "+format, append([]any{c.desc}, args...)...)
}

// levelDir returns the collection of a level, "/<root>/ltx/<level>/".
func (c *Client) levelDir(level int) string {
	return "/" + storage.LTXLevelDir(c.cfg.root, level)
}

// filePath returns the path of one LTX file on the server.
func (c *Client) filePath(level int, minTXID, maxTXID ltx.TXID) string {
	return c.levelDir(level) + storage.FileName(minTXID, maxTXID)
}

// urlOf returns the absolute URL of a path on the server.
func (c *Client) urlOf(p string) string {
	u := c.base
	u.Path = p
	return u.String()
}

// LTXFiles lists the files of one level with PROPFIND (Depth: 1), sorted by
// MinTXID then MaxTXID. CreatedAt is the file's getlastmodified, in whole
// seconds, UTC. A missing level is an empty list; temp files and other names
// are ignored, and temp files left for a day by interrupted writes are
// removed on the way.
func (c *Client) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("list level %d: %w", level, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.errorf("list level %d: %w", level, err)
	}
	dir := c.levelDir(level)
	entries, found, err := c.propfind(ctx, dir, "1")
	if err != nil {
		return nil, c.errorf("list level %d (%s): %w", level, dir, err)
	}
	infos := []*ltx.FileInfo{}
	if !found {
		return infos, nil
	}
	now := time.Now()
	for _, e := range entries {
		if !e.isDir && storage.IsTempName(e.name) && storage.IsStaleTemp(e.name, now) {
			c.removeStale(ctx, dir+e.name)
		}
		if e.isDir || strings.HasPrefix(e.name, ".") {
			continue
		}
		minTXID, maxTXID, ok := storage.ParseFileName(e.name)
		if !ok {
			continue
		}
		if e.size < 0 || e.mtime.IsZero() {
			return nil, c.errorf("list level %d: the server reported no size or no getlastmodified for %s", level, e.name)
		}
		infos = append(infos, &ltx.FileInfo{
			Level:     level,
			MinTXID:   minTXID,
			MaxTXID:   maxTXID,
			Size:      e.size,
			CreatedAt: e.mtime,
		})
	}
	storage.SortFiles(infos)
	return infos, nil
}

// OpenLTXFile opens a file for reading from offset with a ranged GET. A size
// of zero reads to the end of the file. A missing file is an error wrapping
// storage.ErrNotFound. The transfer slot is held until the reader is closed.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	if offset < 0 || size < 0 {
		return nil, c.errorf("open %s: invalid offset %d or size %d", desc, offset, size)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	release, err := c.transfers.Acquire(ctx, 0)
	if err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	p := c.filePath(level, minTXID, maxTXID)
	rc, err := c.get(ctx, p, offset, size)
	if err != nil {
		release()
		return nil, c.errorf("open %s: %w", desc, err)
	}
	return &releaser{ReadCloser: rc, release: release}, nil
}

// releaser gives a transfer slot back when its reader is closed.
type releaser struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (r *releaser) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(r.release)
	return err
}

// get sends a GET for p from offset (size bytes, or to the end when zero)
// and returns the body positioned at offset.
func (c *Client) get(ctx context.Context, p string, offset, size int64) (io.ReadCloser, error) {
	var resp *http.Response
	err := storage.Retry(ctx, c.retry, retryable, func(ctx context.Context) error {
		req, err := c.newRequest(ctx, http.MethodGet, p, nil)
		if err != nil {
			return err
		}
		if offset > 0 || size > 0 {
			r := fmt.Sprintf("bytes=%d-", offset)
			if size > 0 {
				r += strconv.FormatInt(offset+size-1, 10)
			}
			req.Header.Set("Range", r)
		}
		// Ask for the bytes as stored: a transparently decompressed body
		// would not match the ranges asked for.
		req.Header.Set("Accept-Encoding", "identity")
		res, err := c.http.Do(req)
		if err != nil {
			return err
		}
		switch res.StatusCode {
		case http.StatusOK, http.StatusPartialContent, http.StatusRequestedRangeNotSatisfiable:
			resp = res
			return nil
		case http.StatusNotFound:
			drain(res)
			return fmt.Errorf("GET %s: %w", p, storage.ErrNotFound)
		}
		return c.statusError(res)
	})
	if err != nil {
		return nil, err
	}

	switch resp.StatusCode {
	case http.StatusRequestedRangeNotSatisfiable:
		// The file exists but ends at or before offset: nothing to read.
		resp.Body.Close()
		return io.NopCloser(bytes.NewReader(nil)), nil
	case http.StatusPartialContent:
		if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); ok && start != offset {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: the server answered the range from byte %d with bytes from %d", p, offset, start)
		}
	case http.StatusOK:
		// The server ignored the Range header: skip to offset.
		if offset > 0 {
			if n, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
				resp.Body.Close()
				if errors.Is(err, io.EOF) {
					return io.NopCloser(bytes.NewReader(nil)), nil
				}
				return nil, fmt.Errorf("GET %s: skip to byte %d (at %d): %w", p, offset, n, err)
			}
		}
	}
	if size > 0 {
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, size), resp.Body}, nil
	}
	return resp.Body, nil
}

// contentRangeStart parses the first byte of "bytes START-END/TOTAL".
func contentRangeStart(s string) (int64, bool) {
	s, ok := strings.CutPrefix(strings.TrimSpace(s), "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(s, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(start), 10, 64)
	return n, err == nil
}

// DeleteLTXFiles removes the given files with DELETE, a few at a time.
// Files already gone (404) are not an error.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	return storage.DeleteEach(ctx, files, deleteConcurrency, c.errorf, func(gctx context.Context, info *ltx.FileInfo) error {
		desc := storage.Describe(info.Level, info.MinTXID, info.MaxTXID)
		p := c.filePath(info.Level, info.MinTXID, info.MaxTXID)
		if err := gctx.Err(); err != nil {
			return c.errorf("delete %s: %w", desc, err)
		}
		if err := c.delete(gctx, p); err != nil {
			return c.errorf("delete %s: %w", desc, err)
		}
		return nil
	})
}

// delete removes p, retrying when that may help; a missing p is not an
// error.
func (c *Client) delete(ctx context.Context, p string) error {
	return storage.Retry(ctx, c.retry, retryable, func(ctx context.Context) error {
		return c.deleteOnce(ctx, p)
	})
}

// deleteOnce removes p with one DELETE; a missing p is not an error.
func (c *Client) deleteOnce(ctx context.Context, p string) error {
	req, err := c.newRequest(ctx, http.MethodDelete, p, nil)
	if err != nil {
		return err
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	switch res.StatusCode {
	case http.StatusOK, http.StatusNoContent, http.StatusAccepted, http.StatusNotFound:
		drain(res)
		return nil
	}
	return c.statusError(res)
}
