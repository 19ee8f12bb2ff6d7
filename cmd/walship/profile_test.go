package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStartProfileWritesProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	var stderr bytes.Buffer
	stop := startProfile(path, &stderr)
	stop()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A CPU profile is a gzipped protocol buffer.
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile is %d bytes, not gzip", len(b))
	}
	if stderr.Len() != 0 {
		t.Fatalf("stderr: %s", stderr.String())
	}
}

func TestStartProfileBadPathDoesNotStopTheVerb(t *testing.T) {
	var stderr bytes.Buffer
	stop := startProfile(filepath.Join(t.TempDir(), "missing", "cpu.pprof"), &stderr)
	stop()
	if !strings.Contains(stderr.String(), "WALSHIP_CPUPROFILE") {
		t.Fatalf("stderr %q does not name the variable", stderr.String())
	}
}

func TestStartProfileUnsetIsNoop(t *testing.T) {
	var stderr bytes.Buffer
	startProfile("", &stderr)()
	if stderr.Len() != 0 {
		t.Fatalf("stderr: %s", stderr.String())
	}
}
