package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/walship/walship/internal/testserver"
)

// Litestream v0.5.17 runs in the same suite as walship, on the same
// databases' twins, directory and MinIO, its rounds alternating with
// walship's (issue 17), so that the two tools' figures share one machine
// and one moment of its load.

// litestreamVersion is the release scripts/install-test-servers installs.
const litestreamVersion = "v0.5.17"

// findLitestream returns the Litestream binary at path, or, if path is
// empty, the one scripts/install-test-servers installed.
func findLitestream(path string) (string, error) {
	if path == "" {
		path = filepath.Join(testserver.Dir(), "bin", "litestream")
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("Litestream %s is not installed (%v); run scripts/install-test-servers (make bench does), or pass -litestream none to measure walship alone", litestreamVersion, err)
	}
	return path, nil
}

// lsEnv is the environment Litestream needs to reach MinIO. It clears
// AWS_CA_BUNDLE: with it set, Litestream v0.5.17's S3 client fails to start
// ("unable to add custom RootCAs HTTPClient"), and MinIO here is plain HTTP.
func (b *bench) lsEnv() []string {
	return append(b.minio.env(), "AWS_CA_BUNDLE=")
}

// withLitestream is t replicated by Litestream instead of walship.
func (t target) withLitestream() target {
	t.litestream = true
	return t
}

// withLitestreamTwins returns each of ts followed, if the run has
// Litestream, by its Litestream twin.
func (b *bench) withLitestreamTwins(ts []target) []target {
	var out []target
	for _, t := range ts {
		out = append(out, t)
		if b.litestream != "" && t.key == "" && !t.metrics {
			out = append(out, t.withLitestream())
		}
	}
	return out
}

// lsTwin is the index in ts of t's Litestream twin, or -1 if t is not a
// plain walship target or ts holds no twin of it.
func lsTwin(ts []target, t target) int {
	if t.litestream || t.key != "" || t.metrics {
		return -1
	}
	for i, u := range ts {
		if u.litestream && u.name == t.name {
			return i
		}
	}
	return -1
}

// lsYAML is the replica block of a Litestream config file for key: the same
// directory or MinIO bucket walship uses, Litestream's defaults otherwise;
// extra is more keys of the replica, e.g. its sync-interval.
func (t target) lsYAML(key string, counted bool, extra string) string {
	var s strings.Builder
	switch t.name {
	case "MinIO":
		ep := t.b.minio.Endpoint
		if counted {
			ep = t.b.minio.proxy
		}
		fmt.Fprintf(&s, "url: s3://%s/%s\n      endpoint: %s\n      region: us-east-1\n      force-path-style: true", t.b.minio.Bucket, key, ep)
	default:
		s.WriteString("url: " + t.url(key, false))
	}
	if extra != "" {
		s.WriteString("\n      " + extra)
	}
	return s.String()
}

// writeLSConfig writes a Litestream config file; each dbConfig's replica is
// an lsYAML block.
func writeLSConfig(path string, dbs []dbConfig) error {
	var s strings.Builder
	s.WriteString("logging:\n  level: warn\ndbs:\n")
	for _, d := range dbs {
		fmt.Fprintf(&s, "  - path: %s\n    replica:\n      %s\n", d.path, d.replica)
	}
	return os.WriteFile(path, []byte(s.String()), 0o644)
}

// lsSyncInterval is the Litestream setting nearest to walship's extra:
// Litestream refuses a sync-interval of 0, so "sync-interval: 0s" becomes
// its smallest, 1ms.
func lsSyncInterval(extra string) string {
	if extra == "sync-interval: 0s" {
		return "sync-interval: 1ms"
	}
	return extra
}

// lsSettingNote says how Litestream was set for walship's extra keys.
func lsSettingNote(extra string) string {
	if l := lsSyncInterval(extra); l != extra {
		return fmt.Sprintf(" but `%s`, the nearest to walship's `%s` it accepts", l, extra)
	}
	return ""
}

// writeToolConfig writes the config file with which t's tool replicates
// the database at path to key, with walship's extra database keys (or
// their Litestream equivalent).
func (t target) writeToolConfig(cfg, path, key string, counted bool, extra string) error {
	if t.litestream {
		return writeLSConfig(cfg, []dbConfig{{path: path, replica: t.lsYAML(key, counted, lsSyncInterval(extra))}})
	}
	return writeConfigWith(cfg, t.top(), []dbConfig{{path: path, replica: t.yaml(key, counted), extra: extra}})
}

// run starts t's tool replicating the databases of a config file.
func (t target) run(dir string, pgid int, cfg string) (*proc, error) {
	if t.litestream {
		return start("litestream", pgid, dir, t.b.lsEnv(), t.b.litestream, "replicate", "-config", cfg)
	}
	if t.profile != "" {
		return t.b.replicate(dir, pgid, cfg, profileEnv+"="+t.profile)
	}
	return t.b.replicate(dir, pgid, cfg)
}

// restoreArgs is the command line restoring the replica of the database
// at path (replicated with config file cfg, to key) into out; check is
// the -integrity-check mode, "" for the tool's default.
func (t target) restoreArgs(cfg, path, key, out, check string) (string, []string) {
	args := []string{"restore"}
	if check != "" {
		args = append(args, "-integrity-check", check)
	}
	if t.litestream {
		return t.b.litestream, append(args, "-o", out, "-config", cfg, path)
	}
	args = append(append(args, t.keyArgs()...), "-o", out, t.url(key, false))
	return t.b.walship, args
}

// firstFiles is how many replicas under prefix hold Litestream's first
// file, the whole database at level 0: -once writes no level 9 snapshot
// (the daemon does, right after).
func (t target) firstFiles(prefix string) (int, error) {
	if t.name != "MinIO" {
		m, err := filepath.Glob(filepath.Join(t.b.work, "replicas", prefix+"*", "ltx", "0", "*.ltx"))
		seen := map[string]bool{}
		for _, f := range m {
			seen[filepath.Dir(f)] = true
		}
		return len(seen), err
	}
	keys, err := t.b.minio.keys(prefix)
	seen := map[string]bool{}
	for _, k := range keys {
		if i := strings.Index(k, "/0000/"); i >= 0 { // level 0, as in walship's S3 layout
			seen[k[:i]] = true
		}
	}
	return len(seen), err
}

// vs is one figure of walship's beside Litestream's, for the report's
// Litestream columns.
type vs struct {
	figure string  // Litestream's figure, as the walship column shows its own
	ratio  float64 // walship's number / Litestream's
	of     string  // what the ratio divides, and which way is better
}

// ratioOf is walship's figure over Litestream's, NaN if either is missing.
func ratioOf(w, l float64) float64 {
	if l == 0 || math.IsNaN(l) || math.IsNaN(w) || math.IsInf(w/l, 0) {
		return math.NaN()
	}
	return w / l
}

// cells is v as the report's two Litestream columns.
func (v *vs) cells() (string, string) {
	if v == nil {
		return "—", "—"
	}
	if math.IsNaN(v.ratio) {
		return v.figure, "—"
	}
	return v.figure, fmt.Sprintf("%.2f (%s)", v.ratio, v.of)
}

// ofLimit is rate as a share of limit, both in MB/s, naming the limit.
func ofLimit(rate, limit float64, name string) string {
	if limit <= 0 || math.IsNaN(rate) {
		return "—"
	}
	return fmt.Sprintf("%.0f%% of %s", 100*rate/limit, name)
}
