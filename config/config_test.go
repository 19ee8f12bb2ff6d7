package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeConfig writes content to a fresh walship.yml in a temporary
// directory and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "walship.yml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func dur(d time.Duration) *time.Duration { return &d }
func intp(n int) *int                    { return &n }
func int64p(n int64) *int64              { return &n }
func boolp(b bool) *bool                 { return &b }

// topLevel formats cfg's top-level settings, dereferencing pointers, for
// test messages.
func topLevel(cfg *Config) string {
	deref := func(v any) string {
		switch p := v.(type) {
		case *time.Duration:
			if p != nil {
				return p.String()
			}
		case *int64:
			if p != nil {
				return fmt.Sprint(*p)
			}
		case *bool:
			if p != nil {
				return fmt.Sprint(*p)
			}
		}
		return "nil"
	}
	return fmt.Sprintf("{Levels:%+v Snapshot:{Interval:%s Retention:%s} L0Retention:%s L0RetentionCheckInterval:%s Retention:{Enabled:%s} MaxLocalBytes:%s Logging:{Level:%s Type:%s Stderr:%s Source:%s} Warnings:%+v}",
		cfg.Levels, deref(cfg.Snapshot.Interval), deref(cfg.Snapshot.Retention), deref(cfg.L0Retention),
		deref(cfg.L0RetentionCheckInterval), deref(cfg.Retention.Enabled), deref(cfg.MaxLocalBytes),
		cfg.Logging.Level, cfg.Logging.Type, deref(cfg.Logging.Stderr), deref(cfg.Logging.Source), cfg.Warnings)
}

func TestPath(t *testing.T) {
	tests := []struct {
		name     string
		explicit string
		env      string
		want     string
	}{
		{"default", "", "", DefaultPath},
		{"env", "", "/srv/env.yml", "/srv/env.yml"},
		{"explicit beats env", "/srv/flag.yml", "/srv/env.yml", "/srv/flag.yml"},
		{"explicit without env", "relative.yml", "", "relative.yml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(PathEnv, tt.env)
			if got := Path(tt.explicit); got != tt.want {
				t.Errorf("Path(%q) with %s=%q = %q, want %q", tt.explicit, PathEnv, tt.env, got, tt.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yml")
	_, err := Load(path, true)
	if err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v does not wrap fs.ErrNotExist", err)
	}
	for _, want := range []string{path, "not found", "-config", "WALSHIP_CONFIG"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestLoadUnreadable(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir, true) // a directory cannot be read as a file
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Load(directory) error = %v, want one naming %s", err, dir)
	}
}

func TestParseUsesName(t *testing.T) {
	_, err := Parse("inline.yml", []byte("dbs:\n  - path: /a.db\n    bogus: 1\n"), false)
	if err == nil || !strings.HasPrefix(err.Error(), "inline.yml:3: ") {
		t.Fatalf("Parse error = %v, want it to start with inline.yml:3:", err)
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name string
		yaml string
	}{
		{"empty file", ""},
		{"only comments", "# nothing yet\n"},
		{"null values", "dbs:\nlogging:\n"},
		{"null top-level settings", "levels:\nsnapshot:\nl0-retention:\nl0-retention-check-interval:\nretention:\nmax-local-bytes:\n"},
		{"empty mappings", "snapshot: {}\nretention: {}\n"},
		{"null nested settings", "snapshot:\n  interval:\n  retention: ~\nretention:\n  enabled:\n"},
		{"one bare db", "dbs:\n  - path: /tmp/a.db\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, tt.yaml), true)
			if err != nil {
				t.Fatal(err)
			}
			want := Logging{Level: "info", Type: "text"}
			if !reflect.DeepEqual(cfg.Logging, want) {
				t.Errorf("Logging = %+v, want %+v", cfg.Logging, want)
			}
			if len(cfg.Warnings) != 0 {
				t.Errorf("Warnings = %v, want none", cfg.Warnings)
			}
			if cfg.Levels != nil || cfg.Snapshot != (Snapshot{}) || cfg.L0Retention != nil ||
				cfg.L0RetentionCheckInterval != nil || cfg.Retention != (Retention{}) || cfg.MaxLocalBytes != nil {
				t.Errorf("unset top-level options are not nil: %+v", cfg)
			}
			for _, db := range cfg.DBs {
				if db.SyncInterval != nil || db.CheckpointInterval != nil || db.BusyTimeout != nil ||
					db.MonitorInterval != nil || db.MinCheckpointPageN != nil || db.TruncatePageN != nil ||
					db.MaxLocalBytes != nil {
					t.Errorf("unset options are not nil: %+v", db)
				}
				if db.MetaPath != "" || db.Replica != nil || db.Replicas != nil || len(db.AllReplicas()) != 0 {
					t.Errorf("unexpected replicas or meta-path: %+v", db)
				}
			}
		})
	}
}

func TestZeroDurations(t *testing.T) {
	tests := []struct {
		name  string
		value string
	}{
		{"bare integer", "0"},
		{"zero seconds", "0s"},
		{"quoted zero", `"0"`},
		{"zero milliseconds", "0ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, fmt.Sprintf(
				"dbs:\n  - path: /tmp/a.db\n    sync-interval: %s\n    replica:\n      path: /b\n      sync-interval: %s\n", tt.value, tt.value)), true)
			if err != nil {
				t.Fatal(err)
			}
			db := cfg.DBs[0]
			if db.SyncInterval == nil || *db.SyncInterval != 0 {
				t.Errorf("db sync-interval = %v, want non-nil 0", db.SyncInterval)
			}
			if r := db.Replica; r.SyncInterval == nil || *r.SyncInterval != 0 {
				t.Errorf("replica sync-interval = %v, want non-nil 0", r.SyncInterval)
			}
		})
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("WALSHIP_TEST_DIR", "/srv/data")
	t.Setenv("WALSHIP_TEST_INTERVAL", "250ms")
	t.Setenv("WALSHIP_TEST_SECRET", "s3cr3t")
	content := `dbs:
  - path: ${WALSHIP_TEST_DIR}/app.db
    sync-interval: $WALSHIP_TEST_INTERVAL
    replica:
      url: s3://bucket/app$WALSHIP_TEST_UNSET_VAR
      secret-access-key: ${WALSHIP_TEST_SECRET}
`
	tests := []struct {
		name      string
		expand    bool
		wantErr   string
		wantPath  string
		wantURL   string
		wantKey   string
		wantEvery time.Duration
	}{
		{name: "expanded", expand: true, wantPath: "/srv/data/app.db", wantURL: "s3://bucket/app",
			wantKey: "s3cr3t", wantEvery: 250 * time.Millisecond},
		// Without expansion the interval is the literal "$WALSHIP_TEST_INTERVAL".
		{name: "not expanded", expand: false, wantErr: `:3: dbs[0].sync-interval: invalid duration "$WALSHIP_TEST_INTERVAL"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, content), tt.expand)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			db := cfg.DBs[0]
			if db.Path != tt.wantPath {
				t.Errorf("path = %q, want %q", db.Path, tt.wantPath)
			}
			if *db.SyncInterval != tt.wantEvery {
				t.Errorf("sync-interval = %v, want %v", *db.SyncInterval, tt.wantEvery)
			}
			if db.Replica.URL != tt.wantURL {
				t.Errorf("url = %q, want %q", db.Replica.URL, tt.wantURL)
			}
			if got := db.Replica.Extra["secret-access-key"]; got != tt.wantKey {
				t.Errorf("secret-access-key = %q, want %q", got, tt.wantKey)
			}
		})
	}

	// Without expansion, values are kept literally.
	cfg, err := Load(writeConfig(t, "dbs:\n  - path: /a.db\n    replica:\n      path: /b/$HOME\n      password: pa$$word\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.DBs[0].Replica; r.Path != "/b/$HOME" || r.Extra["password"] != "pa$$word" {
		t.Errorf("unexpanded replica = %+v, want literal $ values", r)
	}
}

func TestLocalPaths(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	work := t.TempDir()
	t.Chdir(work)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"home", "~/app.db", filepath.Join(home, "app.db")},
		{"relative", "data/app.db", filepath.Join(wd, "data", "app.db")},
		{"dot relative", "./app.db", filepath.Join(wd, "app.db")},
		{"absolute cleaned", "/srv//x/../app.db", "/srv/app.db"},
		{"tilde not at start", "data/~/app.db", filepath.Join(wd, "data", "~", "app.db")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, fmt.Sprintf(
				"dbs:\n  - path: %s\n    meta-path: %s-meta\n    replica:\n      path: ~/backups\n", tt.path, tt.path)), true)
			if err != nil {
				t.Fatal(err)
			}
			db := cfg.DBs[0]
			if db.Path != tt.want {
				t.Errorf("path = %q, want %q", db.Path, tt.want)
			}
			if db.MetaPath != tt.want+"-meta" {
				t.Errorf("meta-path = %q, want %q", db.MetaPath, tt.want+"-meta")
			}
			if db.Replica.Path != "~/backups" {
				t.Errorf("replica path = %q, want it kept as written", db.Replica.Path)
			}
		})
	}
}

func TestFullExample(t *testing.T) {
	path := writeConfig(t, `# walship configuration
addr: ":9090"
logging:
  level: DEBUG
  type: json
  stderr: true
snapshot:
  interval: 24h
  retention: 168h

replica-defaults: &defaults
dbs:
  - path: /var/lib/app/app.db
    meta-path: /var/lib/app/.app.db-walship
    sync-interval: 500ms
    checkpoint-interval: 1m
    min-checkpoint-page-count: 1000
    truncate-page-n: 121359
    busy-timeout: 1s
    monitor-interval: 1s
    replica:
      type: file
      url: file:///backups/app
  - path: /var/lib/users.db
    replicas:
      - &s3
        name: s3
        type: s3
        url: s3://bucket/users
        region: eu-west-1
        force-path-style: true
        part-size: 5MB
        concurrency: 4
        access-key-id: AKIA
        secret-access-key: shh
      - <<: *s3
        name: s3-backup
        url: s3://backup-bucket/users
        sync-interval: 10s
      - name: local
        path: /backups/users
  - path: /var/lib/empty.db
    max-local-bytes: 256 MiB
levels:
  - interval: 30s
  - interval: 5m
  - interval: 1h
l0-retention: 5m
l0-retention-check-interval: 15s
retention:
  enabled: false
max-local-bytes: 2GB
mcp-addr: ":3001"
`)
	// replica-defaults is not a valid key: make sure that is the only
	// problem, then load the file without it.
	if _, err := Load(path, true); err == nil || !strings.Contains(err.Error(), path+`:11: unknown key "replica-defaults" at top level`) {
		t.Fatalf("error = %v, want unknown replica-defaults at line 11", err)
	} else if strings.Count(err.Error(), "\n") != 0 {
		t.Fatalf("more than one problem reported:\n%v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), "replica-defaults: &defaults\n", "\n", 1))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	cfg, err := Load(path, true)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Addr:    ":9090",
		Logging: Logging{Level: "debug", Type: "json", Stderr: boolp(true)},
		Levels: []Level{
			{Interval: 30 * time.Second, Line: 45},
			{Interval: 5 * time.Minute, Line: 46},
			{Interval: time.Hour, Line: 47},
		},
		Snapshot:                 Snapshot{Interval: dur(24 * time.Hour), Retention: dur(168 * time.Hour)},
		L0Retention:              dur(5 * time.Minute),
		L0RetentionCheckInterval: dur(15 * time.Second),
		Retention:                Retention{Enabled: boolp(false)},
		MaxLocalBytes:            int64p(2_000_000_000),
		DBs: []*DB{
			{
				Path:               "/var/lib/app/app.db",
				MetaPath:           "/var/lib/app/.app.db-walship",
				SyncInterval:       dur(500 * time.Millisecond),
				CheckpointInterval: dur(time.Minute),
				MinCheckpointPageN: intp(1000),
				TruncatePageN:      intp(121359),
				BusyTimeout:        dur(time.Second),
				MonitorInterval:    dur(time.Second),
				Replica:            &Replica{Type: "file", URL: "file:///backups/app", Line: 22},
				Line:               13,
			},
			{
				Path: "/var/lib/users.db",
				Replicas: []*Replica{
					{Name: "s3", Type: "s3", URL: "s3://bucket/users", Line: 26, Extra: map[string]string{
						"region": "eu-west-1", "force-path-style": "true", "part-size": "5MB", "concurrency": "4",
						"access-key-id": "AKIA", "secret-access-key": "shh",
					}},
					{Name: "s3-backup", Type: "s3", URL: "s3://backup-bucket/users", SyncInterval: dur(10 * time.Second), Line: 36,
						Extra: map[string]string{
							"region": "eu-west-1", "force-path-style": "true", "part-size": "5MB", "concurrency": "4",
							"access-key-id": "AKIA", "secret-access-key": "shh",
						}},
					{Name: "local", Path: "/backups/users", Line: 40},
				},
				Line: 24,
			},
			{Path: "/var/lib/empty.db", MaxLocalBytes: int64p(256 << 20), Line: 42},
		},
	}
	if !reflect.DeepEqual(cfg.Logging, want.Logging) {
		t.Errorf("Logging = %+v, want %+v", cfg.Logging, want.Logging)
	}
	var warned []string
	for _, w := range cfg.Warnings {
		warned = append(warned, fmt.Sprintf("%d %s", w.Line, w.Key))
	}
	if want := []string{"20 dbs[0].monitor-interval", "39 dbs[1].replicas[1].sync-interval", "53 mcp-addr"}; !reflect.DeepEqual(warned, want) {
		t.Errorf("warnings %q, want %q", warned, want)
	}
	gotTop, wantTop := *cfg, *want
	gotTop.Warnings = nil
	gotTop.DBs, wantTop.DBs = nil, nil
	if !reflect.DeepEqual(gotTop, wantTop) {
		t.Errorf("top-level settings = %s, want %s", topLevel(&gotTop), topLevel(&wantTop))
	}
	if len(cfg.DBs) != len(want.DBs) {
		t.Fatalf("got %d dbs, want %d", len(cfg.DBs), len(want.DBs))
	}
	for i := range want.DBs {
		got, w := cfg.DBs[i], want.DBs[i]
		gr, wr := got.AllReplicas(), w.AllReplicas()
		if len(gr) != len(wr) {
			t.Errorf("dbs[%d]: got %d replicas, want %d", i, len(gr), len(wr))
			continue
		}
		for j := range wr {
			if !reflect.DeepEqual(gr[j], wr[j]) {
				t.Errorf("dbs[%d] replica %d = %+v, want %+v", i, j, gr[j], wr[j])
			}
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("dbs[%d] = %+v, want %+v", i, got, w)
		}
	}
}

func TestAllReplicas(t *testing.T) {
	a, b, c := &Replica{Name: "a"}, &Replica{Name: "b"}, &Replica{Name: "c"}
	tests := []struct {
		name string
		db   DB
		want []*Replica
	}{
		{"none", DB{}, nil},
		{"single", DB{Replica: a}, []*Replica{a}},
		{"list", DB{Replicas: []*Replica{b, c}}, []*Replica{b, c}},
		{"both", DB{Replica: a, Replicas: []*Replica{b, c}}, []*Replica{a, b, c}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.db.AllReplicas(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("AllReplicas() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestReplicaNames: every replica of a database gets a distinct name,
// what it logs, verifies and is scheduled by: a written name first, then
// its type, then the type numbered.
func TestReplicaNames(t *testing.T) {
	s3 := func(name string) *Replica { return &Replica{Name: name, URL: "s3://b/p"} }
	file := &Replica{Path: "/backups/app"}
	tests := []struct {
		name string
		db   DB
		want []string
	}{
		{"one", DB{Replica: s3("")}, []string{"s3"}},
		{"named", DB{Replicas: []*Replica{s3("east"), s3("west")}}, []string{"east", "west"}},
		{"two unnamed", DB{Replicas: []*Replica{s3(""), s3("")}}, []string{"s3", "s3#2"}},
		{"types", DB{Replicas: []*Replica{s3(""), file, s3("")}}, []string{"s3", "file", "s3#2"}},
		{"a written name wins", DB{Replicas: []*Replica{s3(""), s3("s3")}}, []string{"s3#2", "s3"}},
		{"numbers taken", DB{Replicas: []*Replica{s3(""), s3("s3#2"), s3("")}}, []string{"s3", "s3#2", "s3#3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.db.ReplicaNames(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ReplicaNames() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoggingNormalization(t *testing.T) {
	tests := []struct {
		yaml string
		want Logging
	}{
		{"logging:\n  level: WARNING\n", Logging{Level: "warn", Type: "text"}},
		{"logging:\n  level: Error\n  type: JSON\n", Logging{Level: "error", Type: "json"}},
		{"logging:\n  stderr: false\n", Logging{Level: "info", Type: "text", Stderr: boolp(false)}},
		{"logging: {level: debug, stderr: yes}\n", Logging{Level: "debug", Type: "text", Stderr: boolp(true)}},
		{"logging: {level: trace, type: pretty, source: true}\n", Logging{Level: "debug", Type: "text", Source: boolp(true)}},
		{"logging: {level: verbose}\n", Logging{Level: "info", Type: "text"}},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, tt.yaml), true)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Logging, tt.want) {
				t.Errorf("Logging = %+v, want %+v", cfg.Logging, tt.want)
			}
		})
	}
}

func TestLevels(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []Level
	}{
		{"unset", "dbs: []\n", nil},
		{"null", "levels:\n", nil},
		{"one level", "levels:\n  - interval: 5m\n", []Level{{5 * time.Minute, 2}}},
		{
			"Litestream defaults",
			"levels:\n  - interval: 30s\n  - interval: 5m\n  - interval: 1h\n",
			[]Level{{30 * time.Second, 2}, {5 * time.Minute, 3}, {time.Hour, 4}},
		},
		{
			"flow style",
			"levels: [{interval: 500ms}, {interval: 1s}]\n",
			[]Level{{500 * time.Millisecond, 1}, {time.Second, 1}},
		},
		{
			"mixed units, strictly increasing",
			"levels:\n  - interval: 59s\n  - interval: 1m\n  - interval: 1m0.5s\n  - interval: 90m\n  - interval: 2h\n",
			[]Level{{59 * time.Second, 2}, {time.Minute, 3}, {time.Minute + 500*time.Millisecond, 4}, {90 * time.Minute, 5}, {2 * time.Hour, 6}},
		},
		{
			"eight levels",
			"levels:\n  - interval: 1s\n  - interval: 2s\n  - interval: 3s\n  - interval: 4s\n" +
				"  - interval: 5s\n  - interval: 6s\n  - interval: 7s\n  - interval: 8s\n",
			[]Level{
				{1 * time.Second, 2}, {2 * time.Second, 3}, {3 * time.Second, 4}, {4 * time.Second, 5},
				{5 * time.Second, 6}, {6 * time.Second, 7}, {7 * time.Second, 8}, {8 * time.Second, 9},
			},
		},
		{
			"anchor and merge",
			"levels:\n  - &l1\n    interval: 10s\n  - <<: *l1\n    interval: 1m\n",
			[]Level{{10 * time.Second, 2}, {time.Minute, 4}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, tt.yaml), true)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Levels, tt.want) {
				t.Errorf("Levels = %+v, want %+v", cfg.Levels, tt.want)
			}
			if len(cfg.Warnings) != 0 {
				t.Errorf("Warnings = %v, want none", cfg.Warnings)
			}
		})
	}
}

func TestSnapshot(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want Snapshot
	}{
		{"unset", "dbs: []\n", Snapshot{}},
		{"null", "snapshot:\n", Snapshot{}},
		{"both", "snapshot:\n  interval: 24h\n  retention: 168h\n", Snapshot{dur(24 * time.Hour), dur(168 * time.Hour)}},
		{"interval only", "snapshot:\n  interval: 6h\n", Snapshot{Interval: dur(6 * time.Hour)}},
		{"retention only", "snapshot:\n  retention: 720h\n", Snapshot{Retention: dur(720 * time.Hour)}},
		{"retention shorter than interval", "snapshot:\n  interval: 24h\n  retention: 1h\n", Snapshot{dur(24 * time.Hour), dur(time.Hour)}},
		{"flow style", "snapshot: {interval: 30m, retention: 90m}\n", Snapshot{dur(30 * time.Minute), dur(90 * time.Minute)}},
		{"sub-second", "snapshot:\n  interval: 1ms\n", Snapshot{Interval: dur(time.Millisecond)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, tt.yaml), true)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Snapshot, tt.want) {
				t.Errorf("Snapshot = {%s %s}, want {%s %s}", cfg.Snapshot.Interval, cfg.Snapshot.Retention,
					tt.want.Interval, tt.want.Retention)
			}
		})
	}
}

func TestL0Retention(t *testing.T) {
	tests := []struct {
		name            string
		yaml            string
		retention, each *time.Duration
	}{
		{"unset", "dbs: []\n", nil, nil},
		{"null", "l0-retention:\nl0-retention-check-interval:\n", nil, nil},
		{"both", "l0-retention: 5m\nl0-retention-check-interval: 15s\n", dur(5 * time.Minute), dur(15 * time.Second)},
		{"zero retention", "l0-retention: 0\n", dur(0), nil},
		{"check interval only", "l0-retention-check-interval: 1m30s\n", nil, dur(90 * time.Second)},
		{"check interval longer than retention", "l0-retention: 1s\nl0-retention-check-interval: 1h\n", dur(time.Second), dur(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, tt.yaml), true)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.L0Retention, tt.retention) {
				t.Errorf("L0Retention = %v, want %v", cfg.L0Retention, tt.retention)
			}
			if !reflect.DeepEqual(cfg.L0RetentionCheckInterval, tt.each) {
				t.Errorf("L0RetentionCheckInterval = %v, want %v", cfg.L0RetentionCheckInterval, tt.each)
			}
		})
	}
}

func TestRetention(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want *bool
	}{
		{"unset", "dbs: []\n", nil},
		{"null", "retention:\n", nil},
		{"empty mapping", "retention: {}\n", nil},
		{"null enabled", "retention:\n  enabled: ~\n", nil},
		{"enabled", "retention:\n  enabled: true\n", boolp(true)},
		{"disabled", "retention:\n  enabled: false\n", boolp(false)},
		{"yes", "retention: {enabled: yes}\n", boolp(true)},
		{"off", "retention:\n  enabled: off\n", boolp(false)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, tt.yaml), true)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Retention.Enabled, tt.want) {
				t.Errorf("Retention.Enabled = %s, want %s", fmtBool(cfg.Retention.Enabled), fmtBool(tt.want))
			}
		})
	}
}

func fmtBool(b *bool) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprint(*b)
}

func TestMaxLocalBytes(t *testing.T) {
	tests := []struct {
		value string
		want  int64
	}{
		{"1073741824", 1 << 30},
		{"1", 1},
		{`"4096"`, 4096},
		{"0x400", 1024},
		{"9223372036854775807", math.MaxInt64},
		{"1B", 1},
		{"10 b", 10},
		{"1KB", 1_000},
		{"2kb", 2_000},
		{"3 Kb", 3_000},
		{"512MB", 512_000_000},
		{"512 mb", 512_000_000},
		{"2GB", 2_000_000_000},
		{"2gB", 2_000_000_000},
		{"1TB", 1_000_000_000_000},
		{"9tb", 9_000_000_000_000},
		{"1KiB", 1 << 10},
		{"4 kib", 4 << 10},
		{"1MiB", 1 << 20},
		{"256mib", 256 << 20},
		{"1GiB", 1 << 30},
		{"1 GIB", 1 << 30},
		{"1536MiB", 1536 << 20},
		{"1TiB", 1 << 40},
		{"2 tib", 2 << 40},
		{"8388607TiB", 8388607 << 40},
		{`" 2GB "`, 2_000_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			// The same value at the top level and for one database; the
			// other database inherits nothing at parse time.
			cfg, err := Load(writeConfig(t, fmt.Sprintf(
				"max-local-bytes: %s\ndbs:\n  - path: /tmp/a.db\n    max-local-bytes: %s\n  - path: /tmp/b.db\n", tt.value, tt.value)), true)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MaxLocalBytes == nil || *cfg.MaxLocalBytes != tt.want {
				t.Errorf("max-local-bytes = %v, want %d", fmtInt64(cfg.MaxLocalBytes), tt.want)
			}
			if got := cfg.DBs[0].MaxLocalBytes; got == nil || *got != tt.want {
				t.Errorf("dbs[0].max-local-bytes = %v, want %d", fmtInt64(got), tt.want)
			}
			if got := cfg.DBs[1].MaxLocalBytes; got != nil {
				t.Errorf("dbs[1].max-local-bytes = %d, want nil", *got)
			}
		})
	}
}

func fmtInt64(n *int64) string {
	if n == nil {
		return "nil"
	}
	return fmt.Sprint(*n)
}

func TestMaxLocalBytesPerDatabase(t *testing.T) {
	cfg, err := Load(writeConfig(t, `dbs:
  - path: /tmp/a.db
    max-local-bytes: 100MB
  - path: /tmp/b.db
max-local-bytes: 1GiB
`), true)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmtInt64(cfg.MaxLocalBytes); got != "1073741824" {
		t.Errorf("max-local-bytes = %s, want 1073741824", got)
	}
	if got := fmtInt64(cfg.DBs[0].MaxLocalBytes); got != "100000000" {
		t.Errorf("dbs[0].max-local-bytes = %s, want 100000000", got)
	}
	if got := fmtInt64(cfg.DBs[1].MaxLocalBytes); got != "nil" {
		t.Errorf("dbs[1].max-local-bytes = %s, want nil", got)
	}
}

func TestIgnoredTopKeys(t *testing.T) {
	cfg, err := Load(writeConfig(t, `addr: ":9090"
levels:
  - interval: 1m
mcp-addr: ":3001"
snapshot:
  interval: 1h
access-key-id: AKIA
secret-access-key: shh
retention:
  enabled: true
l0-retention: 1m
`), true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, fmt.Sprintf("%s:%d %s", w.File, w.Line, w.Key))
	}
	// The credentials are a default for S3 replicas, and there is none.
	want := []string{cfg.Warnings[0].File + ":4 mcp-addr",
		cfg.Warnings[0].File + ":7 access-key-id", cfg.Warnings[0].File + ":8 secret-access-key"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings %q, want %q", got, want)
	}
	if cfg.AccessKeyID != "AKIA" || cfg.SecretAccessKey != "shh" {
		t.Errorf("access-key-id %q, secret-access-key %q; want AKIA, shh", cfg.AccessKeyID, cfg.SecretAccessKey)
	}
}

func TestReplicaBackendKeys(t *testing.T) {
	cfg, err := Load(writeConfig(t, `dbs:
  - path: /a.db
    replica:
      type: nats
      bucket: b
      root-cas:
        - /etc/ca1.pem
        - /etc/ca2.pem
      creds: /etc/nats.creds
`), true)
	if err != nil {
		t.Fatal(err)
	}
	extra := cfg.DBs[0].Replica.Extra
	if extra["root-cas"] != "/etc/ca1.pem,/etc/ca2.pem" || extra["creds"] != "/etc/nats.creds" || extra["bucket"] != "b" {
		t.Fatalf("Extra = %v", extra)
	}
}

func TestMaxCheckpointPageCount(t *testing.T) {
	cfg, err := Parse("test.yml", []byte("dbs:\n  - path: /tmp/a.db\n    max-checkpoint-page-count: 20000\n    replica:\n      path: /tmp/r\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	if n := cfg.DBs[0].MaxCheckpointPageN; n == nil || *n != 20000 {
		t.Fatalf("max-checkpoint-page-count = %v; want 20000", n)
	}
	_, err = Parse("test.yml", []byte("dbs:\n  - path: /tmp/a.db\n    max-checkpoint-page-count: -5\n"), false)
	if err == nil || !strings.Contains(err.Error(), "test.yml:3:") || !strings.Contains(err.Error(), "max-checkpoint-page-count") {
		t.Fatalf("a negative count: %v", err)
	}
}

// TestDistinctDestinations: databases may share a bucket or a directory,
// only not a replica path on one store.
func TestDistinctDestinations(t *testing.T) {
	yaml := `dbs:
  - path: /tmp/a.db
    replica:
      url: s3://bkt/a?endpoint=http://127.0.0.1:9000
  - path: /tmp/b.db
    replica:
      url: s3://bkt/b?endpoint=http://127.0.0.1:9000
  - path: /tmp/c.db
    replica:
      url: s3://bkt/a?endpoint=http://127.0.0.1:9001
  - path: /tmp/d.db
    replicas:
      - path: /backups/d
      - path: /backups/d2
  - path: /tmp/e.db
    replica:
      url: abs://account1@backups/app
  - path: /tmp/f.db
    replica:
      url: abs://account2@backups/app
  - path: /tmp/g.db
    replica:
      type: abs
      account-name: account3
      bucket: backups
      path: app
`
	cfg, err := Parse("walship.yml", []byte(yaml), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.DBs) != 7 {
		t.Fatalf("parsed %d databases", len(cfg.DBs))
	}
}

func TestValidationInterval(t *testing.T) {
	cfg, err := Parse("walship.yml", []byte("dbs:\n  - path: /tmp/a.db\n    replica:\n      url: file:///backups/a\n      validation-interval: 6h\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.DBs[0].Replica
	if r.ValidationInterval == nil || *r.ValidationInterval != 6*time.Hour {
		t.Fatalf("ValidationInterval = %v, want 6h", r.ValidationInterval)
	}
	if _, ok := r.Extra["validation-interval"]; ok {
		t.Fatal("validation-interval is also kept as an unused extra key")
	}
	// Zero is never, as Litestream takes it.
	cfg, err = Parse("walship.yml", []byte("dbs:\n  - path: /tmp/a.db\n    replica:\n      url: file:///backups/a\n      validation-interval: 0s\n"), false)
	if err != nil || *cfg.DBs[0].Replica.ValidationInterval != 0 {
		t.Fatalf("a zero validation-interval: %v", err)
	}
	_, err = Parse("walship.yml", []byte("dbs:\n  - path: /tmp/a.db\n    replica:\n      url: file:///backups/a\n      validation-interval: -1s\n"), false)
	if err == nil || !strings.Contains(err.Error(), "validation-interval") {
		t.Fatalf("a negative validation-interval: %v", err)
	}
}

func TestAuditInterval(t *testing.T) {
	for _, tc := range []struct {
		val  string
		want *time.Duration
		err  string
	}{
		{"", nil, ""},
		{"audit-interval: 1m", ptr(time.Minute), ""},
		{"audit-interval: 0", ptr(time.Duration(0)), ""},
		{"audit-interval: -1m", nil, "audit-interval"},
		{"audit-interval: often", nil, "audit-interval"},
	} {
		cfg, err := Parse("walship.yml", []byte("dbs:\n  - path: /tmp/a.db\n    replica:\n      url: file:///backups/a\n      "+tc.val+"\n"), false)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v; want an error naming %s", tc.val, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.val, err)
		}
		got := cfg.DBs[0].Replica.AuditInterval
		if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("%q: AuditInterval = %v; want %v", tc.val, got, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestLitestreamCompatible(t *testing.T) {
	for _, tc := range []struct {
		val  string
		want *bool
		err  string
	}{
		{"", nil, ""},
		{"litestream-compatible: true", ptr(true), ""},
		{"litestream-compatible: false", ptr(false), ""},
		{"litestream-compatible: yes please", nil, "litestream-compatible"},
	} {
		cfg, err := Parse("walship.yml", []byte("dbs:\n  - path: /tmp/a.db\n    replica:\n      url: file:///backups/a\n      "+tc.val+"\n"), false)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v; want an error naming %s", tc.val, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.val, err)
		}
		got := cfg.DBs[0].Replica.LitestreamCompatible
		if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("%q: LitestreamCompatible = %v; want %v", tc.val, got, tc.want)
		}
	}
}

// The monitoring keys: addr and the heartbeat's (Litestream's), and
// health-max-lag (walship's), which must be positive.
func TestMonitoringKeys(t *testing.T) {
	cfg, err := Parse("t.yml", []byte("addr: 127.0.0.1:9090\nhealth-max-lag: 30s\nheartbeat-url: https://hc-ping.com/SECRET\nheartbeat-interval: 1m\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9090" || cfg.HealthMaxLag == nil || *cfg.HealthMaxLag != 30*time.Second ||
		cfg.HeartbeatURL != "https://hc-ping.com/SECRET" || cfg.HeartbeatInterval == nil || *cfg.HeartbeatInterval != time.Minute || len(cfg.Warnings) != 0 {
		t.Errorf("parsed %+v", cfg)
	}
	for _, bad := range []string{"health-max-lag: 0\n", "heartbeat-interval: 0s\n", "heartbeat-url: [https://hc-ping.com/SECRET]\n"} {
		_, err := Parse("t.yml", []byte(bad), false)
		if err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
