package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/internal/monitor"
	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/internal/testutil"
)

// TestStatus: status asks the running replicate at the config's addr:,
// and reads the replicas when no process answers; each output says which.
func TestStatus(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	addr := testserver.Addr(testserver.FreePort(t))
	cfg := filepath.Join(dir, "walship.yml")
	yml := fmt.Sprintf("addr: %s\ndbs:\n  - path: %s\n    sync-interval: 20ms\n    replica:\n      name: nas\n      url: file://%s\n", addr, dbPath, replica)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	app := newAppDB(t, dbPath, 5)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { runCLICtx(ctx, "replicate", "-config", cfg) })
	var rep monitor.Report
	deadline := time.Now().Add(30 * time.Second)
	for {
		app.insert(1)
		code, stdout, _ := runCLI(t, "status", "-json", "-addr", addr)
		if code == 0 && json.Unmarshal([]byte(stdout), &rep) == nil && len(rep.DBs) == 1 && rep.DBs[0].TXID > 1 && rep.DBs[0].Replicas[0].TXID == rep.DBs[0].TXID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the replica in sync: exit %d\n%s", code, stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rep.Source != "process" || rep.DBs[0].Path != dbPath || rep.DBs[0].Replicas[0].Name != "nas" {
		t.Fatalf("status -json: %+v", rep)
	}
	if out := mustRun(t, "status", "-config", cfg); !strings.Contains(out, "the running walship at "+addr) || !strings.Contains(out, "replica nas: TXID") {
		t.Fatalf("status -config with a process running:\n%s", out)
	}
	cancel()
	wg.Wait()

	out := mustRun(t, "status", "-config", cfg)
	if !strings.Contains(out, "read from the replicas (no walship answered at "+addr) || !strings.Contains(out, "replica nas: TXID "+rep.DBs[0].Replicas[0].TXID.String()[:8]) {
		t.Fatalf("status -config without a process:\n%s", out)
	}
	if code, _, stderr := runCLI(t, "status", "-addr", addr); code == 0 || !strings.Contains(stderr, "no walship answered") {
		t.Fatalf("status -addr without a process: exit %d\n%s", code, stderr)
	}
}

// TestReplicateAddr: replicate DB_PATH REPLICA_URL -addr serves the
// metrics, which Prometheus's parser reads, and /healthz.
func TestReplicateAddr(t *testing.T) {
	noConfig(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := newAppDB(t, dbPath, 5)
	addr := testserver.Addr(testserver.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		runCLICtx(ctx, "replicate", "-addr", addr, "-sync-interval", "20ms", dbPath, "file://"+filepath.Join(dir, "replica"))
	})
	defer func() { cancel(); wg.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		app.insert(1)
		m, err := testutil.Scrape("http://" + addr + "/metrics")
		if v, ok := m.Value("walship_replica_txid", "db", dbPath, "replica", "file"); err == nil && ok && v > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the metrics never showed the replica receiving changes: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}
}
