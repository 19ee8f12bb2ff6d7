package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// target is a kind of replica a scenario replicates to.
type target struct {
	name    string // "directory" or "MinIO"
	key     string // the key file of an encrypted replica; "" for a plain one
	metrics bool   // walship serves its metrics (addr:) while it replicates
	// litestream: Litestream replicates instead of walship, to the same
	// kind of replica with its default settings.
	litestream bool
	// profile, if set, is where walship writes a CPU profile of itself
	// while it replicates (one untimed round, for the analysis).
	profile string
	b       *bench
}

func (b *bench) targets() []target {
	return []target{{name: "directory", b: b}, {name: "MinIO", b: b}}
}

// encrypted is t's encrypted twin: the same kind of replica, written with
// the run's key (issue 14).
func (t target) encrypted() target {
	t.key = t.b.keyFile
	return t
}

// withEncrypted returns each of ts followed by its encrypted twin.
func withEncrypted(ts []target) []target {
	var out []target
	for _, t := range ts {
		out = append(out, t, t.encrypted())
	}
	return out
}

// withMetrics is t with walship serving its metrics (issue 15).
func (t target) withMetrics() target {
	t.metrics = true
	return t
}

// label names t in the report.
func (t target) label() string {
	switch {
	case t.key != "":
		return t.name + ", encrypted"
	case t.metrics:
		return t.name + ", metrics served"
	case t.litestream:
		return t.name + ", Litestream"
	}
	return t.name
}

// slug names t in replica keys, which differ between twins.
func (t target) slug() string {
	switch {
	case t.key != "":
		return t.name + "-encrypted"
	case t.metrics:
		return t.name + "-metrics"
	case t.litestream:
		return t.name + "-litestream"
	}
	return t.name
}

// suffix is what the report adds to a case of t beyond its kind of
// replica.
func (t target) suffix() string {
	if t.metrics {
		return ", metrics served"
	}
	return ""
}

// top is the top-level config t needs: the metrics listener, on a port
// the kernel picks.
func (t target) top() string {
	if t.metrics {
		return "addr: 127.0.0.1:0\n"
	}
	return ""
}

// keyArgs are the flags that give a command t's key.
func (t target) keyArgs() []string {
	if t.key == "" {
		return nil
	}
	return []string{"-encryption-key-path", t.key}
}

// keyNote is keyArgs as the report shows them in a command line.
func (t target) keyNote() string {
	if t.key == "" {
		return ""
	}
	return " -encryption-key-path KEY"
}

// url is the replica URL of key (a directory under the scratch directory, or
// a prefix in MinIO's bucket).
func (t target) url(key string, counted bool) string {
	if t.name == "MinIO" {
		return t.b.minio.url(key, counted)
	}
	return "file://" + filepath.Join(t.b.work, "replicas", key)
}

func (t target) yaml(key string, counted bool) string {
	y := "url: " + t.url(key, counted)
	if t.name == "MinIO" {
		y = t.b.minio.yaml(key, counted)
	}
	if t.key != "" {
		y += "\n        encryption-key-path: " + t.key
	}
	return y
}

// snapshotCount is how many snapshots (level 9 files) the replicas under
// prefix hold, read behind walship's back.
func (t target) snapshotCount(prefix string) (int, error) {
	if t.litestream {
		return t.firstFiles(prefix)
	}
	if t.name != "MinIO" {
		m, err := filepath.Glob(filepath.Join(t.b.work, "replicas", prefix+"*", "ltx", "9", "*.ltx"))
		return len(m), err
	}
	keys, err := t.b.minio.keys(prefix)
	n := 0
	for _, k := range keys {
		if strings.Contains(k, "/0009/") {
			n++
		}
	}
	return n, err
}

// keys lists the bucket's keys under prefix, behind the tools' backs.
func (m *minio) keys(prefix string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(m.SDK(), &s3.ListObjectsV2Input{Bucket: aws.String(m.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return keys, err
		}
		for _, o := range page.Contents {
			keys = append(keys, *o.Key)
		}
	}
	return keys, nil
}

// removeReplicas deletes the replicas of t's kind under prefix, walship's
// and Litestream's, behind their backs, to free the disk they share.
func (t target) removeReplicas(prefix string) error {
	if t.name != "MinIO" {
		m, err := filepath.Glob(filepath.Join(t.b.work, "replicas", prefix+"*"))
		for _, d := range m {
			if err := os.RemoveAll(d); err != nil {
				return err
			}
		}
		return err
	}
	keys, err := t.b.minio.keys(prefix)
	if err != nil {
		return fmt.Errorf("list %s in MinIO: %w", prefix, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, k := range keys {
		if _, err := t.b.minio.SDK().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(t.b.minio.Bucket), Key: aws.String(k)}); err != nil {
			return fmt.Errorf("delete %s from MinIO: %w", k, err)
		}
	}
	return nil
}

// waitSnapshots waits until n snapshots are in the replicas under prefix.
func (t target) waitSnapshots(prefix string, n int, w *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := t.snapshotCount(prefix)
		if err == nil && got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d snapshots in %s after %s (%v); see %s", got, n, t.label(), timeout, err, w.log.Name())
		}
		select {
		case <-w.done:
			return fmt.Errorf("%s exited (%s); see %s", w.name, w.cmd.ProcessState, w.log.Name())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// newDB creates a database with the benchmark's table and one row.
func newDB(path string) error {
	db, err := openApp(path)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(`INSERT INTO t (ts, v) VALUES (?, zeroblob(100))`, time.Now().UnixNano())
	return err
}

// dbConfig is one database of a walship config file.
type dbConfig struct {
	path    string
	replica string // the replica block, from target.yaml
	extra   string // more keys of the database, e.g. "sync-interval: 0s"
}

// writeConfigWith writes a walship config file with top-level keys top.
func writeConfigWith(path, top string, dbs []dbConfig) error {
	var s strings.Builder
	s.WriteString("logging:\n  level: warn\n" + top + "dbs:\n")
	for _, d := range dbs {
		fmt.Fprintf(&s, "  - path: %s\n", d.path)
		if d.extra != "" {
			fmt.Fprintf(&s, "    %s\n", d.extra)
		}
		fmt.Fprintf(&s, "    replica:\n        %s\n", d.replica)
	}
	return os.WriteFile(path, []byte(s.String()), 0o644)
}

// replicate starts walship on a config file.
func (b *bench) replicate(dir string, pgid int, cfg string, env ...string) (*proc, error) {
	return start("walship", pgid, dir, append(b.minio.env(), env...), b.walship, "replicate", "-config", cfg)
}

// stopWalship stops walship as an operator would and returns its usage.
func stopWalship(w *proc) (usage, error) {
	err := w.stop(syscall.SIGTERM, 60*time.Second)
	return w.usage(), err
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile is the nearest-rank percentile p (0..100) of xs.
func percentile(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(i, 0)]
}

func mb(n int64) string { return fmt.Sprintf("%.0f MB", float64(n)/1e6) }

// thousands formats n with thousands separators.
func thousands(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
