package webdav

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// WriteLTXFile stores the whole of r as the given file, atomically: PUT to a
// temporary name in the level's collection with X-OC-Mtime set to createdAt,
// a check of the temp file's size and time with PROPFIND, then MOVE onto the
// final name. A temp file the server holds short is removed and never
// moved: whatever happens, the final name holds a complete file or the one
// it held before.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckWrite(ctx, level, minTXID, maxTXID); err != nil {
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
	put := func(ctx context.Context) error { return c.put(ctx, tmp, body, createdAt) }
	if err := c.putTemp(ctx, dir, put); err != nil {
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
			"destination", c.desc, "file", final, "want", want, "got", e.mtime)
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
		c.log.Debug("could not remove a temp file left by an interrupted write", "destination", c.desc, "file", p, "error", err)
		return
	}
	c.log.Info("removed a temp file left by an interrupted write", "destination", c.desc, "file", p)
}

// putTemp uploads a temp file in the collection dir with put, creating
// the collection again if the server says it has gone (409 Conflict).
func (c *Client) putTemp(ctx context.Context, dir string, put func(ctx context.Context) error) error {
	err := put(ctx)
	var he *httpError
	if errors.As(err, &he) && he.Status == http.StatusConflict {
		c.forgetDirs(dir)
		if err := c.mkdirAll(ctx, dir); err != nil {
			return err
		}
		err = put(ctx)
	}
	return err
}

// put uploads body to p with PUT, retrying when that may help, and has
// the server set the file's modification time to mtime (X-OC-Mtime) unless
// that is zero.
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
		if !mtime.IsZero() {
			req.Header.Set("X-OC-Mtime", strconv.FormatInt(mtime.Unix(), 10))
		}
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

// move renames from onto to with MOVE and Overwrite: T. lost reports that
// an attempt whose answer was lost had moved the file (the source was gone
// when the next attempt looked): the caller must check that to holds it.
func (c *Client) move(ctx context.Context, from, to string) (lost bool, err error) {
	attempt := 0
	err = storage.Retry(ctx, c.retry, retryable, func(ctx context.Context) error {
		attempt++
		if attempt > 1 {
			// Never send a MOVE again once the source is gone: servers
			// built on golang.org/x/net/webdav (rclone's among them)
			// delete the destination of a MOVE with Overwrite: T before
			// they find that the source is missing, which would delete
			// the file the earlier attempt moved.
			_, found, err := c.propfind(ctx, from, "0")
			if err != nil {
				return err
			}
			if !found {
				lost = true
				return nil
			}
		}
		_, err := c.sendMove(ctx, from, to, true)
		return err
	})
	return lost, err
}

// sendMove sends one MOVE of from to to, with Overwrite: T when overwrite
// is set and F otherwise. It returns the answer's status when the move was
// done or the status is one of also; any other answer is an error.
func (c *Client) sendMove(ctx context.Context, from, to string, overwrite bool, also ...int) (int, error) {
	req, err := c.newRequest(ctx, "MOVE", from, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Destination", c.urlOf(to))
	req.Header.Set("Overwrite", "F")
	if overwrite {
		req.Header.Set("Overwrite", "T")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	switch res.StatusCode {
	case http.StatusCreated, http.StatusNoContent, http.StatusOK:
	default:
		if !slices.Contains(also, res.StatusCode) {
			return 0, c.statusError(res)
		}
	}
	drain(res)
	return res.StatusCode, nil
}

// removeLeftover deletes a file left by a failed write, on a context of its own
// since ctx may be what failed.
func (c *Client) removeLeftover(ctx context.Context, p string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := c.delete(ctx, p); err != nil {
		c.log.Warn("could not remove a file of a failed upload", "destination", c.desc, "file", p, "error", err)
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
