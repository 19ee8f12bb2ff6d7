package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore/litestream03"
)

// v03Dir returns a replica directory holding a Litestream v0.3 backup: one
// generation with two snapshots, of the rows returned, written at t1 and t2.
func v03Dir(t *testing.T, t1, t2 time.Time) (dir string, rows1, rows2 []string) {
	t.Helper()
	work := t.TempDir()
	a := newAppDB(t, filepath.Join(work, "app.db"), 20)
	snap := func(i int, at time.Time) []string {
		p := filepath.Join(work, "snap"+string(rune('0'+i)))
		if _, err := a.db.Exec("VACUUM INTO ?", p); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := testutil.WriteV03Object(dir, litestream03.SnapshotName("0123456789abcdef", i), b, at); err != nil {
			t.Fatal(err)
		}
		return contents(t, p)
	}
	dir = filepath.Join(work, "replica")
	rows1 = snap(0, t1)
	a.insert(10)
	rows2 = snap(1, t2)
	return dir, rows1, rows2
}

// TestLitestream03: the commands say that a replica holds a Litestream v0.3
// backup instead of calling it empty, and restore restores it.
func TestLitestream03(t *testing.T) {
	noConfig(t)
	t1, t2 := time.Date(2023, 5, 1, 10, 0, 0, 0, time.UTC), time.Date(2023, 5, 2, 10, 0, 0, 0, time.UTC)
	replica, rows1, rows2 := v03Dir(t, t1, t2)
	out := filepath.Join(t.TempDir(), "out")

	code, stdout, stderr := runCLI(t, "ltx", replica)
	if code != 0 || !strings.Contains(stderr, "holds a backup that Litestream v0.3 wrote (generations/: 1 generation, 2 snapshots and 0 WAL segments") ||
		!strings.Contains(stderr, "walship restore reads it") || !strings.Contains(stderr, "walship replicate starts a new walship history beside it") ||
		!strings.Contains(stdout, "0123456789abcdef  2") {
		t.Fatalf("ltx: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	code, stdout, stderr = runCLI(t, "verify", replica)
	if code != 1 || !strings.Contains(stdout+stderr, "Litestream v0.3") || !strings.Contains(stdout+stderr, "walship replicate") {
		t.Fatalf("verify: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	stdout = mustRun(t, "restore", "-dry-run", "-o", filepath.Join(out, "dry.db"), replica)
	if !strings.Contains(stdout, "would read its Litestream v0.3 backup, generation 0123456789abcdef") || !strings.Contains(stdout, litestream03.SnapshotName("0123456789abcdef", 1)) {
		t.Fatalf("dry run:\n%s", stdout)
	}
	var plan planV03JSON
	if err := json.Unmarshal([]byte(mustRun(t, "restore", "-dry-run", "-json", "-timestamp", "2023-05-01T12:00:00Z", "-o", filepath.Join(out, "dry.db"), replica)), &plan); err != nil {
		t.Fatal(err)
	}
	if !plan.DryRun || plan.Format != "litestream-v0.3" || len(plan.Objects) != 1 || plan.Objects[0].Name != litestream03.SnapshotName("0123456789abcdef", 0) {
		t.Fatalf("dry run -json: %+v", plan)
	}
	if exists(out) {
		t.Fatal("a dry run wrote")
	}

	p := filepath.Join(out, "latest.db")
	if stdout := mustRun(t, "restore", "-o", p, replica); !strings.Contains(stdout, "restored the Litestream v0.3 backup, generation 0123456789abcdef") {
		t.Fatalf("restore printed %q", stdout)
	}
	sameRows(t, contents(t, p), rows2)
	p = filepath.Join(out, "then.db")
	mustRun(t, "restore", "-timestamp", "2023-05-01T12:00:00Z", "-o", p, replica)
	sameRows(t, contents(t, p), rows1)

	code, _, stderr = runCLI(t, "restore", "-txid", "1", "-o", filepath.Join(out, "txid.db"), replica)
	if code != 1 || !strings.Contains(stderr, "Litestream v0.3") || !strings.Contains(stderr, "-timestamp") {
		t.Fatalf("restore -txid: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "restore", "-timestamp", "2023-04-01T00:00:00Z", "-o", filepath.Join(out, "early.db"), replica)
	if code != 1 || !strings.Contains(stderr, "holds nothing written at or before 2023-04-01T00:00:00Z") {
		t.Fatalf("restore before the backup: exit %d, stderr %q", code, stderr)
	}
	if exists(filepath.Join(out, "txid.db")) || exists(filepath.Join(out, "early.db")) {
		t.Fatal("a failed restore wrote its output")
	}
}
