// Package fsutil holds the file-system steps that make local writes
// durable.
package fsutil

import (
	"fmt"
	"os"
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
