package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RunHeal is the end-to-end test of a replica that heals itself, on the
// destination of r (which must be empty): while walship replicates a
// database under writes, every LTX file of the replica is deleted, as an
// operator's rm -rf or a lifecycle rule would. walship must notice at its
// next audit, upload a new snapshot without a restart, and the replica
// must then restore the database's last state exactly.
func RunHeal(t *testing.T, r Replica) {
	if r.Client == nil {
		t.Fatal("e2e.RunHeal: Replica.Client is nil")
	}
	ctx := context.Background()
	dir := t.TempDir()
	bin := Binary(t)
	dbPath := filepath.Join(dir, "app.db")
	healed := r
	healed.YAML = strings.TrimSpace(r.YAML) + "\naudit-interval: 1s"
	cfgPath := writeConfig(t, filepath.Join(dir, "walship.yml"), dbPath, healed)
	defer func() {
		if t.Failed() {
			t.Logf("replica:\n%s", listing(ctx, r.Client))
		}
	}()

	w := startWriter(t, dbPath)
	p := startWalship(t, bin, r.Env, "replicate", "-config", cfgPath)
	waitForLog(t, p, "replicating", 30*time.Second)
	time.Sleep(1500 * time.Millisecond)
	all := allFiles(t, ctx, r.Client)
	if len(all) == 0 {
		t.Fatalf("walship wrote nothing to the replica in 1.5s:\n%s", p.output())
	}
	if err := r.Client.DeleteLTXFiles(ctx, all); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, p, "replica repaired", 30*time.Second)
	// Three more audits under writes: once repaired, the replica stays
	// whole (a snapshot at every audit would be a false alarm's loop).
	time.Sleep(3500 * time.Millisecond)
	if n := strings.Count(p.output(), "replica repaired"); n != 1 {
		t.Errorf("walship repaired the replica %d times; want once:\n%s", n, p.output())
	}
	w.stop(t)
	time.Sleep(300 * time.Millisecond)
	p.terminate(t)
	if !strings.Contains(p.output(), "the replica was emptied") {
		t.Errorf("walship did not say that the replica had been emptied:\n%s", p.output())
	}
	checkLatest(t, bin, r.Env, cfgPath, dbPath, w.last, dir, "after the replica healed")
	if out := run(t, bin, r.Env, "verify", "-config", cfgPath, dbPath); !strings.Contains(out, "in sync") {
		t.Fatalf("verify of the healed replica:\n%s", out)
	}
}

// waitForLog waits until walship's output holds s.
func waitForLog(t *testing.T, p *process, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.output(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("walship did not log %q within %s:\n%s", s, timeout, p.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
