package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// -timeout takes a Go duration, or Litestream's whole seconds.
func TestSecondsOrDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"2s": 2 * time.Second, "500ms": 500 * time.Millisecond, "30": 30 * time.Second} {
		var d secondsOrDuration
		if err := d.Set(in); err != nil || d.d != want {
			t.Errorf("Set(%q) = %v, %v; want %v", in, d.d, err, want)
		}
	}
	for _, in := range []string{"0", "-1s", "soon", ""} {
		var d secondsOrDuration
		if err := d.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
}

// The socket verbs say what is wrong when no socket can be reached: the
// config does not enable one, or nothing listens.
func TestSocketVerbsErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "walship.yml")
	if err := os.WriteFile(cfg, []byte("dbs: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "sync", "-config", cfg, "-wait", "app.db")
	if code != 1 || !strings.Contains(stderr, "does not enable the control socket") {
		t.Errorf("sync with a config without socket: exit %d, %q", code, stderr)
	}
	sock := filepath.Join(dir, "none.sock")
	for _, args := range [][]string{{"list", "-socket", sock}, {"info", "-socket", sock}, {"sync", "-socket", sock, "app.db"}} {
		code, _, stderr := runCLI(t, args...)
		if code != 1 || !strings.Contains(stderr, "no walship answers on the control socket "+sock) {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
	if code, _, _ := runCLI(t, "sync", "-socket", sock, "-config", cfg, "app.db"); code != 2 {
		t.Errorf("-socket with -config: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "sync", "-socket", sock); code != 2 {
		t.Errorf("sync without DB_PATH: exit %d, want 2", code)
	}
}
