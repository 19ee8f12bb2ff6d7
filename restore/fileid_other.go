//go:build !unix

package restore

import "os"

// fileID returns "": this system gives no inode to tell a renamed file by.
func fileID(os.FileInfo) string { return "" }
