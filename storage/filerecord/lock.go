package filerecord

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/walship/walship/storage"
)

const (
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
)

// lock is a record's lock, held by this writer.
type lock struct {
	path    string
	token   string    // what the lock file holds: ours, unique
	taken   time.Time // when the attempt that took it began
	refusal error     // the last move onto it that failed, for the message
}

// lockFile is a lock as found on the server.
type lockFile struct {
	token string
	mtime time.Time
	age   time.Duration
}

// lock takes the lock of a record. A lock another writer holds is an error
// wrapping storage.ErrConflict; a stale one is broken and taken.
func (r *Records) lock(ctx context.Context, name string) (*lock, error) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails
	l := &lock{path: r.hidden(name, lockSuffix), token: hex.EncodeToString(b[:])}
	for range lockAttempts {
		held, other, err := r.tryLock(ctx, l)
		switch {
		case err != nil:
			return nil, err
		case held:
			return l, nil
		case other != nil:
			return nil, fmt.Errorf("%w: another writer holds the lock %s (%s old by the server's clock; stale at %s)", storage.ErrConflict, l.path, other.age.Truncate(time.Second), staleLockAge)
		}
	}
	return nil, fmt.Errorf("%w: the lock %s was taken by others each of %d tries (the last move onto it: %v)", storage.ErrConflict, l.path, lockAttempts, l.refusal)
}

// tryLock tries once to take the lock l, and breaks it if it is stale. When
// another writer holds it, other is that lock; neither held nor other means
// the lock vanished or was broken meanwhile, and is worth another try.
func (r *Records) tryLock(ctx context.Context, l *lock) (held bool, other *lockFile, err error) {
	var tmp string // the token's temp file, until it is moved or removed
	err = r.srv.Do(ctx, func(ctx context.Context, f Files) error {
		held, other = false, nil
		if tmp != "" {
			// An attempt that failed wrote its token: its move may have
			// taken the lock before the answer was lost.
			r.removeLeftover(ctx, f, tmp)
			tmp = ""
			if ok, err := holds(ctx, f, l); err == nil && ok {
				held = true
				return nil
			}
		}
		l.taken = time.Now()
		tmp = path.Join(path.Dir(l.path), storage.TempName(path.Base(l.path), l.taken))
		if err := f.Write(ctx, tmp, []byte(l.token)); err != nil {
			return fmt.Errorf("take the lock %s: %w", l.path, err)
		}
		err := f.Move(ctx, tmp, l.path)
		if err == nil {
			tmp, held = "", true
			return nil
		}
		if !refused(err) {
			return fmt.Errorf("take the lock %s: %w", l.path, err)
		}
		l.refusal = err
		held, other, err = r.holder(ctx, f, l, tmp)
		// tmp is gone if this move, sent again, moved it; it is left over
		// otherwise, even when the lock holds l's token: an earlier
		// attempt moved its own there.
		if f.Remove(ctx, tmp) == nil {
			tmp = ""
		}
		return err
	})
	if tmp != "" {
		r.discard(ctx, tmp)
	}
	return held, other, err
}

// holder looks at the lock l after the move onto it of tmp, which holds
// l's token, was refused, and breaks it if it is stale. The results are
// tryLock's.
func (r *Records) holder(ctx context.Context, f Files, l *lock, tmp string) (held bool, other *lockFile, err error) {
	other, err = readLock(ctx, f, l.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil, nil // released meanwhile: try again
	case err != nil:
		return false, nil, fmt.Errorf("take the lock %s: %w", l.path, err)
	case other.token == l.token:
		return true, nil, nil // moved by a move whose answer was lost
	}
	// The age is by the server's clock, which stamped both files: no skew
	// between hosts.
	now, err := readLock(ctx, f, tmp)
	if err != nil {
		return false, nil, fmt.Errorf("take the lock %s: read back %s: %w", l.path, tmp, err)
	}
	other.age = now.mtime.Sub(other.mtime)
	if other.age < staleLockAge {
		return false, other, nil
	}
	return false, nil, r.breakLock(ctx, f, l.path, other)
}

// readLock reads the lock file p: its token and its modification time,
// from Read or else ModTime asked after it. In that order, a lock replaced
// between the two requests can only look younger than the token read,
// never older: a live lock is never taken for a stale one.
func readLock(ctx context.Context, f Files, p string) (*lockFile, error) {
	data, mtime, err := f.Read(ctx, p)
	if err != nil {
		return nil, err
	}
	if mt, ok := f.(ModTimer); ok && mtime.IsZero() {
		if mtime, err = mt.ModTime(ctx, p); err != nil {
			return nil, err
		}
	}
	if mtime.IsZero() {
		return nil, fmt.Errorf("the server reported no modification time for %s, so a stale lock cannot be told from a live one", p)
	}
	return &lockFile{token: string(data), mtime: mtime}, nil
}

// breakLock removes the stale lock other found at p. It moves it aside
// first and checks that what it moved is that lock: another writer may have
// broken it and taken the lock meanwhile, and that live lock is put back.
func (r *Records) breakLock(ctx context.Context, f Files, p string, other *lockFile) error {
	// A unique name: whatever is there after the move, even one refused
	// after its answer was lost, was moved by this writer.
	moved := path.Join(path.Dir(p), storage.TempName(path.Base(p), time.Now()))
	if err := f.Move(ctx, p, moved); err != nil && !refused(err) {
		return fmt.Errorf("break the stale lock %s: %w", p, err)
	}
	got, _, err := f.Read(ctx, moved)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // broken or released by someone else
	case err == nil && string(got) == other.token:
		r.removeLeftover(ctx, f, moved)
		r.log.Warn("broke a stale lock left by a writer that stopped while writing a record", "lock", p, "age", other.age.Truncate(time.Second))
		return nil
	}
	if err := f.Move(ctx, moved, p); err != nil {
		// A third writer took the lock in the meantime. The writer whose
		// lock was moved finds it gone when it checks before committing.
		r.removeLeftover(ctx, f, moved)
	}
	return fmt.Errorf("%w: another writer took the lock %s while its stale predecessor was broken", storage.ErrConflict, p)
}

// holds reports whether the lock file holds l's token: false when another
// writer broke it as stale, and took it or not.
func holds(ctx context.Context, f Files, l *lock) (bool, error) {
	got, _, err := f.Read(ctx, l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil && string(got) == l.token, err
}

// checkLock fails, with storage.ErrConflict, when the lock file no longer
// holds l's token.
func checkLock(ctx context.Context, f Files, l *lock) error {
	ok, err := holds(ctx, f, l)
	if err == nil && !ok {
		return fmt.Errorf("%w: the lock %s was broken by another writer as stale", storage.ErrConflict, l.path)
	}
	return err
}

// unlock removes the lock l if it still holds l's token. Each try reads
// the token again before its removal, which is sent once (Server.Retry). A
// failure is logged: the lock is broken as stale in staleLockAge.
func (r *Records) unlock(ctx context.Context, l *lock) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := r.srv.Retry(ctx, func(ctx context.Context, f Files) error {
		if ok, err := holds(ctx, f, l); !ok {
			return err // nil when broken as stale: not ours to remove any more
		}
		return f.Remove(ctx, l.path)
	})
	if err != nil {
		r.log.Warn("could not remove the lock of a record; other writers break it once it is stale", "lock", l.path, "stale-after", staleLockAge, "error", err)
	}
}
