package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRenderProgress(t *testing.T) {
	for _, tc := range []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{0, 4_000_000_000, 0, "restoring 0 B of 4.0 GB (0%)"},
		{1_200_000_000, 4_000_000_000, 10 * time.Second, "restoring 1.2 GB of 4.0 GB (30%), 120.0 MB/s, 23s left"},
		{4_000_000_000, 4_000_000_000, 40 * time.Second, "restoring 4.0 GB of 4.0 GB (100%), 100.0 MB/s"},
		{5_000, 4_000, time.Second, "restoring 4.0 kB of 4.0 kB (100%), 4.0 kB/s"}, // a read ahead past the end
		{0, 0, time.Second, "restoring 0 B of 0 B"},
	} {
		if got := renderProgress("restoring", tc.done, tc.total, tc.elapsed); got != tc.want {
			t.Errorf("renderProgress(%d, %d, %v) = %q, want %q", tc.done, tc.total, tc.elapsed, got, tc.want)
		}
	}
}

// TestMeterDraws: one line, redrawn in place at most every drawEvery and
// at the end, and erased before the result is printed.
func TestMeterDraws(t *testing.T) {
	var buf bytes.Buffer
	m := &meter{w: &buf, label: "verifying"}
	report := m.progress()
	report(10, 100)
	report(20, 100) // too soon: not drawn
	report(100, 100)
	m.clear()
	got := buf.String()
	if n := strings.Count(got, "verifying"); n != 2 {
		t.Fatalf("drawn %d times: %q", n, got)
	}
	if strings.Contains(got, "\n") || !strings.HasSuffix(got, "\r") {
		t.Fatalf("not drawn in place, or not erased: %q", got)
	}
}

// TestNoProgressWithoutTerminal: standard error that is not a terminal (a
// file, a pipe, journald) gets no meter, and a restore and a verify print
// nothing there.
func TestNoProgressWithoutTerminal(t *testing.T) {
	noConfig(t)
	dir := t.TempDir()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	if m := newMeter(&env{stderr: stderr}, "x"); m != nil {
		t.Fatal("a meter on a file")
	}
	if m := newMeter(&env{stderr: &bytes.Buffer{}}, "x"); m != nil {
		t.Fatal("a meter on a buffer")
	}

	db := filepath.Join(dir, "app.db")
	newAppDB(t, db, 2000)
	replica := filepath.Join(dir, "replica")
	mustRun(t, "replicate", "-once", db, replica)
	var stdout bytes.Buffer
	for _, args := range [][]string{
		{"restore", "-o", filepath.Join(dir, "out.db"), replica},
		{"verify", replica},
	} {
		if code := run(context.Background(), args, &stdout, stderr); code != 0 {
			t.Fatalf("%s: exit %d\n%s", args, code, stdout.String())
		}
	}
	if b, _ := os.ReadFile(stderr.Name()); len(b) > 0 {
		t.Fatalf("standard error got %q", b)
	}
}
