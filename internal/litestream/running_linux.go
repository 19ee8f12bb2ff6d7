package litestream

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Holding returns the Litestream processes that have the file at path
// open, and those whose descriptors this process may not read (another
// user's, run by systemd as root, say), marked Unreadable. It looks only
// at processes whose command name starts with "litestream", so it reads
// the descriptors of few processes.
func Holding(path string) []Process {
	var target syscall.Stat_t
	if err := syscall.Stat(path, &target); err != nil {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var found []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		name := strings.TrimSpace(string(comm))
		if err != nil || !strings.HasPrefix(name, "litestream") {
			continue
		}
		if held, readable := holds(pid, target); held || !readable {
			found = append(found, Process{PID: pid, Name: name, Unreadable: !readable})
		}
	}
	return found
}

// holds reports whether process pid has the file target open, and whether
// its descriptors could be read at all (a process that is gone reads as
// holding nothing).
func holds(pid int, target syscall.Stat_t) (held, readable bool) {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, true
	} else if err != nil {
		return false, false
	}
	for _, fd := range fds {
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(dir, fd.Name()), &st) == nil && st.Dev == target.Dev && st.Ino == target.Ino {
			return true, true
		}
	}
	return false, true
}
