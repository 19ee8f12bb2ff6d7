//go:build unix

package owner

import (
	"errors"
	"syscall"
)

// processExists reports whether a process with that pid exists on this
// host (a pid reused since only makes the claimant wait, never write
// early).
func processExists(pid int) bool {
	if pid <= 0 {
		return true // unknown: it may run
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
