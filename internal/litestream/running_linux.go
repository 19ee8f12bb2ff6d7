package litestream

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Holding returns the Litestream processes that have the file at path
// open. It looks only at processes whose command name starts with
// "litestream", so it reads the descriptors of few processes.
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
		if holds(pid, target) {
			found = append(found, Process{PID: pid, Name: name})
		}
	}
	return found
}

// holds reports whether process pid has the file target open.
func holds(pid int, target syscall.Stat_t) bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false // not ours to read, or gone
	}
	for _, fd := range fds {
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(dir, fd.Name()), &st) == nil && st.Dev == target.Dev && st.Ino == target.Ino {
			return true
		}
	}
	return false
}
