package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// rssParts is a running process's resident memory by what it holds, read
// from /proc/PID/smaps: what a figure above a memory target is made of.
type rssParts struct {
	exe     int64 // pages of the program's own executable
	shm     int64 // SQLite's WAL-index (-shm) files, mapped by each open connection
	files   int64 // other mapped files
	goHeap  int64 // Go's heap arenas: objects, free spans and goroutine stacks
	outside int64 // other anonymous memory: SQLite's allocator, Go's runtime metadata
}

// mmapBase is below where Linux places the mappings a process asks for
// without an address (mmap(NULL, ...): SQLite's allocator, Go's runtime
// metadata), near the top of the 47-bit address space; Go places its
// heap arenas (goroutine stacks included) at addresses of its own, far
// below (0xc000000000 before Go 1.26, random since, observed at
// 0x2000_0000_0000–0x3000_0000_0000). An anonymous mapping below this is
// taken for Go's heap.
const mmapBase = 0x7000_0000_0000

func readRSSParts(pid int) (rssParts, error) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return rssParts{}, err
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return rssParts{}, err
	}
	defer f.Close()
	return parseSmaps(f, strings.TrimSuffix(exe, " (deleted)"))
}

// parseSmaps sums the Rss of smaps' mappings by kind; exe is the
// executable's path as the kernel shows it.
func parseSmaps(r io.Reader, exe string) (rssParts, error) {
	var p rssParts
	var into *int64
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if rss, ok := strings.CutPrefix(line, "Rss:"); ok {
			if into != nil {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rss), "kB")), 10, 64)
				*into += kb * 1024
			}
			continue
		}
		// A mapping's header: "start-end perms offset dev inode [path]".
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok || len(f) < 5 {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		_, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		path := ""
		if len(f) >= 6 {
			path = strings.Join(f[5:], " ")
		}
		switch {
		case path == exe || path == exe+" (deleted)":
			into = &p.exe
		case strings.HasSuffix(path, "-shm"):
			into = &p.shm
		case strings.HasPrefix(path, "/"):
			into = &p.files
		case start < mmapBase:
			into = &p.goHeap
		default:
			into = &p.outside
		}
	}
	return p, sc.Err()
}

// String is the parts in the report's words.
func (p rssParts) String() string {
	return fmt.Sprintf("walship's executable %s, the databases' WAL-index (-shm) maps %s, other files %s, Go's heap and goroutine stacks %s, memory outside Go's heap (SQLite's allocator, Go's runtime metadata) %s",
		mb(p.exe), mb(p.shm), mb(p.files), mb(p.goHeap), mb(p.outside))
}
