// Package filerecord keeps storage.Records on a server that has no
// compare-and-swap but can move a file onto a name only while that name is
// free: SFTP (a plain rename) and WebDAV (MOVE with Overwrite: F). It holds
// the protocol; a backend gives it the server's files (Server, Files).
//
//   - A record is the file <dir>/<name>, beside ltx/; its version is the
//     SHA-256 of its content, so reading it back gives the version again.
//   - Every write of a record holds its lock, ".<name>.lock": a file holding
//     a random token, written to a temp name and moved onto the lock's name
//     with Files.Move. Whoever's move succeeds holds the lock; the others
//     get storage.ErrConflict at once rather than waiting, since the holder
//     is about to change the record and the caller must re-read it.
//   - Under the lock the writer reads the record, compares its version, and
//     commits. A new record is moved into place with Files.Move. A record in
//     place is replaced with Files.Replace where the server can do that in
//     one step; elsewhere the old record is moved aside to ".<name>.old",
//     the new one moved into place, and the old one removed. A reader that
//     finds no record while a replacement is between those moves (or was
//     interrupted there) reads the copy aside, which is still the current
//     version.
//   - The lock is removed afterwards; one left by a process that died is
//     broken once it is staleLockAge old by the server's clock (see there).
//
// Creates take the lock too, though their move is exclusive on its own: a
// replacement without Files.Replace leaves the record's name free between
// its moves, and a create must not take it then.
//
// A request can fail after the server carried it out. Every step therefore
// looks at the server before it acts again: a step run again from the
// start, or a move sent again after its answer was lost, finds what the
// first one did (its token in the lock, its data in the record) and takes
// it as done.
//
// Package filerecordtest holds the tests a backend runs on its real server.
package filerecord

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"time"

	"github.com/walship/walship/storage"
)

// Server is how a backend reaches the directory its records are in.
type Server interface {
	// Do runs op, one step of the protocol, on the server's files. Steps
	// are written to be run again from the start, and where a failure can
	// stop a step without its requests being sent again on their own, Do
	// runs it again: SFTP does, on a new connection, when the one the step
	// used broke.
	Do(ctx context.Context, op func(ctx context.Context, f Files) error) error

	// Retry runs op like Do, and runs it again from the start after any
	// failure that may pass, on files that send a removal once. The
	// removal of a lock goes through it: sent again after its answer was
	// lost, a removal could take away the lock of a writer who took it
	// since, so each try reads the lock first.
	Retry(ctx context.Context, op func(ctx context.Context, f Files) error) error
}

// Files are the server's files, named by their "/"-separated paths on the
// server, as this package uses them. A missing file is an error wrapping
// fs.ErrNotExist. Errors name the files.
type Files interface {
	// Read returns the content of the file p, which may hold at most
	// storage.MaxRecordSize bytes, and its modification time by the
	// server's clock: the zero time when the server's answer had none
	// (see ModTimer).
	Read(ctx context.Context, p string) (data []byte, mtime time.Time, err error)

	// Write creates the file p, a new temp name, holding data, and the
	// directory it is in if that is missing. Its modification time is the
	// server's clock: stale locks are told by it.
	Write(ctx context.Context, p string, data []byte) error

	// Move renames from to to, but never onto a file: of two moves onto one
	// name, one fails. It fails with an error wrapping fs.ErrExist when to
	// exists, and with one wrapping fs.ErrNotExist when from does not; where
	// a move can be sent again after its answer was lost, either may mean
	// that the move was done, and the caller looks at the two names.
	Move(ctx context.Context, from, to string) error

	// Replace renames from onto to, replacing the file there in one step: a
	// reader finds the old file or the new one, never neither. It fails as
	// Move does when from is missing, and with errors.ErrUnsupported where
	// the server cannot replace in one step: the old file is then moved
	// aside first.
	Replace(ctx context.Context, from, to string) error

	// Remove removes the file p; a missing p is not an error. Under
	// Server.Retry it sends its request once.
	Remove(ctx context.Context, p string) error
}

// ModTimer is implemented by Files whose Read may return no modification
// time (a WebDAV GET without Last-Modified): ModTime asks for it on its own.
type ModTimer interface {
	ModTime(ctx context.Context, p string) (time.Time, error)
}

const (
	// lockSuffix ends the name of a record's lock: ".<name>.lock".
	lockSuffix = ".lock"

	// asideSuffix ends the name the old record has while a replacement
	// without Files.Replace moves the new one into place: ".<name>.old".
	asideSuffix = ".old"

	// cleanupTimeout bounds the removal of a lock or a temp file once a
	// write is over, on a context of its own: the write's may be what
	// ended.
	cleanupTimeout = 30 * time.Second
)

// Records are the records of one directory on a server. They implement
// storage.Records for the backend that made them.
type Records struct {
	dir    string
	srv    Server
	errorf func(format string, args ...any) error
	log    *slog.Logger
}

var _ storage.Records = (*Records)(nil)

// New returns the records of the directory dir on srv. errorf makes the
// errors of ReadRecord and WriteRecord, prefixed with the destination as
// the backend's others are; log tells of stale locks broken and of files
// that could not be removed.
func New(dir string, srv Server, errorf func(format string, args ...any) error, log *slog.Logger) *Records {
	return &Records{dir: dir, srv: srv, errorf: errorf, log: log}
}

// ReadRecord returns the record's content and version (the hex SHA-256 of
// the content). A missing record is an error wrapping storage.ErrNotFound.
func (r *Records) ReadRecord(ctx context.Context, name string) ([]byte, string, error) {
	if err := check(ctx, name, nil); err != nil {
		return nil, "", r.errorf("read record %s: %w", name, err)
	}
	var data []byte
	err := r.srv.Do(ctx, func(ctx context.Context, f Files) error {
		var where place
		var err error
		data, where, err = r.current(ctx, f, name)
		if err == nil && where == missing {
			err = fmt.Errorf("%w: %s does not exist", storage.ErrNotFound, r.path(name))
		}
		return err
	})
	if err != nil {
		return nil, "", r.errorf("read record %s: %w", name, err)
	}
	return data, recordVersion(data), nil
}

// WriteRecord stores data as the record if it is still at version (absent
// when version is empty), under the record's lock, and returns the new
// version. A record at another version, or a lock held by another writer,
// is an error wrapping storage.ErrConflict; nothing is written then.
func (r *Records) WriteRecord(ctx context.Context, name string, data []byte, version string) (string, error) {
	if err := check(ctx, name, data); err != nil {
		return "", r.errorf("write record %s: %w", name, err)
	}
	l, err := r.lock(ctx, name)
	if err != nil {
		return "", r.errorf("write record %s: %w", name, err)
	}
	defer r.unlock(ctx, l)

	hctx, cancel := context.WithDeadline(ctx, l.taken.Add(lockHold))
	defer cancel()
	if err := r.writeLocked(hctx, l, name, data, version); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("gave up after holding the lock %s for %s, so that a slow write cannot race one that breaks it: %w", l.path, lockHold, err)
		}
		return "", r.errorf("write record %s: %w", name, err)
	}
	return recordVersion(data), nil
}

// check is where ReadRecord and WriteRecord start: storage.CheckRecord
// (which also refuses "ltx" and the names starting with "." that locks,
// temp files and copies aside have), and a context that has ended.
func check(ctx context.Context, name string, data []byte) error {
	if err := storage.CheckRecord(name, data); err != nil {
		return err
	}
	return ctx.Err()
}

// recordVersion is the version of a record's content.
func recordVersion(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// path returns the path of a record on the server.
func (r *Records) path(name string) string { return path.Join(r.dir, name) }

// hidden returns the path of one of a record's own files,
// ".<name><suffix>": never listed, as it starts with ".".
func (r *Records) hidden(name, suffix string) string {
	return path.Join(r.dir, "."+name+suffix)
}

// place is where a record's current content was found.
type place int

const (
	missing place = iota
	inPlace       // under the record's name
	aside         // moved aside by a replacement still in progress, or interrupted
)

// current reads the record's current content: the record file or, when
// there is none, the copy a replacement moved aside, which stays the
// current version until the new file has the record's name.
func (r *Records) current(ctx context.Context, f Files, name string) ([]byte, place, error) {
	// Twice: a replacement that finishes between the two reads removes
	// the copy aside after giving the record its name.
	for range 2 {
		data, _, err := f.Read(ctx, r.path(name))
		if !errors.Is(err, fs.ErrNotExist) {
			return data, inPlace, err
		}
		data, _, err = f.Read(ctx, r.hidden(name, asideSuffix))
		if !errors.Is(err, fs.ErrNotExist) {
			return data, aside, err
		}
	}
	return nil, missing, nil
}

// writeLocked checks the record's version and commits data, holding the
// lock l.
func (r *Records) writeLocked(ctx context.Context, l *lock, name string, data []byte, version string) error {
	p := r.path(name)
	committing := false
	var tmp string // the temp file of the last attempt, until it is moved
	err := r.srv.Do(ctx, func(ctx context.Context, f Files) error {
		if tmp != "" {
			r.removeLeftover(ctx, f, tmp) // left by an attempt that failed
			tmp = ""
		}
		cur, where, err := r.current(ctx, f, name)
		if err != nil {
			return err
		}
		switch {
		case committing && where == inPlace && recordVersion(cur) == recordVersion(data):
			// An attempt that failed committed before its answer was
			// lost: the lock kept anyone else out since. A copy it
			// moved aside is older.
			r.removeLeftover(ctx, f, r.hidden(name, asideSuffix))
			return nil
		case version == "" && where != missing:
			return fmt.Errorf("%w: %s exists", storage.ErrConflict, p)
		case version != "" && where == missing:
			return fmt.Errorf("%w: %s does not exist", storage.ErrConflict, p)
		case version != "" && recordVersion(cur) != version:
			return fmt.Errorf("%w: %s is no longer at version %s", storage.ErrConflict, p, version)
		}
		tmp = path.Join(r.dir, storage.TempName(name, time.Now()))
		if err := f.Write(ctx, tmp, data); err != nil {
			return err
		}
		// Last, just before the commit: a lock broken as stale is found
		// here, not after the record was changed.
		if err := checkLock(ctx, f, l); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		committing = true
		if err := r.commit(ctx, f, name, tmp, data, where); err != nil {
			return err
		}
		tmp = ""
		return nil
	})
	if err != nil && tmp != "" {
		r.discard(ctx, tmp)
	}
	return err
}

// commit moves tmp, which holds data, onto the record, whose current
// content was found at where. A record in place is replaced in one step
// where the server can; otherwise it is moved aside first, and removed once
// the new one has its name, so that the name never resolves to nothing.
func (r *Records) commit(ctx context.Context, f Files, name, tmp string, data []byte, where place) error {
	p := r.path(name)
	old := r.hidden(name, asideSuffix)
	if where == inPlace {
		if err := f.Replace(ctx, tmp, p); !errors.Is(err, errors.ErrUnsupported) {
			return landed(ctx, f, p, data, err)
		}
		if err := moveAside(ctx, f, p, old); err != nil {
			return err
		}
	}
	if err := landed(ctx, f, p, data, f.Move(ctx, tmp, p)); err != nil {
		return err
	}
	if where != missing {
		if err := f.Remove(ctx, old); err != nil {
			// Harmless: readers see the record, and the next
			// replacement removes this one first.
			r.log.Warn("could not remove the previous version of a record", "file", old, "error", err)
		}
	}
	return nil
}

// landed returns err, the failure of moving a temp file that holds data
// onto the record p, unless p holds data: a move refused because p exists
// may be this one, sent again after its answer was lost, and the lock kept
// others out.
func landed(ctx context.Context, f Files, p string, data []byte, err error) error {
	if err == nil || !refused(err) {
		return err
	}
	got, _, rerr := f.Read(ctx, p)
	switch {
	case rerr == nil && recordVersion(got) == recordVersion(data):
		return nil
	case rerr == nil:
		return fmt.Errorf("%w: %s exists", storage.ErrConflict, p)
	case errors.Is(rerr, fs.ErrNotExist):
		return err
	}
	return fmt.Errorf("%v; then, reading %s to see why: %w", err, p, rerr)
}

// moveAside moves the record p to old, removing first a copy an interrupted
// replacement left there (older than the record in place).
func moveAside(ctx context.Context, f Files, p, old string) error {
	if err := f.Remove(ctx, old); err != nil {
		return fmt.Errorf("remove the previous version %s: %w", old, err)
	}
	err := f.Move(ctx, p, old)
	if err == nil {
		return nil
	}
	if !refused(err) {
		return fmt.Errorf("move %s aside: %w", p, err)
	}
	// old was free under the lock, so a move whose answer was lost filled
	// it, if p is gone.
	if _, _, rerr := f.Read(ctx, p); rerr == nil {
		return fmt.Errorf("move %s aside to %s: it is still in place: %w", p, old, err)
	} else if !errors.Is(rerr, fs.ErrNotExist) {
		return fmt.Errorf("move %s aside to %s: %v; then, reading it to see why: %w", p, old, err, rerr)
	}
	return nil
}

// refused reports whether err is a Move that failed because of what is, or
// is not, at its two names: a move sent again after its answer was lost
// fails so too, though it was done.
func refused(err error) bool {
	return errors.Is(err, fs.ErrExist) || errors.Is(err, fs.ErrNotExist)
}

// removeLeftover removes p, a file of this writer's that is no longer
// needed: a temp file, or a stale lock moved aside.
func (r *Records) removeLeftover(ctx context.Context, f Files, p string) {
	if err := f.Remove(ctx, p); err != nil {
		r.leftover(p, err)
	}
}

// discard is removeLeftover once a step has failed, on a context of its
// own: ctx may be what failed.
func (r *Records) discard(ctx context.Context, p string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := r.srv.Do(ctx, func(ctx context.Context, f Files) error { return f.Remove(ctx, p) })
	if err != nil {
		r.leftover(p, err)
	}
}

// leftover logs a file that could not be removed. It is left, hidden (its
// name starts with ".") and harmless.
func (r *Records) leftover(p string, err error) {
	r.log.Warn("could not remove a file a record write left; it is hidden and harmless", "file", p, "error", err)
}
