package machine

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// procField finds a key however /proc pads it, and says "?" for a key or
// file that is not there.
func TestProcField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpuinfo")
	if err := os.WriteFile(path, []byte("processor\t: 0\nmodel name\t: Test CPU @ 2.00GHz\nMemTotal:        8000000 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"model name": "Test CPU @ 2.00GHz",
		"MemTotal":   "8000000 kB",
		"processor":  "0",
		"flags":      "?",
	} {
		if got := procField(path, key); got != want {
			t.Errorf("procField(%q) = %q, want %q", key, got, want)
		}
	}
	if got := procField(filepath.Join(t.TempDir(), "missing"), "model name"); got != "?" {
		t.Errorf("procField of a missing file = %q, want ?", got)
	}
}

// The hardware line is the one both reports print.
func TestHardware(t *testing.T) {
	f := Facts{CPU: "Test CPU", Cores: 2, Memory: "8 GB", Kernel: "Linux 6.1"}
	if got, want := f.Hardware(), "CPU: Test CPU, 2 cores; memory 8 GB; Linux 6.1"; got != want {
		t.Errorf("Hardware() = %q, want %q", got, want)
	}
}

// Describe reads walship's own version and the source's commit, and marks
// the commit changed by any tracked file but the report.
func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	walship := filepath.Join(dir, "walship")
	if err := os.WriteFile(walship, []byte("#!/bin/sh\n[ \"$1\" = version ] || exit 2\necho 'walship v1.2.3'\necho 'built with go1.26'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Dir = src
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	git("init", "-q")
	write("REPORT.md", "old\n")
	write("code.go", "package x\n")
	git("add", ".")
	git("commit", "-q", "-m", "first")
	commit := git("rev-parse", "--short", "HEAD")
	t.Chdir(src)

	f := Describe(walship, "REPORT.md")
	if f.Walship != "walship v1.2.3; built with go1.26" {
		t.Errorf("Walship = %q, want the version's lines joined by \"; \"", f.Walship)
	}
	if f.Commit != commit {
		t.Errorf("Commit of a clean tree = %q, want %q", f.Commit, commit)
	}
	if f.Cores != runtime.NumCPU() || f.Go != runtime.Version() || f.CPU == "" || f.Memory == "" {
		t.Errorf("Describe = %+v: cores, Go, CPU or memory not read", f)
	}

	write("REPORT.md", "rewritten by the run\n")
	if f := Describe(walship, "REPORT.md"); f.Commit != commit {
		t.Errorf("Commit with only the report rewritten = %q, want %q", f.Commit, commit)
	}
	write("code.go", "package y\n")
	if f := Describe(walship, "REPORT.md"); f.Commit != commit+" (with uncommitted changes)" {
		t.Errorf("Commit with code changed = %q, want it marked", f.Commit)
	}
	if f := Describe(filepath.Join(dir, "missing"), "REPORT.md"); f.Walship != "" {
		t.Errorf("Walship of a missing binary = %q, want empty", f.Walship)
	}
}
