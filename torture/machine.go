package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// machine describes where a run took place, for the report.
type machine struct {
	cpu, memory, kernel string
	cores               int
	goVersion           string
	walship             string // what `walship version` says of itself
	commit              string // the source tree's commit, marked if it had changes
}

func describeMachine(walshipBin string) machine {
	m := machine{cores: runtime.NumCPU(), goVersion: runtime.Version(), cpu: procField("/proc/cpuinfo", "model name")}
	if kb, err := strconv.ParseInt(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 10, 64); err == nil {
		m.memory = fmt.Sprintf("%.0f GB", float64(kb)/1e6)
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		m.kernel = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command(walshipBin, "version").Output(); err == nil {
		m.walship = strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", "; ")
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.commit = strings.TrimSpace(string(out))
		if out, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!RELIABILITY.md").Output(); len(out) > 0 {
			m.commit += " (with uncommitted changes)"
		}
	}
	return m
}

// procField reads "key: value" from a /proc file.
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
