package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/walship/walship/config"
)

// A Litestream config runs as it is: found through LITESTREAM_CONFIG,
// its logging settings applied (stderr: false is standard output, as in
// Litestream), its shutdown-sync-timeout used, and each key walship does
// not act on named once in the log.
func TestLitestreamConfig(t *testing.T) {
	if _, err := os.Stat(config.DefaultPath); err == nil {
		t.Skipf("%s exists on this machine: it comes before LITESTREAM_CONFIG", config.DefaultPath)
	}
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := newAppDB(t, dbPath, 3)
	cfg := filepath.Join(dir, "litestream.yml")
	os.WriteFile(cfg, []byte(`mcp-addr: ":3001"
shutdown-sync-interval: 500ms
shutdown-sync-timeout: 3s
sync-interval: 50ms
logging:
  level: trace
  stderr: false
  source: true
dbs:
  - path: sqlite://`+dbPath+`
    monitor-interval: 1s
    replica:
      type: file
      path: `+filepath.Join(dir, "replica")+`
      retention: 24h
`), 0o644)
	t.Setenv("WALSHIP_CONFIG", "")
	t.Setenv("LITESTREAM_CONFIG", cfg)
	t.Setenv("LOG_LEVEL", "")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var code int
	var stdout, stderr string
	wg.Go(func() { code, stdout, stderr = runCLICtx(ctx, "replicate") })
	waitFiles(filepath.Join(dir, "replica", "ltx", "*", "*.ltx"), 1)
	app.insert(1)
	cancel()
	wg.Wait()
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if stderr != "" {
		t.Errorf("logging.stderr: false, but the log went to standard error:\n%s", stderr)
	}
	for _, want := range []string{
		"level=DEBUG", "source=", // trace is debug; source: true
		`msg="logging.level: walship has no trace level`,
		`msg="shutdown-sync-interval: has no effect in walship`,
		`msg="mcp-addr: has no effect in walship`,
		`msg="dbs[0].monitor-interval: has no effect in walship`,
		`msg="dbs[0].replica.retention: has no effect in walship`,
		"timeout=3s", // shutdown-sync-timeout
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the log lacks %q:\n%s", want, stdout)
		}
	}
	if n := strings.Count(stdout, `msg="shutdown-sync-interval:`); n != 1 {
		t.Errorf("the shutdown-sync-interval warning is logged %d times; want once", n)
	}

	// The database's path without its sqlite:// prefix is the one
	// restore finds in the config.
	out := filepath.Join(dir, "out.db")
	mustRun(t, "restore", "-o", out, dbPath)
	sameRows(t, contents(t, out), contents(t, dbPath))

	// LOG_LEVEL wins over logging.level, as in Litestream; one that is no
	// level is said to be so and not used.
	t.Setenv("LOG_LEVEL", "error")
	code, stdout, _ = runCLI(t, "replicate", "-once")
	if code != 0 || strings.Contains(stdout, "level=WARN") || strings.Contains(stdout, "level=INFO") {
		t.Errorf("LOG_LEVEL=error: exit %d, log:\n%s", code, stdout)
	}
	t.Setenv("LOG_LEVEL", "loud")
	code, stdout, _ = runCLI(t, "replicate", "-once")
	if code != 0 || !strings.Contains(stdout, `LOG_LEVEL=\"loud\" is not a log level`) || !strings.Contains(stdout, "level=DEBUG") {
		t.Errorf("LOG_LEVEL=loud: exit %d, log:\n%s", code, stdout)
	}
}

// databases lists the config's warnings, with file, line and key, on
// standard error, and never a secret.
func TestDatabasesWarnings(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "litestream.yml")
	os.WriteFile(cfg, []byte(`heartbeat-url: https://hc-ping.com/topsecret-uuid
dbs:
  - path: /var/lib/a.db
    replica:
      type: s3
      bucket: bkt
      path: a
      sign-payload: true
      secret-access-key: topsecret
      access-key-id: AKIA
  - dir: /var/lib/tenants
    pattern: "*.db"
    replica:
      url: s3://bkt/tenants
`), 0o644)
	code, stdout, stderr := runCLI(t, "databases", "-config", cfg)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if !strings.Contains(stdout, "s3://bkt/a") || !strings.Contains(stdout, "/var/lib/tenants/*.db") || !strings.Contains(stdout, "s3://bkt/tenants") {
		t.Errorf("databases:\n%s", stdout)
	}
	for _, want := range []string{
		"warning: " + cfg + ":8: dbs[0].replica.sign-payload: has no effect in walship",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "heartbeat-url") {
		t.Errorf("heartbeat-url is warned about, though walship sends heartbeats:\n%s", stderr)
	}
	if strings.Contains(stdout+stderr, "topsecret") {
		t.Errorf("a secret shows:\n%s\n%s", stdout, stderr)
	}
}
