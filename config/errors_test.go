package config

import (
	"fmt"
	"strings"
	"testing"
)

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
			name: "two databases, one replica",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replica:\n      url: file:///backups/app\n  - path: /tmp/b.db\n    replica:\n      url: file:///backups//app/\n",
			line: 7, key: "dbs: the replica of /tmp/b.db at line 7 sends to the same destination as the replica of /tmp/a.db at line 4",
		},
		{
			name: "one replica written two ways",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replica:\n      url: s3://bkt/db?endpoint=http://127.0.0.1:9000\n  - path: /tmp/b.db\n    replica:\n      type: s3\n      bucket: bkt\n      path: /db\n      endpoint: http://127.0.0.1:9000\n",
			line: 7, key: "dbs: the replica of /tmp/b.db at line 7 sends to the same destination as the replica of /tmp/a.db at line 4",
		},
		{
			name: "one database, one destination twice",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replicas:\n      - path: /backups/a\n      - url: file:///backups/a\n",
			line: 5, key: "dbs: the replica of /tmp/a.db at line 5 sends to the same destination as the replica of /tmp/a.db at line 4",
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
		// levels
		{
			name: "levels not a list",
			yaml: "levels:\n  interval: 5m\n",
			line: 1, key: "levels: must be a list of compaction levels", also: []string{"not a mapping"},
		},
		{
			name: "levels empty list",
			yaml: "dbs: []\nlevels: []\n",
			line: 2, key: "levels: must list at least one level", also: []string{"leave levels out"},
		},
		{
			name: "level not a mapping",
			yaml: "levels:\n  - interval: 30s\n  - 5m\n",
			line: 3, key: "levels[1]: each level must be a mapping with an interval", also: []string{"not a single value"},
		},
		{
			name: "level without interval",
			yaml: "levels:\n  - interval: 30s\n  - {}\n",
			line: 3, key: `levels[1]: missing required key "interval"`,
		},
		{
			name: "level with null interval",
			yaml: "levels:\n  - interval: 30s\n  - interval:\n",
			line: 3, key: `levels[1]: missing required key "interval"`,
		},
		{
			name: "level interval zero",
			yaml: "levels:\n  - interval: 0\n",
			line: 2, key: `levels[0].interval: duration must be greater than 0 (got "0")`,
		},
		{
			name: "level interval zero seconds",
			yaml: "levels:\n  - interval: 30s\n  - interval: 0s\n",
			line: 3, key: `levels[1].interval: duration must be greater than 0 (got "0s")`,
			notWant: []string{"levels[0] at"},
		},
		{
			name: "level interval negative",
			yaml: "levels:\n  - interval: -5m\n",
			line: 2, key: `levels[0].interval: duration must be greater than 0 (got "-5m")`,
		},
		{
			name: "level interval invalid",
			yaml: "levels:\n  - interval: 5 minutes\n",
			line: 2, key: `levels[0].interval: invalid duration "5 minutes"`,
		},
		{
			name: "level interval in days",
			yaml: "levels:\n  - interval: 1d\n",
			line: 2, key: `levels[0].interval: invalid duration "1d"`, also: []string{"24h"},
		},
		{
			name: "level interval a list",
			yaml: "levels:\n  - interval: [30s]\n",
			line: 2, key: "levels[0].interval: must be a duration", also: []string{"not a list"},
		},
		{
			name: "level intervals equal",
			yaml: "levels:\n  - interval: 30s\n  - interval: 5m\n  - interval: 300s\n",
			line: 4, key: `levels[2].interval: interval "300s" must be greater than the interval of the level before it`,
			also: []string{`levels[1].interval at line 3 is "5m"`, "shortest interval to the longest"},
		},
		{
			name: "level intervals decreasing",
			yaml: "levels:\n  - interval: 1h\n  - interval: 5m\n",
			line: 3, key: `levels[1].interval: interval "5m" must be greater than`, also: []string{`levels[0].interval at line 2 is "1h"`},
		},
		{
			name: "level compared with the last valid level",
			yaml: "levels:\n  - interval: 1m\n  - interval: bad\n  - interval: 30s\n",
			line: 4, key: `levels[2].interval: interval "30s" must be greater than`, also: []string{`levels[0].interval at line 2`},
		},
		{
			name: "more than 8 levels",
			yaml: "levels:\n  - interval: 1s\n  - interval: 2s\n  - interval: 3s\n  - interval: 4s\n  - interval: 5s\n" +
				"  - interval: 6s\n  - interval: 7s\n  - interval: 8s\n  - interval: 9s\n  - interval: 10s\n",
			line: 10, key: "levels[8]: too many levels (10 listed); at most 8 are allowed",
			also: []string{"level 9 holds snapshots"}, notWant: []string{"levels[9]"},
		},
		{
			name: "unknown key in a level",
			yaml: "levels:\n  - interval: 30s\n    intervall: 1m\n",
			line: 3, key: `unknown key "intervall" in levels[0]`, also: []string{`did you mean "interval"?`, "valid keys here: interval"},
		},
		{
			name: "unknown key in a later level",
			yaml: "levels:\n  - interval: 30s\n  - interval: 5m\n    retention: 1h\n",
			line: 4, key: `unknown key "retention" in levels[1]`,
		},
		// snapshot
		{
			name: "snapshot not a mapping",
			yaml: "snapshot: 24h\n",
			line: 1, key: "snapshot: must be a mapping with keys interval: and retention:", also: []string{"not a single value"},
		},
		{
			name: "snapshot interval zero",
			yaml: "snapshot:\n  interval: 0\n",
			line: 2, key: `snapshot.interval: duration must be greater than 0 (got "0")`,
		},
		{
			name: "snapshot interval negative",
			yaml: "snapshot:\n  interval: -1h\n",
			line: 2, key: `snapshot.interval: duration must be greater than 0 (got "-1h")`,
		},
		{
			name: "snapshot retention zero",
			yaml: "snapshot:\n  interval: 24h\n  retention: 0s\n",
			line: 3, key: `snapshot.retention: duration must be greater than 0 (got "0s")`,
		},
		{
			name: "snapshot retention in days",
			yaml: "snapshot:\n  retention: 7d\n",
			line: 2, key: `snapshot.retention: invalid duration "7d"`, also: []string{"24h"},
		},
		{
			name: "snapshot retention bare number",
			yaml: "snapshot:\n  retention: 3600\n",
			line: 2, key: `snapshot.retention: invalid duration "3600"`, also: []string{"3600s"},
		},
		{
			name: "unknown snapshot key",
			yaml: "snapshot:\n  interval: 1h\n  retenion: 24h\n",
			line: 3, key: `unknown key "retenion" in snapshot`, also: []string{`did you mean "retention"?`, "valid keys here: interval, retention"},
		},
		{
			name: "databases with different snapshot intervals",
			yaml: "dbs:\n  - path: /tmp/a.db\n    snapshot:\n      interval: 1h\n  - path: /tmp/b.db\n    snapshot:\n      interval: 2h\n",
			line: 6, key: `dbs[1].snapshot.interval: 2h0m0s differs from dbs[0].snapshot.interval (line 3), 1h0m0s`, also: []string{"set snapshot.interval once at the top level"},
		},
		{
			name: "both path and dir",
			yaml: "dbs:\n  - path: /tmp/a.db\n    dir: /tmp/dbs\n    pattern: \"*.db\"\n",
			line: 3, key: `dbs[0]: both path and dir are set`,
		},
		{
			name: "dir without pattern",
			yaml: "dbs:\n  - dir: /tmp/dbs\n    replica:\n      url: file:///a\n",
			line: 2, key: `dbs[0]: dir: needs a pattern:`,
		},
		{
			name: "dir with a bad pattern",
			yaml: "dbs:\n  - dir: /tmp/dbs\n    pattern: \"[a\"\n    replica:\n      url: file:///a\n",
			line: 3, key: `dbs[0].pattern: "[a" is not a valid file name pattern`,
		},
		{
			name: "age encryption",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replica:\n      url: file:///a\n      age:\n        identities: [AGE-SECRET-KEY-1XYZ]\n",
			line: 6, key: `dbs[0].replica.age.identities: age encryption is not supported`, also: []string{"Litestream 0.5 refuses it too"}, notWant: []string{"AGE-SECRET"},
		},
		{
			name: "l0-retention under a replica",
			yaml: "dbs:\n  - path: /tmp/a.db\n    replica:\n      url: file:///a\n      l0-retention: 5m\n",
			line: 5, key: `unknown key "l0-retention" in dbs[0].replica`, also: []string{"check placement", "top-level setting"},
		},
		// l0-retention, l0-retention-check-interval
		{
			name: "l0-retention invalid",
			yaml: "l0-retention: soon\n",
			line: 1, key: `l0-retention: invalid duration "soon"`,
		},
		{
			name: "l0-retention negative",
			yaml: "dbs: []\nl0-retention: -1m\n",
			line: 2, key: `l0-retention: duration must not be negative (got "-1m")`,
		},
		{
			name: "l0-retention a mapping",
			yaml: "l0-retention:\n  period: 5m\n",
			line: 1, key: "l0-retention: must be a duration", also: []string{"not a mapping"},
		},
		{
			name: "l0-retention under a database",
			yaml: "dbs:\n  - path: /tmp/a.db\n    l0-retention: 5m\n",
			line: 3, key: `unknown key "l0-retention" in dbs[0]`, also: []string{"check placement", "top-level setting"},
		},
		{
			name: "l0-retention-check-interval zero",
			yaml: "l0-retention-check-interval: 0\n",
			line: 1, key: `l0-retention-check-interval: duration must be greater than 0 (got "0")`,
		},
		{
			name: "l0-retention-check-interval invalid",
			yaml: "l0-retention: 5m\nl0-retention-check-interval: 15\n",
			line: 2, key: `l0-retention-check-interval: invalid duration "15"`, also: []string{"15s"},
		},
		// retention
		{
			name: "retention not a mapping",
			yaml: "retention: 24h\n",
			line: 1, key: "retention: must be a mapping with the key enabled:", also: []string{"snapshot.retention"},
		},
		{
			name: "retention a list",
			yaml: "retention: [true]\n",
			line: 1, key: "retention: must be a mapping", also: []string{"not a list"}, notWant: []string{"snapshot.retention"},
		},
		{
			name: "retention enabled invalid",
			yaml: "retention:\n  enabled: sometimes\n",
			line: 2, key: `retention.enabled: invalid boolean "sometimes" (use true or false)`,
		},
		{
			name: "retention enabled quoted",
			yaml: "retention:\n  enabled: \"false\"\n",
			line: 2, key: `retention.enabled: invalid boolean "false" (use true or false, without quotes)`,
		},
		{
			name: "retention enabled a list",
			yaml: "retention:\n  enabled: [true]\n",
			line: 2, key: "retention.enabled: invalid boolean",
		},
		{
			name: "unknown retention key",
			yaml: "retention:\n  enable: false\n",
			line: 2, key: `unknown key "enable" in retention`, also: []string{`did you mean "enabled"?`},
		},
		// max-local-bytes
		{
			name: "max-local-bytes zero",
			yaml: "max-local-bytes: 0\n",
			line: 1, key: `max-local-bytes: size must be greater than 0 (got "0")`,
		},
		{
			name: "max-local-bytes zero with unit",
			yaml: "max-local-bytes: 0GB\n",
			line: 1, key: `max-local-bytes: size must be greater than 0 (got "0GB")`,
		},
		{
			name: "max-local-bytes negative",
			yaml: "max-local-bytes: -1\n",
			line: 1, key: `max-local-bytes: size must be greater than 0 (got "-1")`,
		},
		{
			name: "max-local-bytes negative with unit",
			yaml: "max-local-bytes: -5MB\n",
			line: 1, key: `max-local-bytes: size must be greater than 0 (got "-5MB")`,
		},
		{
			name: "max-local-bytes fraction with unit",
			yaml: "max-local-bytes: 1.5GB\n",
			line: 1, key: `max-local-bytes: invalid size "1.5GB"`, also: []string{"whole number", "1536MiB"},
		},
		{
			name: "max-local-bytes float",
			yaml: "max-local-bytes: 1.5\n",
			line: 1, key: `max-local-bytes: invalid size "1.5"`, also: []string{"whole number"},
		},
		{
			name: "max-local-bytes exponent",
			yaml: "max-local-bytes: 1e9\n",
			line: 1, key: `max-local-bytes: invalid size "1e9"`,
		},
		{
			name: "max-local-bytes unknown unit",
			yaml: "max-local-bytes: 10 XB\n",
			line: 1, key: `max-local-bytes: invalid size "10 XB"`, also: []string{`unknown unit "XB"`, "KiB, MiB, GiB, TiB"},
		},
		{
			name: "max-local-bytes short unit",
			yaml: "max-local-bytes: 512M\n",
			line: 1, key: `max-local-bytes: invalid size "512M"`, also: []string{`unknown unit "M"`},
		},
		{
			name: "max-local-bytes unit only",
			yaml: "max-local-bytes: GB\n",
			line: 1, key: `max-local-bytes: invalid size "GB"`,
		},
		{
			name: "max-local-bytes words",
			yaml: "max-local-bytes: lots\n",
			line: 1, key: `max-local-bytes: invalid size "lots"`,
		},
		{
			name: "max-local-bytes boolean",
			yaml: "max-local-bytes: true\n",
			line: 1, key: `max-local-bytes: invalid size "true"`,
		},
		{
			name: "max-local-bytes too large with unit",
			yaml: "max-local-bytes: 9999999TB\n",
			line: 1, key: `max-local-bytes: size "9999999TB" is too large`,
		},
		{
			name: "max-local-bytes too large integer",
			yaml: "max-local-bytes: 99999999999999999999\n",
			line: 1, key: `max-local-bytes: size "99999999999999999999" is too large`,
		},
		{
			name: "max-local-bytes a list",
			yaml: "max-local-bytes: [1GB]\n",
			line: 1, key: "max-local-bytes: must be a size", also: []string{"not a list"},
		},
		{
			name: "db max-local-bytes zero",
			yaml: "max-local-bytes: 1GB\ndbs:\n  - path: /tmp/a.db\n    max-local-bytes: 0MiB\n",
			line: 4, key: `dbs[0].max-local-bytes: size must be greater than 0 (got "0MiB")`,
		},
		{
			name: "db max-local-bytes invalid",
			yaml: "dbs:\n  - path: /tmp/a.db\n    max-local-bytes: 1 gigabyte\n",
			line: 3, key: `dbs[0].max-local-bytes: invalid size "1 gigabyte"`, also: []string{`unknown unit "gigabyte"`},
		},
		{
			name: "max-local-bytes misspelt",
			yaml: "max-local-byte: 1GB\n",
			line: 1, key: `unknown key "max-local-byte" at top level`, also: []string{`did you mean "max-local-bytes"?`},
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
  type: loud
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
		path + ":2: logging.type:",
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
