package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
	"github.com/walship/walship/storage/s3"
)

// TestDirectoryFile: RunDirectory on a directory replica.
func TestDirectoryFile(t *testing.T) {
	base := filepath.Join(t.TempDir(), "replica")
	RunDirectory(t, DirReplica{
		YAML:     "url: file://" + base,
		ClientOf: func(rel string) (storage.Client, error) { return file.New(filepath.Join(base, rel)), nil },
	})
}

// TestDirectoryMinIO: RunDirectory on S3 (MinIO), each database under
// its own prefix of one bucket.
func TestDirectoryMinIO(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	RunDirectory(t, DirReplica{
		YAML: fmt.Sprintf("url: s3://%s/tenants\nendpoint: %s", bucket, srv.Endpoint),
		Env:  []string{"WALSHIP_ACCESS_KEY_ID=" + srv.AccessKey, "WALSHIP_SECRET_ACCESS_KEY=" + srv.SecretKey},
		ClientOf: func(rel string) (storage.Client, error) {
			return s3.Open(context.Background(), storage.Spec{URL: &url.URL{Scheme: "s3", Host: bucket, Path: "/tenants/" + rel}, Keys: map[string]string{
				"endpoint": srv.Endpoint, "access-key-id": srv.AccessKey, "secret-access-key": srv.SecretKey,
			}})
		},
	})
}

// DirReplica is the destination of a directory of databases under test.
type DirReplica struct {
	// YAML holds the keys of the directory's replica entry, as
	// Replica.YAML: its URL is the base under which each database goes.
	YAML string
	Env  []string
	// ClientOf returns a client of the replica of the database at rel, its
	// path relative to the directory (e.g. "t042.db").
	ClientOf func(rel string) (storage.Client, error)
}

// client is ClientOf, failing the test on error.
func (r DirReplica) client(t *testing.T, rel string) storage.Client {
	t.Helper()
	c, err := r.ClientOf(rel)
	if err != nil {
		t.Fatalf("client of the replica of %s: %v", rel, err)
	}
	return c
}

// dirDBs is how many databases RunDirectory creates while walship runs.
const dirDBs = 500

// RunDirectory replicates a directory (dir: with pattern: "*.db") with the
// real binary while 500 small databases are created in it, some written
// again after they were created, beside a file matching the pattern that
// is not SQLite (one warning), a database whose replica belongs to another
// database (refused) and one corrupted in place: every one of the 500
// restores exactly, from its own path under the replica, and the process
// keeps running through the two failures.
func RunDirectory(t *testing.T, r DirReplica) {
	ctx := context.Background()
	bin := Binary(t)
	root := t.TempDir()
	dir := filepath.Join(root, "tenants")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(root, "walship.yml")
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "shutdown-sync-timeout: 2m\ndbs:\n  - dir: %s\n    pattern: \"*.db\"\n    sync-interval: 100ms\n    replica:\n", dir)
	for _, line := range strings.Split(strings.TrimSpace(r.YAML), "\n") {
		fmt.Fprintf(&cfg, "      %s\n", line)
	}
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	// A replica that another database owns: the database created at its
	// path is refused, and only it.
	other := filepath.Join(root, "other.db")
	createTenant(t, other, 0)
	finishOne(t, bin, r.Env, "owned.db", other, r)

	p := startWalship(t, bin, r.Env, "replicate", "-config", cfgPath)
	notes := filepath.Join(dir, "notes.db")
	if err := os.WriteFile(notes, bytes.Repeat([]byte("not a database\n"), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	createTenant(t, filepath.Join(dir, "owned.db"), 0)
	broken := filepath.Join(dir, "broken.db")
	createTenant(t, broken, 0)

	begun := time.Now()
	names := make([]string, dirDBs)
	var wg sync.WaitGroup
	errs := make(chan error, dirDBs)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < dirDBs; i += 4 {
				names[i] = fmt.Sprintf("t%03d.db", i)
				if err := newTenant(filepath.Join(dir, names[i]), i); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	created := time.Since(begun)
	waitFor(t, "the broken database's replica to hold it", func() bool { return holds(t, r.client(t, "broken.db")) })
	// Replaced by garbage: reported when the engine next reads it (at
	// the latest, its last capture at shutdown), and nothing else.
	junk := filepath.Join(root, "junk")
	if err := os.WriteFile(junk, bytes.Repeat([]byte{0xa5}, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(junk, broken); err != nil {
		t.Fatal(err)
	}
	// Deleted: stopped cleanly.
	gone := filepath.Join(dir, "gone.db")
	createTenant(t, gone, 0)
	waitFor(t, "the deleted database's replica to hold it", func() bool { return holds(t, r.client(t, "gone.db")) })
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(gone + suffix)
	}

	// Written again after they were created, while replicated.
	for i := 0; i < dirDBs; i += 5 {
		app, err := sql.Open("sqlite", "file:"+filepath.Join(dir, names[i])+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)")
		if err != nil {
			t.Fatal(err)
		}
		for j := range 3 {
			if _, err := app.Exec("INSERT INTO t (v, n) VALUES (randomblob(300), ?)", fmt.Sprint(i, "-", j)); err != nil {
				t.Fatal(err)
			}
		}
		app.Close()
	}
	waitFor(t, "every database's replica to hold it", func() bool {
		for _, name := range names {
			if !holds(t, r.client(t, name)) {
				return false
			}
		}
		return true
	})
	t.Logf("%d databases created in %s, all in their replicas %s after the first was created", dirDBs, created.Round(time.Millisecond), time.Since(begun).Round(time.Millisecond))
	if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("walship exited with databases left to replicate: %v\n%s", err, p.output())
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "Threads") {
				t.Log("walship replicating the directory:", strings.Join(strings.Fields(l), " "))
			}
		}
	}

	// SIGTERM captures and flushes every database. The corrupted one
	// cannot be, which is the exit status's to say.
	stopping := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	t.Logf("walship stopped in %s", time.Since(stopping).Round(time.Millisecond))
	out := p.output()
	if n := countLogLines(out, notes, "skipping a file that matches the pattern but is not a SQLite database"); n != 1 {
		t.Errorf("%d warnings about %s, want one:\n%s", n, notes, lastLines(out, 40))
	}
	for what, want := range map[string]string{
		filepath.Join(dir, "owned.db"): "replication of this database stopped; the other databases go on",
		broken:                         "is not a SQLite database",
	} {
		if !hasLogLine(out, what, want) {
			t.Errorf("walship did not log %q of %s:\n%s", want, what, lastLines(out, 40))
		}
	}
	// The deleted one: one line says it was removed, whether the scan or
	// the stop saw the deletion first, and none calls it a problem.
	if n := countLogLines(out, gone, "database removed from the directory; stopping its replication"); n != 1 {
		t.Errorf("%d lines say %s was removed, want one:\n%s", n, gone, lastLines(out, 40))
	}
	for _, level := range []string{"level=ERROR", "level=WARN"} {
		if n := countLogLines(out, gone, level); n != 0 {
			t.Errorf("the deleted database %s was reported as a problem (%s):\n%s", gone, level, lastLines(out, 40))
		}
	}

	restoring := time.Now()
	defer func() { t.Logf("restored in %s", time.Since(restoring).Round(time.Millisecond)) }()
	outDir := t.TempDir()
	for i := 0; i < dirDBs; i += 100 {
		// Through the binary, found by its path in the config.
		src, restored := filepath.Join(dir, names[i]), filepath.Join(outDir, "cli-"+names[i])
		run(t, bin, r.Env, "restore", "-config", cfgPath, "-o", restored, src)
		if got, want := imageOfFile(t, restored), imageOfFile(t, src); got != want {
			t.Fatalf("%s does not restore exactly with walship restore -config", names[i])
		}
	}
	failures := make(chan string, dirDBs)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < dirDBs; i += 4 {
				src, restored := filepath.Join(dir, names[i]), filepath.Join(outDir, names[i])
				c, err := r.ClientOf(names[i])
				if err == nil {
					_, err = restore.Restore(ctx, c, restored, restore.Options{})
				}
				if err != nil {
					failures <- fmt.Sprintf("restore %s: %v", names[i], err)
					continue
				}
				got, err1 := testutil.LogicalImage(ctx, restored)
				want, err2 := testutil.LogicalImage(ctx, src)
				if err1 != nil || err2 != nil || got != want {
					failures <- fmt.Sprintf("%s does not restore exactly (%v, %v)", names[i], err1, err2)
				}
			}
		})
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
}

// createTenant creates a database at path, failing the test on error.
func createTenant(t *testing.T, path string, i int) {
	t.Helper()
	if err := newTenant(path, i); err != nil {
		t.Fatal(err)
	}
}

// newTenant creates a small database in WAL mode with a row, as an
// application creating one per tenant does.
func newTenant(path string, i int) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)")
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range []string{"CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB, n TEXT)", fmt.Sprintf("INSERT INTO t (v, n) VALUES (randomblob(200), 'tenant %d')", i)} {
		if _, err := db.Exec(q); err != nil {
			return fmt.Errorf("%s: %s: %w", path, q, err)
		}
	}
	return nil
}

// finishOne replicates the database at path once to the replica of rel,
// the way another replicator would have.
func finishOne(t *testing.T, bin string, env []string, rel, path string, r DirReplica) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "one.yml")
	var b strings.Builder
	fmt.Fprintf(&b, "dbs:\n  - path: %s\n    replica:\n", path)
	for i, line := range strings.Split(strings.TrimSpace(r.YAML), "\n") {
		if i == 0 && strings.HasPrefix(line, "url: ") {
			line = strings.TrimSuffix(line, "/") + "/" + rel
		}
		fmt.Fprintf(&b, "      %s\n", line)
	}
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	finish(t, bin, env, "replicate", "-once", "-config", cfg)
	if !holds(t, r.client(t, rel)) {
		t.Fatalf("the replica of %s is empty after a one-shot run", rel)
	}
}

// holds reports whether the replica holds a file at any level: the first
// state of a database goes to the snapshot level only.
func holds(t *testing.T, c storage.Client) bool {
	t.Helper()
	for level := 0; level <= storage.MaxLevel; level++ {
		files, err := c.LTXFiles(context.Background(), level)
		if err != nil {
			t.Fatalf("list %s: %v", c, err)
		}
		if len(files) > 0 {
			return true
		}
	}
	return false
}

// hasLogLine reports whether a line of the log s holds both db and msg.
func hasLogLine(s, db, msg string) bool { return countLogLines(s, db, msg) > 0 }

// countLogLines counts the lines of the log s that hold both db and msg.
func countLogLines(s, db, msg string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, db) && strings.Contains(l, msg) {
			n++
		}
	}
	return n
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
