//go:build !linux

package litestream

// Holding finds nothing outside Linux.
func Holding(path string) []Process { return nil }
