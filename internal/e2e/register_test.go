package e2e

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/testserver"
)

// TestRegisterFile: RunRegister on a directory replica.
func TestRegisterFile(t *testing.T) {
	base := filepath.Join(t.TempDir(), "replica")
	RunRegister(t, func(name string) string { return "file://" + filepath.Join(base, name) }, nil)
}

// TestRegisterMinIO: RunRegister on S3 (MinIO); the credentials are the
// running walship's environment, the endpoint is in the URL.
func TestRegisterMinIO(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	RunRegister(t, func(name string) string { return fmt.Sprintf("s3://%s/%s?endpoint=%s", bucket, name, srv.Endpoint) },
		[]string{"WALSHIP_ACCESS_KEY_ID=" + srv.AccessKey, "WALSHIP_SECRET_ACCESS_KEY=" + srv.SecretKey})
}

// RunRegister: walship replicate with a control socket and no database
// keeps running; `walship register` adds a database, which sync -wait
// then makes restorable; `stop` pauses it while the application commits
// 50 transactions and checkpoints the WAL away in the middle, and after
// `start` and sync -wait a restore holds every row and `walship verify`
// finds the chain whole (the gap was filled, not skipped); `unregister`
// flushes its last commits and ships nothing after; registered again, it
// ships what it missed, its chain whole. A duplicate register
// and verbs on an unknown database fail with a message naming the fix.
// Litestream's client registers, stops, starts and unregisters too.
func RunRegister(t *testing.T, replicaURL func(name string) string, env []string) {
	bin := Binary(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "walship.sock")
	cfgPath := filepath.Join(dir, "walship.yml")
	if err := os.WriteFile(cfgPath, []byte("socket:\n  enabled: true\n  path: "+sock+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	walship := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := walship(args...)
		if err != nil {
			t.Fatalf("walship %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		out, err := walship(args...)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("walship %s: %v\n%s\nwant a failure saying %q", strings.Join(args, " "), err, out, want)
		}
	}
	rows := func(url string) int {
		t.Helper()
		out := filepath.Join(t.TempDir(), "restored.db")
		must("restore", "-o", out, url)
		db, err := sql.Open("sqlite", "file:"+out+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatalf("read the restore of %s: %v", url, err)
		}
		return n
	}
	newApp := func(path string) *sql.DB {
		t.Helper()
		app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)&_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { app.Close() })
		app.SetMaxOpenConns(1)
		if _, err := app.Exec("CREATE TABLE t (n INTEGER)"); err != nil {
			t.Fatal(err)
		}
		return app
	}
	insert := func(app *sql.DB, n int) {
		t.Helper()
		if _, err := app.Exec("INSERT INTO t (n) VALUES (?)", n); err != nil {
			t.Fatal(err)
		}
	}

	p := startWalship(t, bin, env, "replicate", "-config", cfgPath)
	waitFor(t, "the control socket to answer", func() bool {
		out, err := walship("list", "-socket", sock)
		return err == nil && strings.Contains(out, "replicates no database")
	})

	dbPath := filepath.Join(dir, "app.db")
	url := replicaURL("app")
	app := newApp(dbPath)
	insert(app, 1)
	if out := must("register", "-socket", sock, dbPath, url); !strings.Contains(out, "registered; the running walship replicates it") {
		t.Fatalf("register:\n%s", out)
	}
	fails("already replicated", "register", "-socket", sock, dbPath, replicaURL("other"))
	for _, verb := range []string{"stop", "start", "unregister"} {
		fails("walship list shows the databases", verb, "-socket", sock, filepath.Join(dir, "nope.db"))
	}
	insert(app, 2)
	must("sync", "-socket", sock, "-wait", dbPath)
	if n := rows(url); n != 2 {
		t.Fatalf("after register and sync -wait, the restore holds %d rows, want 2", n)
	}

	// Stopped: the application goes on, and checkpoints the WAL away.
	if out := must("stop", "-socket", sock, dbPath); !strings.Contains(out, "stopped; walship start resumes") {
		t.Fatalf("stop:\n%s", out)
	}
	if out := must("list", "-socket", sock); !strings.Contains(out, dbPath+" [paused]") {
		t.Fatalf("list while stopped:\n%s", out)
	}
	if out := must("stop", "-socket", sock, dbPath); !strings.Contains(out, "stopped already") {
		t.Fatalf("second stop:\n%s", out)
	}
	fails("not being replicated", "sync", "-socket", sock, dbPath)
	for n := 3; n < 53; n++ {
		insert(app, n)
		if n == 27 {
			var busy, logged, done int
			if err := app.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &done); err != nil || busy != 0 {
				t.Fatalf("checkpoint while stopped: busy %d, %v (walship holds the database while stopped?)", busy, err)
			}
		}
	}
	if n := rows(url); n != 2 {
		t.Fatalf("while stopped, the restore holds %d rows, want the 2 shipped before stop", n)
	}
	if out := must("start", "-socket", sock, dbPath); !strings.Contains(out, "replicating again") {
		t.Fatalf("start:\n%s", out)
	}
	if out := must("start", "-socket", sock, dbPath); !strings.Contains(out, "replicating already") {
		t.Fatalf("second start:\n%s", out)
	}
	must("sync", "-socket", sock, "-wait", dbPath)
	if n := rows(url); n != 52 {
		t.Fatalf("after start and sync -wait, the restore holds %d rows, want 52: the gap was not filled", n)
	}
	must("verify", url)

	// Unregistered: its last commits are shipped, and nothing after.
	insert(app, 53)
	if out := must("unregister", "-socket", sock, dbPath); !strings.Contains(out, "unregistered") {
		t.Fatalf("unregister:\n%s", out)
	}
	if n := rows(url); n != 53 {
		t.Fatalf("after unregister, the restore holds %d rows, want 53: its last commit was not flushed", n)
	}
	insert(app, 54)
	fails("walship list shows the databases", "sync", "-socket", sock, dbPath)
	// Longer than the default sync interval: had walship kept the
	// database, it would have shipped row 54 by now. (A wait that is too
	// short can only let this pass wrongly, never fail it wrongly.)
	time.Sleep(2 * time.Second)
	if n := rows(url); n != 53 {
		t.Fatalf("after unregister, the replica received more rows (%d, want 53)", n)
	}
	if out := must("list", "-socket", sock); !strings.Contains(out, "replicates no database") {
		t.Fatalf("list after unregister:\n%s", out)
	}
	// Registered again, it goes on with its replica's history.
	must("register", "-socket", sock, dbPath, url)
	must("sync", "-socket", sock, "-wait", dbPath)
	if n := rows(url); n != 54 {
		t.Fatalf("registered again, the restore holds %d rows, want 54", n)
	}
	must("verify", url)
	must("unregister", "-socket", sock, dbPath)

	// Litestream 0.5's client drives the same verbs.
	ls := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(testserver.Bin(t, "litestream"), args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("litestream %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	lsPath := filepath.Join(dir, "ls.db")
	lsURL := replicaURL("ls")
	lsApp := newApp(lsPath)
	insert(lsApp, 1)
	ls("register", "-socket", sock, "-replica", lsURL, lsPath)
	ls("stop", "-socket", sock, lsPath)
	insert(lsApp, 2)
	ls("start", "-socket", sock, lsPath)
	ls("sync", "-socket", sock, "-wait", lsPath)
	if n := rows(lsURL); n != 2 {
		t.Fatalf("after Litestream's register, stop, start and sync -wait, the restore holds %d rows, want 2", n)
	}
	ls("unregister", "-socket", sock, lsPath)

	p.terminate(t)
}
