package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/internal/owner"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// TestFileExecDirectory: RunExecDirectory on a directory replica.
func TestFileExecDirectory(t *testing.T) {
	base := filepath.Join(t.TempDir(), "replica")
	RunExecDirectory(t, DirReplica{
		YAML:     "url: file://" + base,
		ClientOf: func(rel string) (storage.Client, error) { return file.New(filepath.Join(base, rel)), nil },
	})
}

// RunExecDirectory is the end-to-end test of `walship replicate -exec`
// with a dir: entry:
//
//   - the application creates a database in the directory, commits and
//     exits at once, before a notification may have reached walship:
//     walship scans the directory once more, opens it, and its rows are in
//     its replica; a database there before the start is replicated too;
//   - a database of the directory whose replica belongs to another
//     database is reported (an ERROR line) and the application goes on;
//     it exits 0 on SIGTERM, and walship exits 1 naming that database.
func RunExecDirectory(t *testing.T, r DirReplica) {
	ctx := context.Background()
	dir := t.TempDir()
	bin, app := Binary(t), execApp(t)
	tenants := filepath.Join(dir, "tenants")
	if err := os.MkdirAll(tenants, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "walship.yml")
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "dbs:\n  - dir: %s\n    pattern: \"*.db\"\n    sync-interval: 50ms\n    replica:\n", tenants)
	for _, line := range strings.Split(strings.TrimSpace(r.YAML), "\n") {
		fmt.Fprintf(&cfg, "      %s\n", line)
	}
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	appLine := func(db string, args ...string) string {
		return fmt.Sprintf("'%s' -db '%s' %s", app, db, strings.Join(args, " "))
	}

	before := filepath.Join(tenants, "before.db")
	if out, err := exec.Command(app, "-db", before, "-rows", "7").CombinedOutput(); err != nil {
		t.Fatalf("execapp: %v\n%s", err, out)
	}
	created := filepath.Join(tenants, "created.db")
	res := runResult(bin, r.Env, "replicate", "-config", cfgPath, "-exec", appLine(created, "-rows", "30"))
	wantExit(t, res, 0, "an application that creates a database in the directory and exits at once")
	wantRows(t, bin, r.Env, cfgPath, created, dir, 30, "after the application created a database of the directory and exited")
	wantRows(t, bin, r.Env, cfgPath, before, dir, 7, "the database there before the start")

	// A database of the directory refused by its replica.
	refused := filepath.Join(tenants, "refused.db")
	if out, err := exec.Command(app, "-db", refused, "-rows", "1").CombinedOutput(); err != nil {
		t.Fatalf("execapp: %v\n%s", err, out)
	}
	other := owner.Record{Database: "another-database", Run: "another-run", Host: "elsewhere", Path: "/elsewhere/refused.db", Started: time.Now()}
	if _, err := owner.Claim(ctx, r.client(t, "refused.db"), owner.Request{Me: other}, time.Now()); err != nil {
		t.Fatal(err)
	}
	p := startWalship(t, bin, r.Env, "replicate", "-config", cfgPath, "-exec", appLine(created, "-rows", "2", "-wait", "-on-term", "0"))
	waitOutput(t, p, "execapp: waiting for a signal")
	waitOutput(t, p, "replication of this database stopped")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("walship exited before the signal: %v\n%s", err, p.output())
	}
	if got := exitCode(p.cmd.Wait()); got != 1 {
		t.Fatalf("walship exited %d, want 1 (the application exited 0, a database failed):\n%s", got, p.output())
	}
	out := p.output()
	if strings.Contains(out, "stopping the application") || !strings.Contains(out, "forwarding the signal") || !strings.Contains(out, refused) {
		t.Fatalf("the refused database stopped the application, or is not named:\n%s", out)
	}
	wantRows(t, bin, r.Env, cfgPath, created, dir, 33, "after the second run (two rows, one at SIGTERM)")
}
