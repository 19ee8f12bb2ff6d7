// Package machine describes the computer a suite runs on and the source
// it was built from, for the reports of the bench and torture suites
// (BENCHMARKS.md, RELIABILITY.md), so that both describe it the same way.
// Nothing it reads is essential: a fact it cannot read is "?" or empty,
// never an error, because a report is still worth writing without it.
package machine

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// Facts are what a report says of the machine and the source.
type Facts struct {
	CPU    string // the model name in /proc/cpuinfo
	Cores  int
	Memory string // the total, e.g. "8 GB"
	Kernel string // uname -sr
	Go     string // the Go release the suite was built with
	// Walship is what `walship version` says of itself, its lines joined
	// by "; ".
	Walship string
	// Commit is the source tree's short commit, marked "(with uncommitted
	// changes)" if tracked files other than the report differ from it.
	Commit string
}

// Describe reads the facts. walship is the binary under test; report is
// the file the suite writes, relative to the source tree (the working
// directory), so that rewriting it does not mark the commit as changed.
func Describe(walship, report string) Facts {
	f := Facts{Cores: runtime.NumCPU(), Go: runtime.Version(), CPU: procField("/proc/cpuinfo", "model name")}
	if kb, err := strconv.ParseInt(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 10, 64); err == nil {
		f.Memory = fmt.Sprintf("%.0f GB", float64(kb)/1e6)
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		f.Kernel = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command(walship, "version").Output(); err == nil {
		f.Walship = strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", "; ")
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		f.Commit = strings.TrimSpace(string(out))
		if out, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!"+report).Output(); len(out) > 0 {
			f.Commit += " (with uncommitted changes)"
		}
	}
	return f
}

// Hardware is the report's line on the processor, memory and kernel,
// without the list item's dash.
func (f Facts) Hardware() string {
	return fmt.Sprintf("CPU: %s, %d cores; memory %s; %s", f.CPU, f.Cores, f.Memory, f.Kernel)
}

// procField reads "key: value" from a /proc file; "?" if it is not there.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
