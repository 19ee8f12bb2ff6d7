package webdav

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/walship/walship/storage"
)

// Records. WebDAV has no compare-and-swap that servers agree on (rclone
// serve webdav ignores If-Match and If-None-Match on PUT, and its ETags are
// modification time and size, not content), but RFC 4918 gives one
// exclusive step: MOVE with Overwrite: F, which must fail with 412
// Precondition Failed when the destination exists. Records are built on it:
//
//   - A record is the file <path>/<name>, beside ltx/; its version is the
//     SHA-256 of its content, so reading it back gives the version again.
//   - Every write of a record holds its lock, ".<name>.lock": a file holding
//     a random token, PUT to a temp name and moved onto the lock name with
//     Overwrite: F. Whoever's MOVE succeeds holds the lock; the others get
//     storage.ErrConflict at once rather than waiting, since the holder is
//     about to change the record and the caller must re-read it.
//   - Under the lock the writer reads the record, compares its version, and
//     commits. A new record is moved into place with Overwrite: F. A MOVE
//     with Overwrite: T is not atomic (RFC 4918 has the server DELETE the
//     destination first, and rclone does), so a replacement moves the old
//     record aside to ".<name>.old", moves the new one into place with
//     Overwrite: F, and deletes the old. A reader that finds no record
//     while a replacement is between those moves (or was interrupted
//     there) reads the file aside, which is still the current version.
//   - The lock is deleted afterwards; one left by a process that died is
//     broken once it is staleLockAge old (see there).
//
// Creates take the lock too, though their MOVE is exclusive on its own: a
// replacement leaves the record's name free between its moves, and a
// create must not take it then.

const (
	// lockSuffix ends the name of a record's lock: ".<name>.lock".
	lockSuffix = ".lock"

	// asideSuffix ends the name the old record has while a replacement
	// moves the new one into place: ".<name>.old".
	asideSuffix = ".old"

	// staleLockAge is how old a record's lock must be, by the server's
	// clock, to be taken as left by a writer that died, and broken. A
	// live writer never uses its lock that long: records are written in
	// milliseconds, a writer gives up lockHold (half this) after it began
	// taking the lock, and just before it commits it checks that the lock
	// still holds its token. A breaker can therefore only overtake a live
	// writer whose commit, sent after that check, took more than lockHold
	// to reach the server. That is safe enough for records, whose callers
	// re-read on conflict, and it means a crash blocks a record for half a
	// minute rather than for ever.
	staleLockAge = 30 * time.Second

	// lockHold is how long a writer may use the lock it took: past it the
	// write fails rather than risk committing after a stale-lock break.
	lockHold = staleLockAge / 2

	// lockAttempts bounds the tries to take a lock that keeps vanishing
	// or being broken under us.
	lockAttempts = 3

	// unlockTimeout bounds the removal of a lock once the write is over,
	// on a context of its own: the write's may be what ended.
	unlockTimeout = 30 * time.Second
)

// ReadRecord returns the record's content and version (the hex SHA-256 of
// the content). A missing record is an error wrapping storage.ErrNotFound.
func (c *Client) ReadRecord(ctx context.Context, name string) ([]byte, string, error) {
	if err := checkRecord(name, nil); err != nil {
		return nil, "", c.errorf("read record %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, "", c.errorf("read record %s: %w", name, err)
	}
	data, where, err := c.readRecord(ctx, name)
	if err == nil && where == recordMissing {
		err = fmt.Errorf("%w: %s does not exist", storage.ErrNotFound, c.recordPath(name))
	}
	if err != nil {
		return nil, "", c.errorf("read record %s: %w", name, err)
	}
	return data, recordVersion(data), nil
}

// WriteRecord stores data as the record if it is still at version (absent
// when version is empty), under the record's lock, and returns the new
// version. A record at another version, or a lock held by another writer,
// is an error wrapping storage.ErrConflict; nothing is written then.
func (c *Client) WriteRecord(ctx context.Context, name string, data []byte, version string) (string, error) {
	if err := checkRecord(name, data); err != nil {
		return "", c.errorf("write record %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return "", c.errorf("write record %s: %w", name, err)
	}
	if err := c.mkdirAll(ctx, c.cfg.root); err != nil {
		return "", c.errorf("write record %s: create collection %s: %w", name, c.cfg.root, err)
	}
	l, err := c.lockRecord(ctx, name)
	if err != nil {
		return "", c.errorf("write record %s: %w", name, err)
	}
	defer c.unlockRecord(ctx, l)

	hctx, cancel := context.WithDeadline(ctx, l.taken.Add(lockHold))
	defer cancel()
	if err := c.writeLocked(hctx, l, name, data, version); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("gave up after holding the lock %s for %s, so that a slow write cannot race one that breaks it: %w", l.path, lockHold, err)
		}
		return "", c.errorf("write record %s: %w", name, err)
	}
	return recordVersion(data), nil
}

// checkRecord is storage.CheckRecord, and also refuses the names this
// backend keeps for itself: "ltx", the collection of the levels, and names
// starting with ".", which a record's lock and temp files have.
func checkRecord(name string, data []byte) error {
	if err := storage.CheckRecord(name, data); err != nil {
		return err
	}
	if name == "ltx" || strings.HasPrefix(name, ".") {
		return fmt.Errorf("invalid record name %q: the WebDAV backend keeps ltx and names starting with \".\" for its own files", name)
	}
	return nil
}

// recordVersion is the version of a record's content.
func recordVersion(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// recordPath returns the path of a record on the server.
func (c *Client) recordPath(name string) string { return path.Join(c.cfg.root, name) }

// hiddenPath returns the path of one of a record's own files,
// ".<name><suffix>": never listed, as it starts with ".".
func (c *Client) hiddenPath(name, suffix string) string {
	return path.Join(c.cfg.root, "."+name+suffix)
}

// Where a record's current content was found.
const (
	recordMissing = iota
	recordInPlace // under the record's name
	recordAside   // moved aside by a replacement still in progress, or interrupted
)

// readRecord reads the record's current content: the record file or, when
// there is none, the copy a replacement moved aside, which stays the
// current version until the new file has the record's name.
func (c *Client) readRecord(ctx context.Context, name string) (data []byte, where int, err error) {
	// Twice: a replacement that finishes between the two reads deletes
	// the copy aside after giving the record its name.
	for range 2 {
		data, _, err := c.getSmall(ctx, c.recordPath(name))
		if !errors.Is(err, storage.ErrNotFound) {
			return data, recordInPlace, err
		}
		data, _, err = c.getSmall(ctx, c.hiddenPath(name, asideSuffix))
		if !errors.Is(err, storage.ErrNotFound) {
			return data, recordAside, err
		}
	}
	return nil, recordMissing, nil
}

// writeLocked checks the record's version and commits data, holding the
// lock l.
func (c *Client) writeLocked(ctx context.Context, l *recordLock, name string, data []byte, version string) error {
	p := c.recordPath(name)
	cur, where, err := c.readRecord(ctx, name)
	if err != nil {
		return err
	}
	switch {
	case version == "" && where != recordMissing:
		return fmt.Errorf("%w: %s exists", storage.ErrConflict, p)
	case version != "" && where == recordMissing:
		return fmt.Errorf("%w: %s does not exist", storage.ErrConflict, p)
	case version != "" && recordVersion(cur) != version:
		return fmt.Errorf("%w: %s is no longer at version %s", storage.ErrConflict, p, version)
	}

	tmp := path.Join(c.cfg.root, storage.TempName(name, time.Now()))
	if err := c.putSmall(ctx, tmp, data); err != nil {
		c.removeLeftover(ctx, tmp)
		return err
	}
	if err := c.checkLock(ctx, l); err != nil {
		c.removeLeftover(ctx, tmp)
		return err
	}
	if err := ctx.Err(); err != nil {
		c.removeLeftover(ctx, tmp)
		return err
	}
	if err := c.commitRecord(ctx, name, tmp, data, where); err != nil {
		c.removeLeftover(ctx, tmp)
		return err
	}
	return nil
}

// commitRecord moves tmp, which holds data, onto the record. A record in
// place is moved aside first, and deleted once the new one has its name,
// so that the name never resolves to nothing. Every MOVE has Overwrite: F:
// one with Overwrite: T sent again after a lost answer finds its source
// gone and, on servers built on golang.org/x/net/webdav (rclone's), has
// deleted its destination, the file just moved, before it fails.
func (c *Client) commitRecord(ctx context.Context, name, tmp string, data []byte, where int) error {
	p := c.recordPath(name)
	aside := c.hiddenPath(name, asideSuffix)
	if where == recordInPlace {
		if err := c.moveAside(ctx, p, aside); err != nil {
			return err
		}
	}
	moved, lost, err := c.moveNoReplace(ctx, tmp, p)
	if err != nil {
		return err
	}
	if !moved || lost {
		// Either the record exists, or an attempt whose answer was lost
		// moved tmp onto it. The lock kept others out, so a record that
		// holds data is ours.
		got, _, err := c.getSmall(ctx, p)
		if err == nil && recordVersion(got) != recordVersion(data) {
			return fmt.Errorf("%w: %s exists", storage.ErrConflict, p)
		} else if err != nil {
			return fmt.Errorf("MOVE %s to %s: check the record after the answer to a MOVE was lost: %w", tmp, p, err)
		}
	}
	if where != recordMissing {
		if err := c.delete(ctx, aside); err != nil {
			// Harmless: readers see the record, and the next
			// replacement deletes this one first.
			c.log.Warn("could not delete the previous version of a record", "replica", c.desc, "file", aside, "error", err)
		}
	}
	return nil
}

// moveAside moves the record p to aside, deleting first a copy an
// interrupted replacement left there (older than the record in place).
func (c *Client) moveAside(ctx context.Context, p, aside string) error {
	if err := c.delete(ctx, aside); err != nil {
		return fmt.Errorf("delete the previous version %s: %w", aside, err)
	}
	moved, lost, err := c.moveNoReplace(ctx, p, aside)
	if err != nil {
		return fmt.Errorf("move %s aside: %w", p, err)
	}
	if !moved || lost {
		// aside was free under the lock, so an attempt whose answer was
		// lost filled it, if p is gone.
		if _, _, err := c.getSmall(ctx, p); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("move %s aside to %s: it is still in place (%v)", p, aside, err)
		}
	}
	return nil
}

// recordLock is a record's lock, held by this writer.
type recordLock struct {
	path  string
	token string    // what the lock file holds: ours, unique
	taken time.Time // when the attempt that took it began
}

// lockRecord takes the lock of a record. A lock another writer holds is
// an error wrapping storage.ErrConflict; a stale one is broken and taken.
func (c *Client) lockRecord(ctx context.Context, name string) (*recordLock, error) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails
	l := &recordLock{path: c.hiddenPath(name, lockSuffix), token: hex.EncodeToString(b[:])}
	for range lockAttempts {
		held, other, err := c.tryLock(ctx, l)
		switch {
		case err != nil:
			return nil, err
		case held:
			return l, nil
		case other == nil:
			continue // released meanwhile: try again
		case other.age < staleLockAge:
			return nil, fmt.Errorf("%w: another writer holds the lock %s (%s old by the server's clock; stale at %s)", storage.ErrConflict, l.path, other.age.Truncate(time.Second), staleLockAge)
		}
		if err := c.breakLock(ctx, l.path, other); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: the lock %s was taken by others each of %d tries", storage.ErrConflict, l.path, lockAttempts)
}

// tryLock tries once to take the lock l. When another writer holds it,
// other is that lock; nil when it vanished before it could be read.
func (c *Client) tryLock(ctx context.Context, l *recordLock) (held bool, other *lockFile, err error) {
	l.taken = time.Now()
	tmp := path.Join(path.Dir(l.path), storage.TempName(path.Base(l.path), l.taken))
	if err := c.putSmall(ctx, tmp, []byte(l.token)); err != nil {
		c.removeLeftover(ctx, tmp)
		return false, nil, fmt.Errorf("take the lock %s: %w", l.path, err)
	}
	moved, lost, err := c.moveNoReplace(ctx, tmp, l.path)
	if err != nil {
		c.removeLeftover(ctx, tmp)
		return false, nil, fmt.Errorf("take the lock %s: %w", l.path, err)
	}
	if moved && !lost {
		return true, nil, nil
	}
	defer c.removeLeftover(ctx, tmp)
	other, err = c.readLock(ctx, l.path)
	if err != nil {
		return false, nil, ignoreNotFound(err)
	}
	if other.token == l.token {
		return true, nil, nil // moved by an attempt whose answer was lost
	}
	// The age is by the server's clock, which stamped both files: no skew
	// between hosts.
	now, err := c.readLock(ctx, tmp)
	if err != nil {
		return false, nil, fmt.Errorf("take the lock %s: read back %s: %w", l.path, tmp, err)
	}
	other.age = now.mtime.Sub(other.mtime)
	return false, other, nil
}

// lockFile is a lock as found on the server.
type lockFile struct {
	token string
	mtime time.Time
	age   time.Duration
}

// readLock reads the lock file p: its token and modification time, from
// the GET's Last-Modified or else a PROPFIND sent after it. In that order,
// a lock replaced between the two requests can only look younger than the
// token read, never older: a live lock is never taken for a stale one.
func (c *Client) readLock(ctx context.Context, p string) (*lockFile, error) {
	data, mtime, err := c.getSmall(ctx, p)
	if err != nil {
		return nil, err
	}
	if mtime.IsZero() {
		e, err := c.stat(ctx, p)
		if err != nil {
			return nil, err
		}
		if mtime = e.mtime; mtime.IsZero() {
			return nil, fmt.Errorf("the server reported no modification time for %s, so a stale lock cannot be told from a live one", p)
		}
	}
	return &lockFile{token: string(data), mtime: mtime}, nil
}

// breakLock removes the stale lock other found at p. It moves it aside
// first and checks that what it moved is that lock: another writer may have
// broken it and taken the lock meanwhile, and that live lock is put back.
func (c *Client) breakLock(ctx context.Context, p string, other *lockFile) error {
	// A unique name: whatever is there after the MOVE, even a 412 after
	// a lost answer, was moved by us.
	aside := path.Join(path.Dir(p), storage.TempName(path.Base(p), time.Now()))
	if _, _, err := c.moveNoReplace(ctx, p, aside); err != nil {
		if _, _, gerr := c.getSmall(ctx, p); errors.Is(gerr, storage.ErrNotFound) {
			return nil // broken or released by someone else
		}
		return fmt.Errorf("break the stale lock %s: %w", p, err)
	}
	got, _, err := c.getSmall(ctx, aside)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // an attempt whose answer was lost found it gone
	}
	if err == nil && string(got) == other.token {
		c.removeLeftover(ctx, aside)
		c.log.Warn("broke a stale lock left by a writer that stopped while writing a record", "replica", c.desc, "lock", p, "age", other.age.Truncate(time.Second))
		return nil
	}
	if moved, lost, err := c.moveNoReplace(ctx, aside, p); err != nil || !moved || lost {
		// A third writer took the lock in the meantime. The writer whose
		// lock was moved finds it gone when it checks before committing.
		c.removeLeftover(ctx, aside)
	}
	return fmt.Errorf("%w: another writer took the lock %s while its stale predecessor was broken", storage.ErrConflict, p)
}

// checkLock fails, with storage.ErrConflict, when the lock file no longer
// holds l's token: another writer took it as stale.
func (c *Client) checkLock(ctx context.Context, l *recordLock) error {
	got, _, err := c.getSmall(ctx, l.path)
	if errors.Is(err, storage.ErrNotFound) || err == nil && string(got) != l.token {
		return fmt.Errorf("%w: the lock %s was broken by another writer as stale", storage.ErrConflict, l.path)
	}
	return err
}

// unlockRecord deletes the lock l if it still holds l's token. Each try
// checks the token again before its DELETE: a DELETE sent again after a
// lost answer could otherwise delete the lock of the next writer. A
// failure is logged: the lock is broken as stale in staleLockAge.
func (c *Client) unlockRecord(ctx context.Context, l *recordLock) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
	defer cancel()
	err := storage.Retry(ctx, c.retry, retryable, func(ctx context.Context) error {
		got, _, err := c.getSmall(ctx, l.path)
		if errors.Is(err, storage.ErrNotFound) || err == nil && string(got) != l.token {
			return nil // broken as stale: not ours to delete any more
		} else if err != nil {
			return err
		}
		return c.deleteOnce(ctx, l.path)
	})
	if err != nil {
		c.log.Warn("could not delete the lock of a record; other writers break it once it is stale", "replica", c.desc, "lock", l.path, "stale-after", staleLockAge, "error", err)
	}
}

// getSmall reads the file p, which may hold at most storage.MaxRecordSize
// bytes, retrying when that may help, and returns its Last-Modified time
// (zero when the server sends none). A missing p is an error wrapping
// storage.ErrNotFound.
func (c *Client) getSmall(ctx context.Context, p string) (data []byte, mtime time.Time, err error) {
	err = storage.Retry(ctx, c.retry, retryable, func(ctx context.Context) error {
		req, err := c.newRequest(ctx, http.MethodGet, p, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept-Encoding", "identity")
		res, err := c.http.Do(req)
		if err != nil {
			return err
		}
		switch res.StatusCode {
		case http.StatusOK:
		case http.StatusNotFound:
			drain(res)
			return fmt.Errorf("GET %s: %w", p, storage.ErrNotFound)
		default:
			return c.statusError(res)
		}
		defer res.Body.Close()
		data, err = io.ReadAll(io.LimitReader(res.Body, storage.MaxRecordSize+1))
		if err != nil {
			return fmt.Errorf("GET %s: read the answer: %w", p, retryLater(err))
		}
		if len(data) > storage.MaxRecordSize {
			return permanent(fmt.Errorf("GET %s: the file holds more than the %d bytes a record may: it was not written by walship", p, storage.MaxRecordSize))
		}
		mtime = time.Time{}
		if t, err := http.ParseTime(res.Header.Get("Last-Modified")); err == nil {
			mtime = t.UTC()
		}
		return nil
	})
	return data, mtime, err
}

// putSmall uploads data to p, a unique temp name, so that a retry is safe,
// creating the collection again if the server says it has gone (409
// Conflict). It sets no X-OC-Mtime: the file's time is the server's clock,
// which stale locks are told by.
func (c *Client) putSmall(ctx context.Context, p string, data []byte) error {
	put := func() error {
		return storage.Retry(ctx, c.retry, retryable, func(ctx context.Context) error {
			req, err := c.newRequest(ctx, http.MethodPut, p, bytes.NewReader(data))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/octet-stream")
			res, err := c.http.Do(req)
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
	err := put()
	if isStatus(err, http.StatusConflict) {
		c.forgetDirs(path.Dir(p))
		if err := c.mkdirAll(ctx, path.Dir(p)); err != nil {
			return err
		}
		err = put()
	}
	return err
}

// moveNoReplace renames from to to with MOVE and Overwrite: F. moved is
// false when to exists (412 Precondition Failed), and lost when a retry
// found from gone (404): either may be the doing of an attempt whose answer
// was lost, so the caller checks what to holds. A 404 on the first attempt
// is an error.
func (c *Client) moveNoReplace(ctx context.Context, from, to string) (moved, lost bool, err error) {
	attempt := 0
	err = storage.Retry(ctx, c.retry, retryable, func(ctx context.Context) error {
		attempt++
		req, err := c.newRequest(ctx, "MOVE", from, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Destination", c.urlOf(to))
		req.Header.Set("Overwrite", "F")
		res, err := c.http.Do(req)
		if err != nil {
			return err
		}
		switch res.StatusCode {
		case http.StatusCreated, http.StatusNoContent, http.StatusOK:
			drain(res)
			moved = true
			return nil
		case http.StatusPreconditionFailed:
			drain(res)
			moved = false
			return nil
		case http.StatusNotFound:
			if attempt > 1 {
				drain(res)
				moved, lost = true, true
				return nil
			}
		}
		return c.statusError(res)
	})
	return moved, lost, err
}

// isStatus reports whether err is an answer with the HTTP status code.
func isStatus(err error, code int) bool {
	var he *httpError
	return errors.As(err, &he) && he.Status == code
}

// ignoreNotFound is err, or nil when err says a file is missing.
func ignoreNotFound(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}
