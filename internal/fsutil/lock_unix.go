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
