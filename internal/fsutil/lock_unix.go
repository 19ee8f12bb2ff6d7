//go:build unix

package fsutil

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrLocked is returned (wrapped) by TryLock when another open file
// description holds the lock.
var ErrLocked = errors.New("locked by another process")

// Lock is an advisory lock on a file (flock): the kernel releases it when
// its holder closes the file or dies, SIGKILL included, so a crashed holder
// never blocks its successor.
type Lock struct{ f *os.File }

// TryLock opens (creating) the file at path and takes its exclusive lock
// without waiting. When another process holds it the error wraps ErrLocked
// and the file's content (what the holder wrote with Set) is returned as
// holder.
func TryLock(path string) (l *Lock, holder []byte, err error) {
	return lock(path, syscall.LOCK_EX|syscall.LOCK_NB)
}

// WaitLock is TryLock that waits for the lock.
func WaitLock(path string) (*Lock, error) {
	l, _, err := lock(path, syscall.LOCK_EX)
	return l, err
}

func lock(path string, how int) (*Lock, []byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		var holder []byte
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder, _ = os.ReadFile(path)
			err = ErrLocked
		}
		f.Close()
		return nil, holder, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil, nil
}

// TryLockFile is TryLock for a lock file that its holder removes when it is
// done (Remove), so that no lock file outlives its use: it makes sure the
// lock it took is on the file the path names now, not on one a previous
// holder removed meanwhile.
func TryLockFile(path string) (*Lock, []byte, error) {
	for {
		l, holder, err := TryLock(path)
		if err != nil {
			return nil, holder, err
		}
		held, err1 := l.f.Stat()
		named, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, named) {
			return l, nil, nil
		}
		l.f.Close()
		if err1 != nil {
			return nil, nil, fmt.Errorf("lock %s: %w", path, err1)
		}
		if err2 != nil && !errors.Is(err2, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("lock %s: %w", path, err2)
		}
	}
}

// Remove removes the lock file and releases the lock: the next TryLockFile
// creates the file again.
func (l *Lock) Remove() error {
	err := os.Remove(l.f.Name())
	return errors.Join(err, l.f.Close())
}

// Set replaces the lock file's content: who holds it, for the message of
// the next process that tries.
func (l *Lock) Set(content []byte) error {
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err := l.f.WriteAt(content, 0)
	return err
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	return l.f.Close()
}
