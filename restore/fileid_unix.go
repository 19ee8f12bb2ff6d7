//go:build unix

package restore

import (
	"fmt"
	"os"
	"syscall"
)

// fileID identifies a file by device and inode, which a rename keeps.
func fileID(fi os.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return ""
}
