package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// warned returns "line key" for each warning of cfg.
func warned(cfg *Config) []string {
	var out []string
	for _, w := range cfg.Warnings {
		out = append(out, fmt.Sprintf("%d %s", w.Line, w.Key))
	}
	return out
}

// Every key of Litestream's that walship does not act on is accepted, with
// one warning naming it, its line and what walship does instead; its value
// never shows.
func TestLitestreamKeysWarned(t *testing.T) {
	cfg, err := Parse("litestream.yml", []byte(`addr: ":9090"
mcp-addr: ":3001"
socket:
  enabled: true
  path: /var/run/litestream.sock
  permissions: 0600
exec: myapp -port 8080
heartbeat-url: https://hc-ping.com/SECRETUUID
heartbeat-interval: 5m
shutdown-sync-interval: 500ms
verify-compaction: true
validation:
  interval: 6h
max-sync-ltx-files: 128
auto-recover: true
sign-payload: false
dbs:
  - path: /var/lib/a.db
    monitor-interval: 1s
    max-sync-wal-bytes: 1048576
    restore-if-db-not-exists: true
    replica:
      url: s3://bkt/a
      require-content-md5: false
      sign-accept-encoding: false
      auto-recover: false
      max-sync-ltx-files: 0
      retention: 24h
      retention-check-interval: 1h
      snapshot-interval: 6h
      age: {}
      host: example.com
`), false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"2 mcp-addr", "10 shutdown-sync-interval",
		"11 verify-compaction", "12 validation", "14 max-sync-ltx-files", "15 auto-recover", "16 sign-payload",
		"19 dbs[0].monitor-interval", "20 dbs[0].max-sync-wal-bytes",
		"24 dbs[0].replica.require-content-md5", "25 dbs[0].replica.sign-accept-encoding", "26 dbs[0].replica.auto-recover",
		"27 dbs[0].replica.max-sync-ltx-files", "28 dbs[0].replica.retention", "29 dbs[0].replica.retention-check-interval",
		"30 dbs[0].replica.snapshot-interval", "31 dbs[0].replica.age", "32 dbs[0].replica.host",
	}
	if got := warned(cfg); !slices.Equal(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
	if !cfg.Socket.Enabled || cfg.Socket.SocketPath() != "/var/run/litestream.sock" || cfg.Socket.Mode() != 0o600 {
		t.Errorf("socket: %+v", cfg.Socket)
	}
	if cfg.Addr != ":9090" || cfg.HeartbeatURL != "https://hc-ping.com/SECRETUUID" || cfg.HeartbeatInterval == nil || *cfg.HeartbeatInterval != 5*time.Minute {
		t.Errorf("monitoring keys: addr %q, heartbeat %q every %v", cfg.Addr, cfg.HeartbeatURL, cfg.HeartbeatInterval)
	}
	// exec and restore-if-db-not-exists are Litestream's, and walship's.
	if cfg.Exec != "myapp -port 8080" || !cfg.DBs[0].RestoreIfDBNotExists {
		t.Errorf("exec %q, restore-if-db-not-exists %v; want the file's", cfg.Exec, cfg.DBs[0].RestoreIfDBNotExists)
	}
	for _, w := range cfg.Warnings {
		s := w.String()
		if !strings.HasPrefix(s, fmt.Sprintf("litestream.yml:%d: %s: ", w.Line, w.Key)) || strings.Contains(s, "SECRETUUID") {
			t.Errorf("warning %q", s)
		}
	}
	if w := cfg.Warnings[len(cfg.Warnings)-1]; !strings.Contains(w.Msg, "applies to sftp and nats replicas, not to this s3 replica") {
		t.Errorf("host on an s3 replica: %q", w.Msg)
	}

	// S3's ignored keys on a replica of another kind say what they are.
	cfg, err = Parse("t.yml", []byte("dbs:\n  - path: /a.db\n    replica:\n      url: oss://b/a\n      sign-payload: true\n"), false)
	if err != nil || len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].Msg, "has no effect in walship: walship leaves the signing of requests to the AWS SDK") {
		t.Errorf("sign-payload on an oss replica: %v, %v", cfg.Warnings, err)
	}
}

// Replica settings written at the top level apply, as in Litestream, to
// every replica that reads them and does not set its own.
func TestTopLevelReplicaSettings(t *testing.T) {
	cfg, err := Parse("t.yml", []byte(`region: eu-west-1
endpoint: https://s3.example.com
sync-interval: 10s
validation-interval: 6h
access-key-id: AKIA
secret-access-key: shh
key-path: /etc/walship/id
dbs:
  - path: /a.db
    replica:
      url: s3://bkt/a
      region: us-east-2
  - path: /b.db
    replicas:
      - url: file:///backups/b
        sync-interval: 1s
      - url: oss://bkt/b
`), false)
	if err != nil {
		t.Fatal(err)
	}
	a, file, oss := cfg.DBs[0].Replica, cfg.DBs[1].Replicas[0], cfg.DBs[1].Replicas[1]
	if a.Extra["region"] != "us-east-2" || a.Extra["endpoint"] != "https://s3.example.com" || a.Extra["access-key-id"] != "AKIA" || a.Extra["key-path"] != "" {
		t.Errorf("s3 replica: %v", a.Extra)
	}
	if *a.SyncInterval != 10*time.Second || *a.ValidationInterval != 6*time.Hour {
		t.Errorf("s3 replica: sync-interval %v, validation-interval %v", a.SyncInterval, a.ValidationInterval)
	}
	if file.Extra != nil || *file.SyncInterval != time.Second {
		t.Errorf("file replica: %v, sync-interval %v", file.Extra, file.SyncInterval)
	}
	if oss.Extra["region"] != "eu-west-1" || oss.Extra["secret-access-key"] != "shh" {
		t.Errorf("oss replica: %v", oss.Extra)
	}
	if cfg.AccessKeyID != "AKIA" || cfg.SecretAccessKey != "shh" {
		t.Errorf("top-level credentials %q %q", cfg.AccessKeyID, cfg.SecretAccessKey)
	}
	// No replica reads key-path. The oss replica took the top-level
	// sync-interval, which is not written on it: no warning for that.
	if got, want := warned(cfg), []string{"7 key-path"}; !slices.Equal(got, want) {
		t.Errorf("warnings %q, want %q", got, want)
	}
	if !strings.Contains(cfg.Warnings[0].Msg, "sftp replicas") {
		t.Errorf("key-path warning: %q", cfg.Warnings[0].Msg)
	}
}

// Litestream's directory replication: the entry is kept in Dirs, with its
// keys; each database found in it gets the entry with its own replica
// path and staging directory. A key of it on an entry of one database
// has no effect, with a warning; so has restore-if-db-not-exists on a
// directory (Litestream ignores it there too).
func TestDirectoryEntry(t *testing.T) {
	cfg, err := Parse("t.yml", []byte(`dbs:
  - dir: /var/lib/tenants
    pattern: "*.db"
    recursive: true
    watch: true
    meta-dir: /var/lib/meta
    replica:
      url: s3://bkt/tenants
  - path: /var/lib/app.db
    pattern: "*.db"
    replica:
      url: file:///backups/app
  - dir: /var/lib/flat
    pattern: "*.sqlite"
    watch: false
    restore-if-db-not-exists: true
    replicas:
      - type: file
        path: /backups/flat
`), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.DBs) != 1 || cfg.DBs[0].Path != "/var/lib/app.db" {
		t.Fatalf("databases: %+v", cfg.DBs)
	}
	if len(cfg.Dirs) != 2 || cfg.Dirs[0].Dir != "/var/lib/tenants" || cfg.Dirs[0].Pattern != "*.db" || !cfg.Dirs[0].Recursive || cfg.Dirs[1].Recursive {
		t.Fatalf("directories: %+v", cfg.Dirs)
	}
	if got, want := warned(cfg), []string{"10 dbs[1].pattern", "15 dbs[2].watch", "16 dbs[2].restore-if-db-not-exists"}; !slices.Equal(got, want) {
		t.Fatalf("warnings %q, want %q", got, want)
	}
	db := cfg.Database("/var/lib/tenants/eu/acme.db")
	if db == nil || db.Path != "/var/lib/tenants/eu/acme.db" || db.Replica.URL != "s3://bkt/tenants/eu/acme.db" || db.MetaPath != "/var/lib/meta/eu/.acme.db-walship" {
		t.Fatalf("database of the directory: %+v", db)
	}
	db = cfg.Database("/var/lib/flat/a.sqlite")
	if db == nil || db.Replicas[0].Path != "/backups/flat/a.sqlite" || db.MetaPath != "" {
		t.Fatalf("database of the flat directory: %+v", db)
	}
	for _, p := range []string{"/var/lib/flat/sub/a.sqlite", "/var/lib/flat/a.db", "/var/lib/flat/a.sqlite-wal", "/var/lib/other/a.db", "/var/lib/tenants/../x.db"} {
		if db := cfg.Database(p); db != nil {
			t.Errorf("%s is found as a database of the config: %+v", p, db)
		}
	}
	if cfg.Dirs[0].Replica.URL != "s3://bkt/tenants" {
		t.Errorf("the directory's own replica changed: %s", cfg.Dirs[0].Replica.URL)
	}
}

// A database's snapshot settings are Litestream's: they apply to every
// database unless the top level sets them.
func TestDatabaseSnapshot(t *testing.T) {
	cfg, err := Parse("t.yml", []byte("dbs:\n  - path: /a.db\n    snapshot:\n      interval: 1h\n      retention: 72h\n  - path: /b.db\n    snapshot:\n      interval: 1h\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	if *cfg.Snapshot.Interval != time.Hour || *cfg.Snapshot.Retention != 72*time.Hour || len(cfg.Warnings) != 0 {
		t.Errorf("snapshot %s/%s, warnings %v", cfg.Snapshot.Interval, cfg.Snapshot.Retention, cfg.Warnings)
	}
	cfg, err = Parse("t.yml", []byte("snapshot:\n  interval: 24h\ndbs:\n  - path: /a.db\n    snapshot:\n      interval: 1h\n      retention: 72h\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	if *cfg.Snapshot.Interval != 24*time.Hour || *cfg.Snapshot.Retention != 72*time.Hour {
		t.Errorf("snapshot %s/%s", cfg.Snapshot.Interval, cfg.Snapshot.Retention)
	}
	if got := warned(cfg); !slices.Equal(got, []string{"5 dbs[0].snapshot.interval"}) {
		t.Errorf("warnings %q", got)
	}
}

func TestLitestreamValues(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	cfg, err := Parse("t.yml", []byte(`shutdown-sync-timeout: 0
dbs:
  - path: sqlite:///var/lib/a.db
    meta-path: /tmp/meta-${PID}
    replica:
      type: oss
      bucket: bkt
      path: a
      access-key-id: id
      access-key-secret: secret
  - path: sqlite3://~/b.db
    replica:
      url: webdavs://dav.example.com/b
`), true)
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.ShutdownSyncTimeout; d == nil || *d != 0 {
		t.Errorf("shutdown-sync-timeout %v", d)
	}
	if a := cfg.DBs[0]; a.Path != "/var/lib/a.db" || a.MetaPath != "/tmp/meta-"+strconv.Itoa(os.Getpid()) {
		t.Errorf("path %q, meta-path %q", a.Path, a.MetaPath)
	}
	if b := cfg.DBs[1]; b.Path != filepath.Join("/home/u", "b.db") {
		t.Errorf("path %q", b.Path)
	}
	if r := cfg.DBs[0].Replica; r.Backend() != "oss" || len(cfg.Warnings) != 0 {
		t.Errorf("oss replica: %s, warnings %v", r.Backend(), cfg.Warnings)
	}
}

func TestPathLookup(t *testing.T) {
	tests := []struct {
		explicit      string
		env           map[string]string
		defaultExists bool
		want          string
	}{
		{"", nil, false, DefaultPath},
		{"", map[string]string{LitestreamPathEnv: "/etc/ls.yml"}, false, "/etc/ls.yml"},
		{"", map[string]string{LitestreamPathEnv: "/etc/ls.yml"}, true, DefaultPath},
		{"", map[string]string{LitestreamPathEnv: "/etc/ls.yml", PathEnv: "/etc/w.yml"}, false, "/etc/w.yml"},
		{"/x.yml", map[string]string{LitestreamPathEnv: "/etc/ls.yml", PathEnv: "/etc/w.yml"}, true, "/x.yml"},
	}
	for _, tt := range tests {
		got := pathFrom(tt.explicit, func(k string) string { return tt.env[k] }, func(p string) bool { return p == DefaultPath && tt.defaultExists })
		if got != tt.want {
			t.Errorf("%q %v default exists %v: %q, want %q", tt.explicit, tt.env, tt.defaultExists, got, tt.want)
		}
	}
	if h := LitestreamHint("/somewhere.yml"); h != "" {
		t.Errorf("hint for a path that is not the default: %q", h)
	}
}
