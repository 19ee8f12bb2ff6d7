package sftp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/walship/walship/storage"
)

// Records. SFTP (version 3, as OpenSSH speaks it) has no conditional write,
// but it has one exclusive step: a plain rename (SSH_FXP_RENAME), which
// OpenSSH's sftp-server carries out as link(2) then unlink(2), so it fails
// when the target exists and two renames onto one name cannot both succeed.
// Records are built on it:
//
//   - A record is the file <path>/<name>, beside ltx/; its version is the
//     SHA-256 of its content, so reading it back gives the version again.
//   - Every write of a record holds its lock, ".<name>.lock": a file holding
//     a random token, uploaded to a temp name and renamed onto the lock name
//     with a plain rename. Whoever's rename succeeds holds the lock; the
//     others get storage.ErrConflict at once rather than waiting, since the
//     holder is about to change the record and the caller must re-read it.
//   - Under the lock the writer reads the record, compares its version, and
//     commits: a new record with a plain rename (which cannot replace one),
//     a replacement with posix-rename@openssh.com, or, on a server without
//     it, by renaming the old record aside to ".<name>.old" first. Readers
//     who find no record while a replacement is between those renames (or
//     was interrupted there) read the file aside, which is still the
//     current version.
//   - The lock is removed afterwards; one left by a process that died is
//     broken once it is staleLockAge old (see there).
//
// Creates take the lock too, though their plain rename is exclusive on its
// own: without posix-rename a replacement leaves the record's name free
// between its renames, and a create must not take it then.
//
// SFTP version 3 has no "file exists" status: a refused rename is
// SSH_FX_FAILURE, so the client looks at what is there. On a file system
// without hard links, OpenSSH falls back to checking and renaming, which is
// not atomic; such a destination cannot hold records safely.

const (
	// lockSuffix ends the name of a record's lock: ".<name>.lock".
	lockSuffix = ".lock"

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
	var data []byte
	err := c.do(ctx, nil, func(ctx context.Context, cn *conn) error {
		var found bool
		var err error
		data, found, err = c.readRecord(cn.sftp, name)
		if err == nil && !found {
			err = fmt.Errorf("%w: %s does not exist", storage.ErrNotFound, c.recordPath(name))
		}
		return err
	})
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
// backend keeps for itself: "ltx", the directory of the levels, and names
// starting with ".", which a record's lock and temp files have.
func checkRecord(name string, data []byte) error {
	if err := storage.CheckRecord(name, data); err != nil {
		return err
	}
	if name == "ltx" || strings.HasPrefix(name, ".") {
		return fmt.Errorf("invalid record name %q: the SFTP backend keeps ltx and names starting with \".\" for its own files", name)
	}
	return nil
}

// recordVersion is the version of a record's content.
func recordVersion(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// recordPath returns the path of a record on the server.
func (c *Client) recordPath(name string) string { return path.Join(c.cfg.path, name) }

// readRecord reads the record's current content: the record file or, when
// there is none, the copy a replacement without posix-rename renamed
// aside, which stays the current version until the new file has the
// record's name. found is false when there is neither.
func (c *Client) readRecord(s *sftp.Client, name string) (data []byte, found bool, err error) {
	p := c.recordPath(name)
	aside := path.Join(c.cfg.path, asideName(name))
	// Twice: a replacement that finishes between the two reads removes
	// the copy aside after giving the record its name.
	for range 2 {
		data, _, err := readSmall(s, p)
		if !errors.Is(err, fs.ErrNotExist) {
			return data, err == nil, err
		}
		data, _, err = readSmall(s, aside)
		if !errors.Is(err, fs.ErrNotExist) {
			return data, err == nil, err
		}
	}
	return nil, false, nil
}

// writeLocked checks the record's version and commits data, holding the
// lock l.
func (c *Client) writeLocked(ctx context.Context, l *recordLock, name string, data []byte, version string) error {
	p := c.recordPath(name)
	want := recordVersion(data)
	committing := false
	var tmp string
	return c.do(ctx, nil, func(ctx context.Context, cn *conn) error {
		s := cn.sftp
		removeTemp(s, tmp) // left by an attempt whose connection broke
		cur, found, err := c.readRecord(s, name)
		if err != nil {
			return err
		}
		switch {
		case committing && found && recordVersion(cur) == want:
			// An attempt whose connection broke committed before the
			// answer was lost: the lock kept anyone else out since.
			return nil
		case version == "" && found:
			return fmt.Errorf("%w: %s exists", storage.ErrConflict, p)
		case version != "" && !found:
			return fmt.Errorf("%w: %s does not exist", storage.ErrConflict, p)
		case version != "" && recordVersion(cur) != version:
			return fmt.Errorf("%w: %s is no longer at version %s", storage.ErrConflict, p, version)
		}
		if err := c.checkLock(s, l); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		committing = true
		tmp = path.Join(c.cfg.path, storage.TempName(name, time.Now()))
		return c.commitRecord(cn, name, tmp, data, found)
	})
}

// commitRecord uploads data to tmp and renames it onto the record: with a
// plain rename when there is no record (which fails rather than replace
// one), otherwise replacing it atomically.
func (c *Client) commitRecord(cn *conn, name, tmp string, data []byte, replace bool) error {
	s := cn.sftp
	final := c.recordPath(name)
	if _, err := writeSmall(cn, tmp, data); err != nil {
		return err
	}
	switch {
	case !replace:
		if err := s.Rename(tmp, final); err != nil {
			removeTemp(s, tmp)
			if _, serr := s.Lstat(final); serr == nil {
				return fmt.Errorf("%w: %s exists", storage.ErrConflict, final)
			}
			return fmt.Errorf("rename %s to %s: %w", tmp, final, err)
		}
	case cn.posixRename && !c.noPosixRename:
		if err := s.PosixRename(tmp, final); err != nil {
			removeTemp(s, tmp)
			return fmt.Errorf("rename %s to %s: %w", tmp, final, err)
		}
	default:
		if err := c.replace(s, c.cfg.path, name, tmp); err != nil {
			removeTemp(s, tmp)
			return err
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
	l := &recordLock{path: path.Join(c.cfg.path, "."+name+lockSuffix), token: hex.EncodeToString(b[:])}
	var renameErr error // of the last try, for the message
	for range lockAttempts {
		var (
			held  bool
			other *lockFile
			tmp   string
		)
		sent := false
		err := c.do(ctx, nil, func(ctx context.Context, cn *conn) error {
			s := cn.sftp
			other = nil
			removeTemp(s, tmp) // left by an attempt whose connection broke
			if sent {
				// The rename of an attempt whose connection broke may
				// have taken the lock before its answer was lost.
				if f, err := readLock(s, l.path); err == nil && f.token == l.token {
					held = true
					return nil
				}
			}
			l.taken = time.Now()
			tmp = path.Join(c.cfg.path, storage.TempName(path.Base(l.path), l.taken))
			fi, err := writeSmall(cn, tmp, []byte(l.token))
			if err != nil {
				return err
			}
			sent = true
			if renameErr = s.Rename(tmp, l.path); renameErr == nil {
				held = true
				return nil
			}
			removeTemp(s, tmp)
			other, err = readLock(s, l.path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil // released meanwhile: try again
			} else if err != nil {
				return fmt.Errorf("take the lock %s: %w", l.path, err)
			}
			if other.token == l.token {
				held = true // an attempt whose answer was lost took it
				return nil
			}
			// Both times are the server's: no clock skew between hosts.
			other.age = fi.ModTime().Sub(other.mtime)
			if other.age < staleLockAge {
				return nil
			}
			return c.breakLock(cn, l.path, other)
		})
		switch {
		case err != nil:
			return nil, err
		case held:
			return l, nil
		case other != nil && other.age < staleLockAge:
			return nil, fmt.Errorf("%w: another writer holds the lock %s (%s old by the server's clock; stale at %s)", storage.ErrConflict, l.path, other.age.Truncate(time.Second), staleLockAge)
		}
	}
	return nil, fmt.Errorf("%w: the lock %s was taken by others each of %d tries (the last rename onto it: %v)", storage.ErrConflict, l.path, lockAttempts, renameErr)
}

// lockFile is a lock as found on the server.
type lockFile struct {
	token string
	mtime time.Time
	age   time.Duration
}

// readLock reads the lock file p.
func readLock(s *sftp.Client, p string) (*lockFile, error) {
	data, fi, err := readSmall(s, p)
	if err != nil {
		return nil, err
	}
	return &lockFile{token: string(data), mtime: fi.ModTime()}, nil
}

// breakLock removes the stale lock other found at p. It renames it aside
// first and checks that what it moved is that lock: another writer may have
// broken it and taken the lock meanwhile, and that live lock is put back.
func (c *Client) breakLock(cn *conn, p string, other *lockFile) error {
	s := cn.sftp
	aside := path.Join(path.Dir(p), storage.TempName(path.Base(p), time.Now()))
	if err := s.Rename(p, aside); errors.Is(err, fs.ErrNotExist) {
		return nil // broken or released by someone else
	} else if err != nil {
		return fmt.Errorf("break the stale lock %s: rename it to %s: %w", p, aside, err)
	}
	if moved, err := readLock(s, aside); err == nil && moved.token == other.token {
		removeTemp(s, aside)
		c.log.Warn("broke a stale lock left by a writer that stopped while writing a record", "replica", c.desc, "lock", p, "age", other.age.Truncate(time.Second))
		return nil
	}
	if err := s.Rename(aside, p); err != nil {
		// A third writer took the lock in the meantime. The writer whose
		// lock was moved finds it gone when it checks before committing.
		removeTemp(s, aside)
	}
	return fmt.Errorf("%w: another writer took the lock %s while its stale predecessor was broken", storage.ErrConflict, p)
}

// checkLock fails, with storage.ErrConflict, when the lock file no longer
// holds l's token: another writer took it as stale.
func (c *Client) checkLock(s *sftp.Client, l *recordLock) error {
	f, err := readLock(s, l.path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && f.token != l.token {
		return fmt.Errorf("%w: the lock %s was broken by another writer as stale", storage.ErrConflict, l.path)
	}
	return err
}

// unlockRecord removes the lock l, if it still holds l's token. A failure
// is logged: the lock is broken as stale in staleLockAge.
func (c *Client) unlockRecord(ctx context.Context, l *recordLock) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
	defer cancel()
	err := c.do(ctx, nil, func(ctx context.Context, cn *conn) error {
		f, err := readLock(cn.sftp, l.path)
		if errors.Is(err, fs.ErrNotExist) || err == nil && f.token != l.token {
			return nil // broken as stale: not ours to remove any more
		} else if err != nil {
			return err
		}
		if err := cn.sftp.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", l.path, err)
		}
		return nil
	})
	if err != nil {
		c.log.Warn("could not remove the lock of a record; other writers break it once it is stale", "replica", c.desc, "lock", l.path, "stale-after", staleLockAge, "error", err)
	}
}

// readSmall reads the file p, which may hold at most
// storage.MaxRecordSize bytes, and returns its attributes.
func readSmall(s *sftp.Client, p string) ([]byte, os.FileInfo, error) {
	f, err := s.Open(p)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("stat %s: %w", p, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, storage.MaxRecordSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", p, err)
	}
	if len(data) > storage.MaxRecordSize {
		return nil, nil, fmt.Errorf("%s holds more than the %d bytes a record may: it was not written by walship", p, storage.MaxRecordSize)
	}
	return data, fi, nil
}

// writeSmall creates the file p (a unique temp name) holding data, flushed
// to disk where the server can, and returns its attributes: its
// modification time is the server's clock.
func writeSmall(cn *conn, p string, data []byte) (os.FileInfo, error) {
	s := cn.sftp
	f, err := s.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if errors.Is(err, fs.ErrNotExist) {
		// The replica's first file: its directory does not exist yet.
		if err := s.MkdirAll(path.Dir(p)); err != nil {
			return nil, fmt.Errorf("create directory %s: %w", path.Dir(p), err)
		}
		f, err = s.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	}
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", p, err)
	}
	fi, err := writeAndClose(cn, f, p, data)
	if err != nil {
		removeTemp(s, p)
		return nil, err
	}
	return fi, nil
}

func writeAndClose(cn *conn, f *sftp.File, p string, data []byte) (os.FileInfo, error) {
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return nil, fmt.Errorf("write %s: %w", p, err)
	}
	if cn.fsync {
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("fsync %s: %w", p, err)
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close %s: %w", p, err)
	}
	return fi, nil
}

// removeTemp removes a temp file of this package, if any; one that cannot
// be removed is left, hidden and harmless.
func removeTemp(s *sftp.Client, p string) {
	if p != "" {
		_ = s.Remove(p)
	}
}
