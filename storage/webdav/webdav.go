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
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
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

// WriteLTXFile stores the whole of r as the given file, atomically: PUT to a
// temporary name in the level's collection with X-OC-Mtime set to createdAt,
// a check of the temp file's size and time with PROPFIND, then MOVE onto the
// final name. A temp file the server holds short is removed and never
// moved: whatever happens, the final name holds a complete file or the one
// it held before.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckFile(level, minTXID, maxTXID); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if createdAt.IsZero() {
		createdAt = time.Now()
	}

	var buf int64
	if _, ok := r.(io.ReadSeeker); !ok {
		buf = MemoryBuffer
	}
	release, err := c.transfers.Acquire(ctx, buf)
	if err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	defer release()

	body, err := newBody(r, MemoryBuffer)
	if err != nil {
		return nil, c.errorf("write %s: read the file to upload: %w", desc, err)
	}
	defer body.close()

	dir := c.levelDir(level)
	final := dir + storage.FileName(minTXID, maxTXID)
	tmp := dir + storage.TempName(storage.FileName(minTXID, maxTXID), time.Now())

	if err := c.mkdirAll(ctx, dir); err != nil {
		return nil, c.errorf("write %s: create collection %s: %w", desc, dir, err)
	}
	if err := c.putTemp(ctx, dir, tmp, body, createdAt); err != nil {
		c.removeLeftover(ctx, tmp)
		return nil, c.errorf("write %s: %w", desc, err)
	}

	// Read back what the server stored before the file gets its final
	// name: a size that differs means the body was cut short on the way
	// (some proxies do), and a time that differs means the server ignores
	// X-OC-Mtime.
	e, err := c.stat(ctx, tmp)
	if err != nil {
		c.removeLeftover(ctx, tmp)
		return nil, c.errorf("write %s: check the uploaded file: %w", desc, err)
	}
	if e.size != body.size {
		c.removeLeftover(ctx, tmp)
		if e.size < 0 {
			return nil, c.errorf("write %s: the server reported no size for the uploaded %s, so it cannot be checked and was removed", desc, tmp)
		}
		return nil, c.errorf("write %s: the server stored %d bytes of the %d uploaded, so the upload was removed and %s left as it was", desc, e.size, body.size, final)
	}

	lost, err := c.move(ctx, tmp, final)
	if err != nil {
		c.removeLeftover(ctx, tmp)
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if lost {
		// A MOVE answered 404 after an attempt whose answer was lost: that
		// attempt moved the file. Confirm it is there.
		fe, err := c.stat(ctx, final)
		if err != nil {
			return nil, c.errorf("write %s: check the moved file: %w", desc, err)
		}
		if fe.size != body.size {
			return nil, c.errorf("write %s: %s holds %d bytes after the move, not the %d uploaded", desc, final, fe.size, body.size)
		}
		if !fe.mtime.IsZero() {
			e.mtime = fe.mtime
		}
	}

	want := createdAt.Truncate(time.Second).UTC()
	if !e.mtime.Equal(want) && c.mtimeWarned.CompareAndSwap(false, true) {
		c.log.Warn("the WebDAV server does not keep the file times walship sets (X-OC-Mtime): point-in-time restores will use upload times; use rclone serve webdav v1.63+, Nextcloud or ownCloud",
			"replica", c.desc, "file", final, "want", want, "got", e.mtime)
	}
	return &ltx.FileInfo{
		Level:     level,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Size:      e.size,
		CreatedAt: e.mtime,
	}, nil
}

// stat returns the properties of the file p with PROPFIND (Depth 0).
func (c *Client) stat(ctx context.Context, p string) (entry, error) {
	entries, found, err := c.propfind(ctx, p, "0")
	if err != nil {
		return entry{}, err
	}
	if !found || len(entries) == 0 {
		return entry{}, fmt.Errorf("PROPFIND %s: the file is missing", p)
	}
	if e := entries[0]; !e.isDir {
		return e, nil
	}
	return entry{}, fmt.Errorf("PROPFIND %s: a collection, not a file", p)
}

// removeStale deletes a temp file left by an interrupted write, with one
// request: a failure is logged and left for the next listing.
func (c *Client) removeStale(ctx context.Context, p string) {
	ctx, cancel := context.WithTimeout(ctx, sweepTimeout)
	defer cancel()
	if err := c.deleteOnce(ctx, p); err != nil {
		c.log.Debug("could not remove a temp file left by an interrupted write", "replica", c.desc, "file", p, "error", err)
		return
	}
	c.log.Info("removed a temp file left by an interrupted write", "replica", c.desc, "file", p)
}

// putTemp uploads body to tmp in the collection dir, creating the
// collection again if the server says it has gone (409 Conflict).
func (c *Client) putTemp(ctx context.Context, dir, tmp string, body *body, mtime time.Time) error {
	err := c.put(ctx, tmp, body, mtime)
	var he *httpError
	if errors.As(err, &he) && he.Status == http.StatusConflict {
		c.forgetDirs(dir)
		if err := c.mkdirAll(ctx, dir); err != nil {
			return err
		}
		err = c.put(ctx, tmp, body, mtime)
	}
	return err
}

// put uploads body to p with PUT, retrying when that may help.
func (c *Client) put(ctx context.Context, p string, body *body, mtime time.Time) error {
	return storage.Retry(ctx, c.retry, retryable, func(ctx context.Context) error {
		r, err := body.reader()
		if err != nil {
			return err
		}
		src := &sourceReader{r: r}
		req, err := c.newRequest(ctx, http.MethodPut, p, src)
		if err != nil {
			return err
		}
		req.ContentLength = body.size
		if body.size == 0 {
			req.Body = http.NoBody
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("X-OC-Mtime", strconv.FormatInt(mtime.Unix(), 10))
		res, err := c.http.Do(req)
		if serr := src.end(); serr != nil {
			if res != nil {
				res.Body.Close()
			}
			return &sourceError{err: serr}
		}
		if err != nil {
			return err
		}
		switch res.StatusCode {
		case http.StatusOK, http.StatusCreated, http.StatusNoContent:
			drain(res)
			return nil
		}
		return c.statusError(res)
	})
}

// move renames from onto to with MOVE and Overwrite: T. lost reports a 404
// after an attempt whose answer was lost, which most likely moved the file:
// the caller must check that to holds it.
func (c *Client) move(ctx context.Context, from, to string) (lost bool, err error) {
	attempt := 0
	err = storage.Retry(ctx, c.retry, retryable, func(ctx context.Context) error {
		attempt++
		req, err := c.newRequest(ctx, "MOVE", from, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Destination", c.urlOf(to))
		req.Header.Set("Overwrite", "T")
		res, err := c.http.Do(req)
		if err != nil {
			return err
		}
		switch res.StatusCode {
		case http.StatusCreated, http.StatusNoContent, http.StatusOK:
			drain(res)
			return nil
		case http.StatusNotFound:
			if attempt > 1 {
				// An earlier attempt moved the file but its answer was
				// lost.
				drain(res)
				lost = true
				return nil
			}
		}
		return c.statusError(res)
	})
	return lost, err
}

// removeLeftover deletes a file left by a failed write, on a context of its own
// since ctx may be what failed.
func (c *Client) removeLeftover(ctx context.Context, p string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := c.delete(ctx, p); err != nil {
		c.log.Warn("could not remove a file of a failed upload", "replica", c.desc, "file", p, "error", err)
	}
}

// mkdirAll creates the collection dir and its parents as needed. It first
// tries dir itself, and walks up only when the server answers 409 Conflict
// (parent missing), so it never touches server prefixes that exist already.
func (c *Client) mkdirAll(ctx context.Context, dir string) error {
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		return nil
	}
	if _, ok := c.dirs.Load(dir); ok {
		return nil
	}
	err := c.mkcol(ctx, dir)
	var he *httpError
	if errors.As(err, &he) && he.Status == http.StatusConflict {
		if err := c.mkdirAll(ctx, path.Dir(dir)); err != nil {
			return err
		}
		err = c.mkcol(ctx, dir)
	}
	if err != nil {
		return err
	}
	c.dirs.Store(dir, struct{}{})
	return nil
}

// forgetDirs drops dir and its parents from the collections known to exist.
func (c *Client) forgetDirs(dir string) {
	for dir = strings.TrimSuffix(dir, "/"); dir != "/" && dir != "." && dir != ""; dir = path.Dir(dir) {
		c.dirs.Delete(dir)
	}
}

// mkcol creates one collection; one that exists already (405 Method Not
// Allowed) is not an error.
func (c *Client) mkcol(ctx context.Context, dir string) error {
	return storage.Retry(ctx, c.retry, retryable, func(ctx context.Context) error {
		req, err := c.newRequest(ctx, "MKCOL", dir+"/", nil)
		if err != nil {
			return err
		}
		res, err := c.http.Do(req)
		if err != nil {
			return err
		}
		switch res.StatusCode {
		case http.StatusCreated, http.StatusOK, http.StatusNoContent, http.StatusMethodNotAllowed:
			drain(res)
			return nil
		}
		return c.statusError(res)
	})
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

// entry is one resource of a PROPFIND answer.
type entry struct {
	name  string // base name, unescaped
	isDir bool
	size  int64 // -1 when not reported
	mtime time.Time
}

const propfindBody = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>`

// propfind lists p (Depth 0: p itself; Depth 1: p and its members). found
// is false when p does not exist.
func (c *Client) propfind(ctx context.Context, p, depth string) (entries []entry, found bool, err error) {
	err = storage.Retry(ctx, c.retry, retryable, func(ctx context.Context) error {
		req, err := c.newRequest(ctx, "PROPFIND", p, strings.NewReader(propfindBody))
		if err != nil {
			return err
		}
		req.Header.Set("Depth", depth)
		req.Header.Set("Content-Type", `application/xml; charset="utf-8"`)
		res, err := c.http.Do(req)
		if err != nil {
			return err
		}
		switch res.StatusCode {
		case http.StatusNotFound:
			drain(res)
			entries, found = nil, false
			return nil
		case http.StatusMultiStatus:
		default:
			return c.statusError(res)
		}
		defer res.Body.Close()
		var ms multistatus
		if err := xml.NewDecoder(res.Body).Decode(&ms); err != nil {
			// A body that is not WebDAV XML is not worth another try, but
			// tells the operator what answered; one cut short on the way
			// (a read error, or XML ending early) is.
			var syntax *xml.SyntaxError
			if errors.As(err, &syntax) && !strings.Contains(syntax.Msg, "unexpected EOF") {
				return fmt.Errorf("PROPFIND %s: the answer is not a WebDAV multistatus (is the URL a WebDAV collection?): %w", p, permanent(err))
			}
			return fmt.Errorf("PROPFIND %s: read the answer: %w", p, retryLater(err))
		}
		entries, found = ms.entries(), true
		return nil
	})
	return entries, found, err
}

// multistatus is the body of a 207 Multi-Status answer to PROPFIND.
type multistatus struct {
	Responses []struct {
		Href      string `xml:"DAV: href"`
		Propstats []struct {
			Status string `xml:"DAV: status"`
			Prop   struct {
				ResourceType struct {
					Collection *struct{} `xml:"DAV: collection"`
				} `xml:"DAV: resourcetype"`
				ContentLength string `xml:"DAV: getcontentlength"`
				LastModified  string `xml:"DAV: getlastmodified"`
			} `xml:"DAV: prop"`
		} `xml:"DAV: propstat"`
	} `xml:"DAV: response"`
}

// entries returns the resources of a multistatus, reading only the
// properties of successful propstats (a 404 propstat lists the properties a
// server does not have).
func (ms *multistatus) entries() []entry {
	out := make([]entry, 0, len(ms.Responses))
	for _, r := range ms.Responses {
		p := r.Href
		if u, err := url.Parse(strings.TrimSpace(r.Href)); err == nil {
			p = u.Path
		}
		e := entry{name: path.Base(strings.TrimSuffix(p, "/")), size: -1, isDir: strings.HasSuffix(p, "/")}
		for _, ps := range r.Propstats {
			if ps.Status != "" && !strings.Contains(ps.Status, " 200") {
				continue
			}
			if ps.Prop.ResourceType.Collection != nil {
				e.isDir = true
			}
			if v := strings.TrimSpace(ps.Prop.ContentLength); v != "" {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
					e.size = n
				}
			}
			if v := strings.TrimSpace(ps.Prop.LastModified); v != "" {
				if t, err := http.ParseTime(v); err == nil {
					e.mtime = t.UTC()
				}
			}
		}
		out = append(out, e)
	}
	return out
}

// newRequest returns a request for path p on the server, with credentials.
func (c *Client) newRequest(ctx context.Context, method, p string, body io.Reader) (*http.Request, error) {
	u := c.base
	u.Path = p
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if c.cfg.user != "" {
		req.SetBasicAuth(c.cfg.user, c.cfg.password)
	}
	req.Header.Set("User-Agent", "walship")
	return req, nil
}

// httpError is an answer with a status the operation did not expect.
type httpError struct {
	Method string
	Path   string
	Status int
	Text   string // the start of the body, one line, credentials removed
}

func (e *httpError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	switch e.Status {
	case http.StatusUnauthorized:
		msg += " (check user and password)"
	case http.StatusForbidden:
		msg += " (the user may not write there)"
	}
	if e.Text != "" {
		msg += ": " + e.Text
	}
	return msg
}

// statusError reads the start of an unexpected answer and closes it.
func (c *Client) statusError(res *http.Response) error {
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	text := strings.Join(strings.Fields(string(b)), " ")
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	for _, s := range c.secrets {
		if s != "" {
			text = strings.ReplaceAll(text, s, "REDACTED")
		}
	}
	if strings.HasPrefix(text, "<") {
		text = "" // an HTML or XML page says little in one line
	}
	if loc := res.Header.Get("Location"); res.StatusCode/100 == 3 && loc != "" {
		if u, err := url.Parse(loc); err == nil {
			u.User = nil
			loc = u.String()
		}
		text = "redirected to " + loc + "; point the replica URL there"
	}
	return &httpError{Method: res.Request.Method, Path: res.Request.URL.Path, Status: res.StatusCode, Text: text}
}

// drain reads what is left of an answer and closes it, so that the
// connection can be reused.
func drain(res *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
}

// permanentError marks an error that a retry cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err: err} }

// transientError marks an error that a retry may fix.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

func retryLater(err error) error { return &transientError{err: err} }

// sourceError is a failure to read the data to upload: not the server's
// fault, and not worth a retry.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "read the file to upload: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// errAttemptOver is what the body of an upload attempt reads once the
// attempt has ended.
var errAttemptOver = errors.New("upload attempt ended")

// sourceReader is the body of one upload attempt. It remembers a failure of
// the reader it reads, and stops reading when the attempt ends: the HTTP
// transport may still read a body after it has returned, which must not
// race with the next attempt rewinding the same source.
type sourceReader struct {
	mu   sync.Mutex
	r    io.Reader
	err  error
	over bool
}

func (s *sourceReader) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.over {
		return 0, errAttemptOver
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// end ends the attempt and returns the reader's failure, if any.
func (s *sourceReader) end() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.over = true
	return s.err
}

// retryable reports whether a request that failed with err may succeed if
// sent again: throttling (429), a server error (5xx but 501 and 505), a
// request timeout (408), or a transport failure other than a certificate
// that does not verify.
func retryable(err error) bool {
	var (
		he *httpError
		pe *permanentError
		se *sourceError
		te *transientError
	)
	switch {
	case errors.As(err, &te):
		return true
	case errors.As(err, &he):
		s := he.Status
		return s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s == http.StatusLocked ||
			s >= 500 && s != http.StatusNotImplemented && s != http.StatusHTTPVersionNotSupported
	case errors.As(err, &pe), errors.As(err, &se):
		return false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verification     *tls.CertificateVerificationError
		recordHeader     tls.RecordHeaderError
	)
	if errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verification) || errors.As(err, &recordHeader) {
		return false
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF)
}
