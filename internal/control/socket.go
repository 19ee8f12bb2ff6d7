package control

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// maxSocketPath is the longest path a Unix socket can be bound to on Linux
// (sun_path holds 108 bytes, with the terminating NUL).
const maxSocketPath = 107

// probeTimeout bounds the connection that tells a live socket from a
// stale one.
const probeTimeout = 2 * time.Second

// ErrInUse is returned (wrapped) when another process listens on the
// socket's path.
var ErrInUse = errors.New("another process listens on the control socket")

// listen creates the socket at path with mode and listens on it. A socket
// file nobody listens on (left by a process that was killed) is replaced;
// one a process answers on is refused with ErrInUse; a file that is not a
// socket is never removed.
//
// The socket is bound in a private directory, given its mode, then linked
// into place: nobody can connect before the mode is set, whatever the
// umask, and the link fails rather than replace a socket another walship
// created meanwhile.
func listen(path string, mode fs.FileMode, log *slog.Logger) (*net.UnixListener, fs.FileInfo, error) {
	if len(path) > maxSocketPath {
		return nil, nil, fmt.Errorf("control socket %s: the path is %d bytes long, and a Unix socket's path holds at most %d: choose a shorter socket.path", path, len(path), maxSocketPath)
	}
	if err := clearStale(path, log); err != nil {
		return nil, nil, err
	}
	// A short name: the socket is bound at <dir>/.wsNNNN/s, which must fit
	// a Unix socket's path too. Binding at path itself instead would leave
	// the socket open to anyone the umask lets in until its mode is set.
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".ws")
	if err != nil {
		return nil, nil, fmt.Errorf("control socket %s: %w (does its directory exist, and may walship write there?)", path, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	if len(tmp) > maxSocketPath {
		return nil, nil, fmt.Errorf("control socket %s: walship creates it first at %s, in a private directory beside it, so that nobody can connect before its mode is set, and that path is %d bytes long where a Unix socket's holds at most %d: choose a socket.path in a directory whose path is at most %d bytes", path, tmp, len(tmp), maxSocketPath, maxSocketPath-(len(tmp)-len(filepath.Dir(path))))
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("control socket %s: %w (it was created while walship started): stop the other walship, or give this one another socket.path", path, ErrInUse)
		}
		return nil, nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// The listener must not unlink the path it was bound to when it
	// closes: Close removes the socket, and only if it is still this one.
	l.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, fs.FileInfo, error) {
		l.Close()
		return nil, nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			l.Close()
			return nil, nil, fmt.Errorf("control socket %s: %w (it was created while walship started): stop the other walship, or give this one another socket.path", path, ErrInUse)
		}
		// A file system without hard links: a rename moves it.
		if err := os.Rename(tmp, path); err != nil {
			return fail(err)
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return l, fi, nil
}

// clearStale removes a socket file at path that no process listens on, and
// refuses one that a process answers on, or a file that is not a socket.
func clearStale(path string, log *slog.Logger) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("control socket %s: %w", path, err)
	case fi.Mode()&fs.ModeSocket == 0:
		return fmt.Errorf("control socket %s: a file that is not a socket is there, and walship does not remove it: remove it, or choose another socket.path", path)
	}
	conn, err := net.DialTimeout("unix", path, probeTimeout)
	switch {
	case err == nil:
		conn.Close()
		return fmt.Errorf("control socket %s: %w (another walship replicate?): stop it, or give this one another socket.path", path, ErrInUse)
	case errors.Is(err, syscall.ECONNREFUSED):
		// Nobody listens: the socket of a process that was killed.
		// Two walships starting at once on one path may both find it
		// stale: the link in listen then lets only one of them in,
		// unless one removes the other's new socket in the microseconds
		// between this probe and the removal. Each database's own lock
		// still stops the second walship from replicating.
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("control socket %s: remove the stale socket a stopped process left: %w", path, err)
		}
		log.Info("removed a stale control socket, left by a walship that did not exit cleanly", "socket", path)
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return nil // removed meanwhile
	default:
		return fmt.Errorf("control socket %s: cannot tell whether a process listens on it (%v): if no walship runs, remove it", path, err)
	}
}

// removeIfOurs removes the socket at path if it is still the file fi.
func removeIfOurs(path string, fi fs.FileInfo) error {
	now, err := os.Lstat(path)
	if err != nil || !os.SameFile(now, fi) {
		return nil // removed, or replaced by another process's: not ours to remove
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the control socket %s: %w", path, err)
	}
	return nil
}
