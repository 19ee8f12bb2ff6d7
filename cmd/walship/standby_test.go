package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// -standby refuses what it cannot stand by for before anything is
// written: DB_PATH REPLICA_URL, -once, -takeover, a -promote-hook alone, a
// config of two databases, a database without lease-ttl, an S3 replica
// without conditional writes.
func TestStandbyUsage(t *testing.T) {
	dir := t.TempDir()
	db, replica := filepath.Join(dir, "app.db"), "file://"+filepath.Join(dir, "replica")
	config := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leased := config("leased.yml", "dbs:\n  - path: "+db+"\n    lease-ttl: 3s\n    replica:\n      url: "+replica+"\n")
	two := config("two.yml", "dbs:\n  - path: "+db+"\n    lease-ttl: 3s\n    replica:\n      url: "+replica+"\n  - path: "+db+"2\n    replica:\n      url: "+replica+"2\n")
	noLease := config("nolease.yml", "dbs:\n  - path: "+db+"\n    replica:\n      url: "+replica+"\n")
	unconditional := config("s3.yml", "dbs:\n  - path: "+db+"\n    lease-ttl: 3s\n    replica:\n      url: s3://bucket/app\n      endpoint: http://127.0.0.1:1\n      region: us-east-1\n      conditional-writes: false\n")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"replicate", "-standby", db, replica}, 2, "-standby needs the config file"},
		{[]string{"replicate", "-standby", "-once", "-config", leased}, 2, "-standby cannot be combined with -once"},
		{[]string{"replicate", "-standby", "-takeover", "-config", leased}, 2, "-standby cannot be combined with -takeover"},
		{[]string{"replicate", "-promote-hook", "true", "-config", leased}, 2, "-promote-hook applies only with -standby"},
		{[]string{"replicate", "-standby", "-config", two}, 2, "exactly one database"},
		{[]string{"replicate", "-standby", "-config", noLease}, 1, "standby mode needs lease-ttl"},
		{[]string{"replicate", "-standby", "-config", unconditional}, 1, "cannot hold a lease"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, want %d with %q:\n%s", c.args, code, c.code, c.want, stderr)
		}
	}
	if _, err := os.Stat(db); err == nil {
		t.Fatal("a refused standby created the database")
	}
}
