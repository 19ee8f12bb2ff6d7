// Package fsutil holds the file-system steps that make local writes
// durable.
package fsutil

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
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

// writebackEvery is how many bytes a WritebackWriter lets pile up in the
// page cache before it starts writing them to the disk.
const writebackEvery = 8 << 20

// WritebackWriter writes to a file and starts writing each 8 MiB it was
// given to the disk as it goes, so that the fsync at the end of a large
// file (a first snapshot: the whole database) waits for the last few
// megabytes only, instead of the kernel writing the whole file then while
// nothing else is done. Small files are written as before.
type WritebackWriter struct {
	f       *os.File
	raw     syscall.RawConn // nil if the file has none: no hints
	off     int64           // bytes written
	started int64           // bytes whose writeback was started
}

// NewWritebackWriter returns a WritebackWriter that writes to f from its
// current offset, which must be 0.
func NewWritebackWriter(f *os.File) *WritebackWriter {
	raw, _ := f.SyscallConn()
	return &WritebackWriter{f: f, raw: raw}
}

// copyBufferSize is how much WritebackWriter.ReadFrom reads at a time.
const copyBufferSize = 256 << 10

// copyBuffers are ReadFrom's buffers: a sync writes a file of a few pages
// many times a second across a process's databases.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// ReadFrom writes what r yields until its end, reading up to 256 KiB at a
// time (io.Copy reads 32 KiB). A writer at the other end of an io.Pipe
// (the encoder of a staged file) hands a whole buffer over in one read
// and goes on making the next while this one writes it to the file;
// with 32 KiB reads it waited for eight writes to the file each time.
func (w *WritebackWriter) ReadFrom(r io.Reader) (int64, error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	// The wrapper hides ReadFrom, which CopyBuffer would call back.
	return io.CopyBuffer(struct{ io.Writer }{w}, r, *bp)
}

func (w *WritebackWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.started >= writebackEvery {
		StartWriteback(w.raw, w.started, w.off-w.started)
		w.started = w.off
	}
	return n, err
}
