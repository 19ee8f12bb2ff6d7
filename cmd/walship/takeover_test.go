package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTakeoverOneDatabase: -takeover=DB_PATH takes over the replicas of
// that database of the config only; another database whose replica a
// third database owns is still refused, and a path that names no database
// of the config is a usage error.
func TestTakeoverOneDatabase(t *testing.T) {
	dir := t.TempDir()
	owners := map[string]string{} // replica -> the database that owns it
	for _, name := range []string{"a", "b"} {
		old := newAppDB(t, filepath.Join(dir, "old-"+name+".db"), 3)
		replica := filepath.Join(dir, "replica-"+name)
		mustRun(t, "replicate", "-once", old.path, "file://"+replica)
		owners[replica] = old.path
	}
	a, b := newAppDB(t, filepath.Join(dir, "a.db"), 5), newAppDB(t, filepath.Join(dir, "b.db"), 5)
	cfg := filepath.Join(dir, "walship.yml")
	os.WriteFile(cfg, []byte("dbs:\n  - path: "+a.path+"\n    replica:\n      path: "+filepath.Join(dir, "replica-a")+
		"\n  - path: "+b.path+"\n    replica:\n      path: "+filepath.Join(dir, "replica-b")+"\n"), 0o644)
	t.Setenv("WALSHIP_CONFIG", cfg)
	ownerOf := func(replica string) string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(replica, "walship-owner.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rec struct{ Path string }
		if err := json.Unmarshal(data, &rec); err != nil {
			t.Fatal(err)
		}
		return rec.Path
	}

	code, _, stderr := runCLI(t, "replicate", "-once", "-takeover="+filepath.Join(dir, "c.db"))
	if code != 2 || !strings.Contains(stderr, "names no database this command replicates") {
		t.Fatalf("-takeover of a database not in the config: exit %d\n%s", code, stderr)
	}

	code, _, stderr = runCLI(t, "replicate", "-once", "-takeover="+a.path)
	if code == 0 || !strings.Contains(stderr, "belongs to") || !strings.Contains(stderr, b.path) {
		t.Fatalf("replicate -once -takeover=a.db: exit %d, want b.db refused\n%s", code, stderr)
	}
	if got := ownerOf(filepath.Join(dir, "replica-a")); got != a.path {
		t.Errorf("replica-a is owned by %s, want %s (taken over)", got, a.path)
	}
	if got, want := ownerOf(filepath.Join(dir, "replica-b")), owners[filepath.Join(dir, "replica-b")]; got != want {
		t.Errorf("replica-b is owned by %s, want %s (not taken over)", got, want)
	}
}
