//go:build !unix

package fsutil

import (
	"errors"
	"os"
)

// ErrLocked is returned (wrapped) by TryLock when another process holds the
// lock.
var ErrLocked = errors.New("locked by another process")

// Lock is a no-op on systems without flock: walship's single-writer
// guarantees there rest on the replica's owner record alone.
type Lock struct{ f *os.File }

// TryLock opens (creating) the file at path.
func TryLock(path string) (*Lock, []byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, err
	}
	return &Lock{f: f}, nil, nil
}

// WaitLock is TryLock.
func WaitLock(path string) (*Lock, error) {
	l, _, err := TryLock(path)
	return l, err
}

// TryLockFile is TryLock.
func TryLockFile(path string) (*Lock, []byte, error) { return TryLock(path) }

// Remove removes the lock file and closes it.
func (l *Lock) Remove() error {
	os.Remove(l.f.Name())
	return l.f.Close()
}

// Set replaces the lock file's content.
func (l *Lock) Set(content []byte) error {
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err := l.f.WriteAt(content, 0)
	return err
}

// Unlock closes the file.
func (l *Lock) Unlock() error { return l.f.Close() }
