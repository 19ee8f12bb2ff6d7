package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/testutil"
)

// RunOwnership is the end-to-end test of one writer per replica, on the
// destination of r (which must be empty): two databases started at the
// same instant, then one after the other, a takeover while the old owner
// runs, and the new owner killed with SIGKILL and restarted. After each,
// the owner's restore must be exact, and the database that is not the
// owner must not have written one file.
func RunOwnership(t *testing.T, r Replica) {
	if r.Client == nil {
		t.Fatal("e2e.RunOwnership: Replica.Client is nil")
	}
	ctx := context.Background()
	dir := t.TempDir()
	bin := Binary(t)
	paths := [2]string{filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")}
	var cfgs [2]string
	var writers [2]*writer
	for i, p := range paths {
		cfgs[i] = writeConfig(t, filepath.Join(dir, fmt.Sprintf("walship-%d.yml", i)), p, r)
		writers[i] = startWriter(t, p)
	}
	defer func() {
		if t.Failed() {
			t.Logf("replica:\n%s", listing(ctx, r.Client))
		}
	}()
	time.Sleep(300 * time.Millisecond)
	for _, w := range writers {
		w.stop(t)
	}

	// Two databases started at the same instant on an empty replica:
	// exactly one becomes its owner.
	outs := make(chan result, 2)
	for i := range 2 {
		go func() { outs <- runResult(bin, r.Env, "replicate", "-once", "-config", cfgs[i]) }()
	}
	owner, other := -1, -1
	for range 2 {
		res := <-outs
		if res.err == nil {
			owner = res.index(cfgs)
		} else {
			if !strings.Contains(res.out, "belongs to") || !strings.Contains(res.out, "-takeover") {
				t.Fatalf("the database that lost the race failed without saying whose replica it is:\n%s", res.out)
			}
			other = res.index(cfgs)
		}
	}
	if owner < 0 || other < 0 {
		t.Fatalf("two databases started at once on one replica: want exactly one owner, got owner %d, refused %d", owner, other)
	}
	t.Logf("%s won the replica; %s was refused", paths[owner], paths[other])
	checkLatest(t, bin, r.Env, cfgs[owner], paths[owner], writers[owner].last, dir, "after the race")

	// The other one again, later: refused, and not one object written.
	before := listing(ctx, r.Client)
	res := runResult(bin, r.Env, "replicate", "-once", "-config", cfgs[other])
	if res.err == nil || !strings.Contains(res.out, "belongs to") {
		t.Fatalf("a second database replicated to a replica another owns: %v\n%s", res.err, res.out)
	}
	if after := listing(ctx, r.Client); after != before {
		t.Fatalf("a refused database changed the replica:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// And while the owner runs and writes.
	w := startWriter(t, paths[owner])
	p := startWalship(t, bin, r.Env, "replicate", "-config", cfgs[owner])
	time.Sleep(time.Second)
	res = runResult(bin, r.Env, "replicate", "-once", "-config", cfgs[other])
	if res.err == nil || !strings.Contains(res.out, "belongs to") {
		t.Fatalf("a second database replicated to a replica another owns while the owner ran: %v\n%s", res.err, res.out)
	}
	w.stop(t)
	time.Sleep(500 * time.Millisecond)
	p.terminate(t)
	checkLatest(t, bin, r.Env, cfgs[owner], paths[owner], w.last, dir, "after a refused writer")

	// A takeover while the old owner runs: the old owner stops writing at
	// its next check, and the new owner's history restores exactly.
	wOld := startWriter(t, paths[owner])
	pOld := startWalship(t, bin, r.Env, "replicate", "-config", cfgs[owner])
	time.Sleep(time.Second)
	wNew := startWriter(t, paths[other])
	pNew := startWalship(t, bin, r.Env, "replicate", "-takeover", "-config", cfgs[other])
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(pOld.output(), "stops writing to it") {
		if time.Now().After(deadline) {
			t.Fatalf("the old owner did not notice the takeover within 30s:\n%s", pOld.output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	wOld.stop(t)
	pOld.terminate(t)

	// The new owner killed and restarted, without -takeover: it goes on.
	time.Sleep(500 * time.Millisecond)
	pNew.kill(t)
	pNew = startWalship(t, bin, r.Env, "replicate", "-config", cfgs[other])
	time.Sleep(1500 * time.Millisecond)
	wNew.stop(t)
	time.Sleep(500 * time.Millisecond)
	pNew.terminate(t)
	if strings.Contains(pNew.output(), "belongs to") {
		t.Fatalf("the new owner was refused after a restart:\n%s", pNew.output())
	}
	finish(t, bin, r.Env, "replicate", "-once", "-config", cfgs[other])
	checkLatest(t, bin, r.Env, cfgs[other], paths[other], wNew.last, dir, "after the takeover")

	// The old owner, restarted, is refused: the replica is no longer its.
	res = runResult(bin, r.Env, "replicate", "-once", "-config", cfgs[owner])
	if res.err == nil || !strings.Contains(res.out, "belongs to") {
		t.Fatalf("the old owner wrote to the replica after the takeover: %v\n%s", res.err, res.out)
	}
	checkLatest(t, bin, r.Env, cfgs[other], paths[other], wNew.last, dir, "after the old owner was refused")

	// verify: whole, and in sync with the new owner's database; ahead of
	// the old owner's.
	if out := run(t, bin, r.Env, "verify", "-config", cfgs[other], paths[other]); !strings.Contains(out, "in sync") {
		t.Fatalf("verify of the new owner's replica:\n%s", out)
	}
	res = runResult(bin, r.Env, "verify", "-config", cfgs[owner], paths[owner])
	if code := exitCode(res.err); code != 1 || !strings.Contains(res.out, "ahead") {
		t.Fatalf("verify of the replica against the old owner's database: exit %d, want 1 (ahead):\n%s", code, res.out)
	}
}

// exitCode returns a command's exit status from its error.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// writeConfig writes a config that replicates dbPath to r.
func writeConfig(t *testing.T, cfgPath, dbPath string, r Replica) string {
	t.Helper()
	return writeConfigWith(t, cfgPath, "", dbPath, r)
}

// writeConfigWith writes a config that starts with the top-level settings
// top (whole lines) and replicates dbPath to r every 50ms.
func writeConfigWith(t *testing.T, cfgPath, top, dbPath string, r Replica) string {
	t.Helper()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "%sdbs:\n  - path: %s\n    sync-interval: 50ms\n    replica:\n", top, dbPath)
	for _, line := range strings.Split(strings.TrimSpace(r.YAML), "\n") {
		fmt.Fprintf(&cfg, "      %s\n", line)
	}
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

// writeReplicasConfig writes a config that replicates dbPath every 50ms
// to several replicas, each given as the keys of its entry, one per line
// and not indented.
func writeReplicasConfig(t *testing.T, cfgPath, dbPath string, replicas ...string) string {
	t.Helper()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "dbs:\n  - path: %s\n    sync-interval: 50ms\n    replicas:\n", dbPath)
	for _, r := range replicas {
		for i, line := range strings.Split(strings.TrimSpace(r), "\n") {
			indent := "        "
			if i == 0 {
				indent = "      - "
			}
			fmt.Fprintf(&cfg, "%s%s\n", indent, line)
		}
	}
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

// checkLatest restores the latest state of dbPath's replica into dir,
// checked by SQLite in full, fails unless it is want, and returns its
// path.
func checkLatest(t *testing.T, bin string, env []string, cfgPath, dbPath string, want testutil.Image, dir, when string) string {
	t.Helper()
	out := filepath.Join(dir, fmt.Sprintf("restored-%d.db", time.Now().UnixNano()))
	run(t, bin, env, "restore", "-config", cfgPath, "-o", out, "-integrity-check", "full", dbPath)
	if got := imageOfFile(t, out); got != want {
		t.Fatalf("%s: the restored database is not %s's last state: %d pages %s, want %d pages %s", when, dbPath, got.Pages, got.Hash, want.Pages, want.Hash)
	}
	return out
}

type result struct {
	args []string
	out  string
	err  error
}

func (r result) index(cfgs [2]string) int {
	for i, c := range cfgs {
		for _, a := range r.args {
			if a == c {
				return i
			}
		}
	}
	return -1
}

func runResult(bin string, env []string, args ...string) result {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return result{args: args, out: out.String(), err: err}
}
