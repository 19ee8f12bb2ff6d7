package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/owner"
	"github.com/walship/walship/storage"
)

// RunExec is the end-to-end test of `walship replicate -exec` and of
// restore on first boot, on the destination of r (which must be empty),
// with the application internal/e2e/execapp:
//
//   - the first start, with -restore-if-db-not-exists on the empty
//     replica: the application creates the database, commits rows and
//     exits 0:
//     walship exits 0, and a restore holds every row (none lost at exit);
//   - it exits 3: walship exits 3, and its rows are in the replica;
//   - walship is sent SIGTERM: the application receives it, commits one
//     more row and exits 42, and so does walship, with that row restored;
//   - walship is sent SIGINT and the application dies of it: walship
//     exits 130 (128+2);
//   - a container's start on an empty volume, with exec: and
//     restore-if-db-not-exists: in the config: the database is restored,
//     the application sees the old rows and writes more, and a restore
//     holds them all, in one continuous history, with no takeover;
//   - `walship restore` of a configured database, the application writing
//     to it before walship starts, then `walship replicate`: the restored
//     database goes on with the replica's history, not refused as
//     another database.
func RunExec(t *testing.T, r Replica) {
	if r.Client == nil {
		t.Fatal("e2e.RunExec: Replica.Client is nil")
	}
	ctx := context.Background()
	dir := t.TempDir()
	bin, app := Binary(t), execApp(t)
	defer func() {
		if t.Failed() {
			t.Logf("replica:\n%s", listing(ctx, r.Client))
		}
	}()
	volume := func(name string) string {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, name, "app.db")
	}
	appLine := func(db string, args ...string) string {
		return fmt.Sprintf("'%s' -db '%s' %s", app, db, strings.Join(args, " "))
	}

	db1 := volume("v1")
	cfg1 := writeConfig(t, filepath.Join(dir, "walship-1.yml"), db1, r)
	// The first start ever: the replica is empty, so restore on first
	// boot leaves the database to the application, which creates it.
	res := runResult(bin, r.Env, "replicate", "-restore-if-db-not-exists", "-config", cfg1, "-exec", appLine(db1, "-rows", "50"))
	wantExit(t, res, 0, "an application that exits 0")
	if !strings.Contains(res.out, "no replica holds a backup") {
		t.Fatalf("the first start on an empty replica does not say it starts fresh:\n%s", res.out)
	}
	wantRows(t, bin, r.Env, cfg1, db1, dir, 50, "after the application created the database and exited")

	res = runResult(bin, r.Env, "replicate", "-config", cfg1, "-exec", appLine(db1, "-rows", "10", "-exit", "3"))
	wantExit(t, res, 3, "an application that exits 3")
	wantRows(t, bin, r.Env, cfg1, db1, dir, 60, "after the application exited 3")

	p := startWalship(t, bin, r.Env, "replicate", "-config", cfg1, "-exec", appLine(db1, "-rows", "5", "-wait", "-on-term", "42"))
	waitOutput(t, p, "execapp: waiting for a signal")
	signalWalship(t, p, syscall.SIGTERM, 42)
	wantRows(t, bin, r.Env, cfg1, db1, dir, 66, "after SIGTERM, which the application handled with one more row")

	p = startWalship(t, bin, r.Env, "replicate", "-config", cfg1, "-exec", appLine(db1, "-rows", "1", "-wait"))
	waitOutput(t, p, "execapp: waiting for a signal")
	signalWalship(t, p, syscall.SIGINT, 128+int(syscall.SIGINT))
	wantRows(t, bin, r.Env, cfg1, db1, dir, 67, "after SIGINT killed the application")

	// A container's start: an empty volume, the replica of the database
	// the container replaces, one command.
	db2 := volume("v2")
	cfg2 := writeConfigWith(t, filepath.Join(dir, "walship-2.yml"), "exec: \""+appLine(db2, "-rows", "20")+"\"\n", db2, r)
	addDBKey(t, cfg2, "restore-if-db-not-exists: true")
	snapshots := len(ltxFiles(t, ctx, r.Client, storage.SnapshotLevel))
	res = runResult(bin, r.Env, "replicate", "-config", cfg2)
	wantExit(t, res, 0, "a container's start")
	if !strings.Contains(res.out, "restored the missing database") || !strings.Contains(res.out, "execapp: rows-before 67") {
		t.Fatalf("the container's database was not restored before the application started:\n%s", res.out)
	}
	wantRows(t, bin, r.Env, cfg2, db2, dir, 87, "after the container's start")
	wantOwnHistory(t, ctx, r, db2)
	// The restored database is the replica's newest state: it goes on
	// from there, without a whole copy.
	if n := len(ltxFiles(t, ctx, r.Client, storage.SnapshotLevel)); n != snapshots || strings.Contains(res.out, "full copy") {
		t.Fatalf("the container's start wrote %d snapshots, or a full copy; want neither:\n%s", n-snapshots, res.out)
	}

	// The restore command, the application writing before walship's
	// first start, then walship.
	db3 := volume("v3")
	cfg3 := writeConfig(t, filepath.Join(dir, "walship-3.yml"), db3, r)
	run(t, bin, r.Env, "restore", "-config", cfg3, db3)
	if out, err := exec.Command(app, "-db", db3, "-rows", "5").CombinedOutput(); err != nil {
		t.Fatalf("execapp: %v\n%s", err, out)
	}
	res = runResult(bin, r.Env, "replicate", "-once", "-config", cfg3)
	wantExit(t, res, 0, "replicating a restored database the application wrote to")
	wantRows(t, bin, r.Env, cfg3, db3, dir, 92, "after replicating a restored database the application wrote to")
	wantOwnHistory(t, ctx, r, db3)
}

// RunExecReplicationLost: replication stopping for good while the
// application runs (another database takes the replica over) stops the
// application, and walship exits 1 saying why.
func RunExecReplicationLost(t *testing.T, r Replica) {
	dir := t.TempDir()
	bin, app := Binary(t), execApp(t)
	dbPath, other := filepath.Join(dir, "app.db"), filepath.Join(dir, "other.db")
	cfg := writeConfig(t, filepath.Join(dir, "walship.yml"), dbPath, r)
	p := startWalship(t, bin, r.Env, "replicate", "-config", cfg, "-exec", fmt.Sprintf("'%s' -db '%s' -rows 1 -wait -every 50ms", app, dbPath))
	waitOutput(t, p, "execapp: waiting for a signal")

	if out, err := exec.Command(app, "-db", other, "-rows", "1").CombinedOutput(); err != nil {
		t.Fatalf("execapp: %v\n%s", err, out)
	}
	otherCfg := writeConfig(t, filepath.Join(dir, "other.yml"), other, r)
	run(t, bin, r.Env, "replicate", "-once", "-takeover", "-config", otherCfg)

	// The old owner notices at its first write after it last read the
	// owner record (within 10s).
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if code := exitCode(err); code != 1 {
			t.Fatalf("walship exited %d after losing its replica, want 1:\n%s", code, p.output())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("walship still runs 60s after its replica was taken over:\n%s", p.output())
	}
	out := p.output()
	if !strings.Contains(out, "stopping the application") || !strings.Contains(out, "the application was stopped") || !strings.Contains(out, "belongs to") {
		t.Fatalf("walship did not stop the application, saying why, when its replica was taken over:\n%s", out)
	}
}

func ltxFiles(t *testing.T, ctx context.Context, c storage.Client, level int) []*ltx.FileInfo {
	t.Helper()
	files, err := c.LTXFiles(ctx, level)
	if err != nil {
		t.Fatalf("list level %d of %s: %v", level, c, err)
	}
	return files
}

// execApp builds internal/e2e/execapp once per test and returns its path.
func execApp(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "execapp")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/walship/walship/internal/e2e/execapp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build execapp: %v\n%s", err, out)
	}
	return bin
}

// addDBKey adds a key to the database entry of a config that
// writeConfigWith wrote.
func addDBKey(t *testing.T, cfgPath, line string) {
	t.Helper()
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "    sync-interval: 50ms\n", "    sync-interval: 50ms\n    "+line+"\n", 1)
	if err := os.WriteFile(cfgPath, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func wantExit(t *testing.T, res result, code int, what string) {
	t.Helper()
	if got := exitCode(res.err); got != code {
		t.Fatalf("%s: walship exited %d (%v), want %d:\n%s", what, got, res.err, code, res.out)
	}
}

// waitOutput waits until walship (or its application) wrote s.
func waitOutput(t *testing.T, p *process, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.output(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("walship's output lacks %q after 30s:\n%s", s, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signalWalship sends sig to walship and fails unless it exits with code.
func signalWalship(t *testing.T, p *process, sig syscall.Signal, code int) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("walship exited before the signal: %v\n%s", err, p.output())
	}
	if got := exitCode(p.cmd.Wait()); got != code {
		t.Fatalf("walship exited %d after %s, want %d:\n%s", got, sig, code, p.output())
	}
	if !strings.Contains(p.output(), "forwarding the signal to the application") {
		t.Fatalf("walship did not say it forwarded %s:\n%s", sig, p.output())
	}
}

// wantRows restores dbPath's replica and fails unless it holds n rows.
func wantRows(t *testing.T, bin string, env []string, cfgPath, dbPath, dir string, n int, when string) {
	t.Helper()
	out := filepath.Join(dir, fmt.Sprintf("restored-%d.db", time.Now().UnixNano()))
	run(t, bin, env, "restore", "-config", cfgPath, "-o", out, "-integrity-check", "full", dbPath)
	db, err := sql.Open("sqlite", "file:"+out+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&got); err != nil {
		t.Fatalf("%s: count the restored rows: %v", when, err)
	}
	if got != n {
		t.Fatalf("%s: the restore holds %d rows, want %d", when, got, n)
	}
}

// wantOwnHistory fails unless the replica holds one chain of TXIDs from 1
// and belongs to dbPath without a takeover.
func wantOwnHistory(t *testing.T, ctx context.Context, r Replica, dbPath string) {
	t.Helper()
	checkChain(t, ctx, r.Client)
	rec, _, err := owner.Read(ctx, r.Client)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Path != dbPath || rec.TakenOverFrom != "" || rec.HistoryFrom != 0 {
		t.Fatalf("the replica's owner is %s (taken over from %q, history from %d); want %s, with no takeover", rec.Path, rec.TakenOverFrom, rec.HistoryFrom, dbPath)
	}
}
