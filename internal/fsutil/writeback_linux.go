//go:build linux && (amd64 || arm64 || riscv64 || loong64)

package fsutil

import (
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE: start writing the dirty pages
// of the range to the disk, without waiting for them.
const syncFileRangeWrite = 0x2

// StartWriteback starts writing n bytes of the file from off to the disk, so
// that a large file's writes go to the disk while the next bytes are made
// (decoded, encoded) instead of all at the final fsync. It is only a hint: errors are ignored
// (the fsync reports them).
func StartWriteback(raw syscall.RawConn, off, n int64) {
	if raw == nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
	})
}

// fallocPunchHole is FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE.
const fallocPunchHole = 0x02 | 0x01

// Discard frees n bytes of a temporary file from off, which was read and
// is not needed any more, so that its dirty pages are dropped instead of
// being written to the disk. It is only a hint: errors are ignored.
func Discard(f *os.File, off, n int64) {
	raw, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.Fallocate(int(fd), fallocPunchHole, off, n)
	})
}
