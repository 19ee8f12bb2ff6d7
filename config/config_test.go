package config

import (
	"errors"
	"fmt"
	"io/fs"
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

// TestLoadErrors checks every validation error: each must name the file,
// the line and the key.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		line    int
		key     string   // must appear in the message
		also    []string // further substrings expected
		notWant []string // substrings that must not appear
	}{
		{
			name: "yaml syntax error",
			yaml: "logging:\n  level: info\n  type: text: json\n",
			line: 3, key: "invalid YAML",
		},
		{
			name: "tab indentation",
			yaml: "dbs:\n  - path: /tmp/a.db\n\tsync-interval: 1s\n",
			line: 3, key: "invalid YAML", also: []string{"tab"},
		},
		{
			name: "unterminated flow list",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replicas: [\n",
			line: 3, key: "invalid YAML",
		},
		{
			// yaml.v3 itself blames line 1 here.
			name: "misindented key",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replica:\n      url: file:///a\n     type: file\n",
			line: 5, key: "invalid YAML", notWant: []string{"tab"},
		},
		{
			name: "unknown alias",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replica: *nope\n",
			line: 3, key: "invalid YAML", also: []string{"nope"},
		},
		{
			name: "unknown top-level key",
			yaml: "dbs: []\nfoo: 1\n",
			line: 2, key: `unknown key "foo" at top level`, also: []string{"check spelling", "valid keys here: "},
		},
		{
			name: "db key at top level",
			yaml: "path: /tmp/a.db\n",
			line: 1, key: `unknown key "path" at top level`, also: []string{"database setting", "dbs:"},
		},
		{
			name: "unknown logging key",
			yaml: "logging:\n  level: debug\n  levle: info\n",
			line: 3, key: `unknown key "levle" in logging`, also: []string{`did you mean "level"?`},
		},
		{
			name: "unknown db key",
			yaml: "dbs:\n  - path: /tmp/a.db\n    sync-intervl: 1s\n",
			line: 3, key: `unknown key "sync-intervl" in dbs[0]`, also: []string{"check spelling", `did you mean "sync-interval"?`},
		},
		{
			name: "replica key at db level",
			yaml: "dbs:\n  - path: /tmp/a.db\n    url: file:///backups/a\n",
			line: 3, key: `unknown key "url" in dbs[0]`, also: []string{"replica setting"},
		},
		{
			name: "unknown replica key",
			yaml: "dbs:\n  - path: /tmp/a.db\n  - path: /tmp/b.db\n    replicas:\n      - url: file:///backups/b\n        foo: bar\n",
			line: 6, key: `unknown key "foo" in dbs[1].replicas[0]`,
		},
		{
			name: "unknown key in single replica",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replica:\n      url: file:///backups/a\n      regoin: eu\n",
			line: 5, key: `unknown key "regoin" in dbs[0].replica`, also: []string{`did you mean "region"?`},
		},
		{
			name: "db without path",
			yaml: "dbs:\n  - path: /tmp/a.db\n  - sync-interval: 1s\n    replica:\n      url: file:///b\n",
			line: 3, key: `dbs[1]: missing required key "path"`,
		},
		{
			name: "db with empty path",
			yaml: "dbs:\n  - path: \"\"\n",
			line: 2, key: `dbs[0]: missing required key "path"`,
		},
		{
			name: "db entry not a mapping",
			yaml: "dbs:\n  - /tmp/a.db\n",
			line: 2, key: "dbs[0]: each database must be a mapping", also: []string{"- path:"},
		},
		{
			name: "dbs not a list",
			yaml: "dbs:\n  path: /tmp/a.db\n",
			line: 1, key: "dbs: must be a list",
		},
		{
			name: "both replica and replicas",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replica:\n      url: file:///a\n    replicas:\n      - url: file:///b\n",
			line: 5, key: "dbs[0]: both replica (line 3) and replicas (line 5)",
		},
		{
			name: "duplicate db paths",
			yaml: "dbs:\n  - path: /tmp/x/a.db\n  - path: /tmp/y/b.db\n  - path: /tmp/x/../x/a.db\n",
			line: 4, key: "dbs[2].path: duplicate database path \"/tmp/x/a.db\"", also: []string{"dbs[0] at line 2"},
		},
		{
			name: "replica with neither url nor path",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replicas:\n      - url: file:///a\n      - name: second\n        type: file\n",
			line: 5, key: "dbs[0].replicas[1]: replica has neither url nor path",
		},
		{
			name: "replica with both url and path",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replica:\n      path: /backups/a\n      url: file:///backups/a\n",
			line: 5, key: "dbs[0].replica: replica has both url (line 5) and path (line 4)",
		},
		{
			name: "duplicate replica names",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replicas:\n      - name: r\n        url: file:///a\n      - name: r\n        path: /b\n",
			line: 6, key: `dbs[0]: duplicate replica name "r"`, also: []string{"line 4"},
		},
		{
			name: "invalid duration",
			yaml: "dbs:\n  - path: /tmp/a.db\n    sync-interval: fast\n",
			line: 3, key: `dbs[0].sync-interval: invalid duration "fast" (use a Go duration such as 1s or 500ms)`,
		},
		{
			name: "bare non-zero integer duration",
			yaml: "dbs:\n  - path: /tmp/a.db\n    checkpoint-interval: 60\n",
			line: 3, key: `dbs[0].checkpoint-interval: invalid duration "60"`, also: []string{"60s"},
		},
		{
			name: "duration in days",
			yaml: "dbs:\n  - path: /tmp/a.db\n    monitor-interval: 7d\n",
			line: 3, key: `dbs[0].monitor-interval: invalid duration "7d"`, also: []string{"24h"},
		},
		{
			name: "duration as a list",
			yaml: "dbs:\n  - path: /tmp/a.db\n    busy-timeout: [1s]\n",
			line: 3, key: "dbs[0].busy-timeout: must be a duration", also: []string{"not a list"},
		},
		{
			name: "negative sync-interval",
			yaml: "dbs:\n  - path: /tmp/a.db\n    sync-interval: -1s\n",
			line: 3, key: "dbs[0].sync-interval: duration must not be negative",
		},
		{
			name: "negative busy-timeout",
			yaml: "dbs:\n  - path: /tmp/a.db\n    busy-timeout: -5ms\n",
			line: 3, key: "dbs[0].busy-timeout: duration must not be negative",
		},
		{
			name: "negative replica sync-interval",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replica:\n      url: file:///a\n      sync-interval: -10s\n",
			line: 5, key: "dbs[0].replica.sync-interval: duration must not be negative",
		},
		{
			name: "negative min-checkpoint-page-count",
			yaml: "dbs:\n  - path: /tmp/a.db\n    min-checkpoint-page-count: -1\n",
			line: 3, key: "dbs[0].min-checkpoint-page-count: page count must not be negative",
		},
		{
			name: "negative truncate-page-n",
			yaml: "dbs:\n  - path: /tmp/a.db\n    truncate-page-n: -500\n",
			line: 3, key: "dbs[0].truncate-page-n: page count must not be negative",
		},
		{
			name: "page count not a number",
			yaml: "dbs:\n  - path: /tmp/a.db\n    truncate-page-n: 1.5\n",
			line: 3, key: `dbs[0].truncate-page-n: invalid number "1.5"`,
		},
		{
			name: "invalid logging level",
			yaml: "logging:\n  level: verbose\n",
			line: 2, key: `logging.level: invalid level "verbose"`, also: []string{"debug, info, warn or error"},
		},
		{
			name: "invalid logging type",
			yaml: "logging:\n  type: xml\n",
			line: 2, key: `logging.type: invalid type "xml"`, also: []string{"text or json"},
		},
		{
			name: "invalid logging stderr",
			yaml: "logging:\n  stderr: maybe\n",
			line: 2, key: `logging.stderr: invalid boolean "maybe"`,
		},
		{
			name: "logging not a mapping",
			yaml: "logging: debug\n",
			line: 1, key: "logging: must be a mapping",
		},
		{
			name: "duplicate key",
			yaml: "dbs:\n  - path: /tmp/a.db\n    sync-interval: 1s\n    sync-interval: 2s\n",
			line: 4, key: "dbs[0].sync-interval: duplicate key (already set at line 3)",
		},
		{
			name: "merge cycle",
			yaml: "dbs:\n  - &x\n    path: /tmp/a.db\n    <<: *x\n",
			line: 4, key: "dbs[0].<<: merges a mapping that contains this merge key",
		},
		{
			name: "merge of a scalar",
			yaml: "dbs:\n  - path: /tmp/a.db\n    <<: 5\n",
			line: 3, key: "dbs[0].<<: a merge key needs a mapping",
		},
		{
			name: "duplicate key in merged mapping reported once",
			yaml: "dbs:\n  - &x\n    path: /tmp/a.db\n    path: /tmp/b.db\n  - <<: *x\n    path: /tmp/c.db\n",
			line: 4, key: "dbs[0].path: duplicate key (already set at line 3)", notWant: []string{"dbs[1]"},
		},
		{
			name: "top level not a mapping",
			yaml: "- path: /tmp/a.db\n",
			line: 1, key: "top level must be a mapping",
		},
		{
			name: "several documents",
			yaml: "dbs: []\n---\nlogging: {}\n",
			line: 2, key: "more than one YAML document",
		},
		{
			name: "secret value not echoed",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replica:\n      url: s3://bucket/a\n      secret-access-key: {v: SUPERSECRET}\n",
			line: 5, key: "dbs[0].replica.secret-access-key: must be a single value", notWant: []string{"SUPERSECRET"},
		},
		{
			name: "password value not echoed",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replica:\n      url: sftp://host/a\n      password: [hunter2]\n",
			line: 5, key: "dbs[0].replica.password: must be a single value", notWant: []string{"hunter2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.yaml)
			cfg, err := Load(path, true)
			if err == nil {
				t.Fatalf("Load succeeded (%+v), want an error", cfg)
			}
			if cfg != nil {
				t.Errorf("Load returned a config along with error %v", err)
			}
			msg := err.Error()
			prefix := fmt.Sprintf("%s:%d: ", path, tt.line)
			for _, want := range append([]string{prefix, tt.key}, tt.also...) {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not contain %q:\n%s", want, msg)
				}
			}
			for _, bad := range tt.notWant {
				if strings.Contains(msg, bad) {
					t.Errorf("error contains %q:\n%s", bad, msg)
				}
			}
			// The file, line and key are on the same line of output.
			found := false
			for l := range strings.SplitSeq(msg, "\n") {
				if strings.HasPrefix(l, prefix) && strings.Contains(l, tt.key) {
					found = true
				}
			}
			if !found {
				t.Errorf("no line of the error starts with %q and contains %q:\n%s", prefix, tt.key, msg)
			}
		})
	}
}

func TestLoadReportsAllProblemsInLineOrder(t *testing.T) {
	path := writeConfig(t, `logging:
  level: loud
dbs:
  - path: /tmp/a.db
    sync-interval: soon
  - busy-timeout: -1s
`)
	_, err := Load(path, true)
	if err == nil {
		t.Fatal("Load succeeded, want errors")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		path + ":2: logging.level:",
		path + ":5: dbs[0].sync-interval:",
		path + ":6: dbs[1].busy-timeout:",
		path + ":6: dbs[1]: missing required key \"path\"",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d = %q, want prefix %q", i, lines[i], w)
		}
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
		{"one bare db", "dbs:\n  - path: /tmp/a.db\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, tt.yaml), true)
			if err != nil {
				t.Fatal(err)
			}
			want := Logging{Level: "info", Type: "text"}
			if cfg.Logging != want {
				t.Errorf("Logging = %+v, want %+v", cfg.Logging, want)
			}
			if len(cfg.Unused) != 0 {
				t.Errorf("Unused = %v, want none", cfg.Unused)
			}
			for _, db := range cfg.DBs {
				if db.SyncInterval != nil || db.CheckpointInterval != nil || db.BusyTimeout != nil ||
					db.MonitorInterval != nil || db.MinCheckpointPageN != nil || db.TruncatePageN != nil {
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
		Logging: Logging{Level: "debug", Type: "json", Stderr: true},
		Unused:  []Key{{Name: "addr", Line: 2}, {Name: "snapshot", Line: 7}},
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
			{Path: "/var/lib/empty.db", Line: 42},
		},
	}
	if !reflect.DeepEqual(cfg.Logging, want.Logging) {
		t.Errorf("Logging = %+v, want %+v", cfg.Logging, want.Logging)
	}
	if !reflect.DeepEqual(cfg.Unused, want.Unused) {
		t.Errorf("Unused = %+v, want %+v", cfg.Unused, want.Unused)
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

func TestLoggingNormalization(t *testing.T) {
	tests := []struct {
		yaml string
		want Logging
	}{
		{"logging:\n  level: WARNING\n", Logging{Level: "warn", Type: "text"}},
		{"logging:\n  level: Error\n  type: JSON\n", Logging{Level: "error", Type: "json"}},
		{"logging:\n  stderr: false\n", Logging{Level: "info", Type: "text"}},
		{"logging: {level: debug, stderr: yes}\n", Logging{Level: "debug", Type: "text", Stderr: true}},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, tt.yaml), true)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Logging != tt.want {
				t.Errorf("Logging = %+v, want %+v", cfg.Logging, tt.want)
			}
		})
	}
}
