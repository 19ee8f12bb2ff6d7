// Package fsutil holds the file-system steps that make local writes
// durable.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// SyncDir fsyncs a directory, so that entries created, renamed or removed
// in it are durable.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be fsynced on Windows
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return d.Close()
}

// WriteFile writes data to path durably and atomically: to path+".tmp",
// fsynced, renamed over path, and the directory fsynced, so that path
// holds the old content or all of the new, whatever happens meanwhile.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}
