//go:build !(linux && (amd64 || arm64 || riscv64 || loong64))

package fsutil

import (
	"os"
	"syscall"
)

// StartWriteback does nothing here: the final fsync writes everything.
func StartWriteback(raw syscall.RawConn, off, n int64) {}

// Discard does nothing here: the temporary file is removed at the end.
func Discard(f *os.File, off, n int64) {}
