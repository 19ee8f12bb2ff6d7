package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// mountSet is every tmpfs the suite mounted, so that none outlives it.
type mountSet struct {
	mu   sync.Mutex
	dirs map[string]struct{}
}

// mount mounts a tmpfs of size (e.g. "16m") at dir, which must exist. It
// needs root.
func (ms *mountSet) mount(dir, size string) error {
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		return fmt.Errorf("mount a %s tmpfs at %s (the diskfull kind needs root): %w", size, dir, err)
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.dirs == nil {
		ms.dirs = make(map[string]struct{})
	}
	ms.dirs[dir] = struct{}{}
	return nil
}

// unmount unmounts the tmpfs at dir; if a process still holds it, it is
// detached and goes once that process exits.
func (ms *mountSet) unmount(dir string) error {
	ms.mu.Lock()
	delete(ms.dirs, dir)
	ms.mu.Unlock()
	err := syscall.Unmount(dir, 0)
	if errors.Is(err, syscall.EBUSY) {
		err = syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("unmount the tmpfs at %s: %w", dir, err)
	}
	return nil
}

func (ms *mountSet) unmountAll() {
	ms.mu.Lock()
	dirs := make([]string, 0, len(ms.dirs))
	for d := range ms.dirs {
		dirs = append(dirs, d)
	}
	ms.mu.Unlock()
	for _, d := range dirs {
		ms.unmount(d)
	}
}

// checkRoot fails unless the suite can mount a tmpfs.
func (s *suite) checkRoot() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the diskfull kind mounts a small tmpfs and needs root (uid %d); run make torture as root, as CI does, or leave it out with -only", os.Geteuid())
	}
	dir, err := os.MkdirTemp(s.work, "tmpfs-check-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := s.mounts.mount(dir, "64k"); err != nil {
		return err
	}
	return s.mounts.unmount(dir)
}

// fill writes a file into dir until its disk is full, then gives back
// leave bytes (rounded by the file system), and returns the file's path:
// removing it frees the space.
func fill(dir string, leave int64) (string, error) {
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Write(buf)
		if err == nil {
			continue
		}
		if !errors.Is(err, syscall.ENOSPC) {
			return "", fmt.Errorf("fill %s: %w", dir, err)
		}
		if n == 0 && len(buf) > 512 {
			buf = buf[:512] // the last few blocks
			continue
		}
		if n == 0 {
			break
		}
	}
	if leave > 0 {
		fi, err := f.Stat()
		if err != nil {
			return "", err
		}
		if err := f.Truncate(max(0, fi.Size()-leave)); err != nil {
			return "", err
		}
	}
	return path, nil
}
