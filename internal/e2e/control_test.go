package e2e

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/internal/testserver"
)

// TestControlSocketSyncWait: the control socket and the durability
// barrier through the real binary, on a directory replica and on S3
// (MinIO behind a proxy that can take it down). The sync interval is an
// hour, so only walship sync captures the commits. After `walship sync
// -wait` returns, a restore from each replica, run at once, holds the row
// just written. While S3 is down, `sync -wait -timeout 2s` fails naming
// it, and succeeds once it is back. The socket has mode 0600; a second
// walship on it is refused; the socket a SIGKILL leaves does not stop the
// next start; a clean stop removes it. Litestream's client (sync -wait,
// list) works on walship's socket.
func TestControlSocketSyncWait(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	proxy := testserver.NewFaultProxy(t, srv.Endpoint, 0)
	dir := t.TempDir()
	bin := Binary(t)
	dbPath := filepath.Join(dir, "app.db")
	sock := filepath.Join(dir, "walship.sock")
	cfgPath := filepath.Join(dir, "walship.yml")
	cfg := fmt.Sprintf(`socket:
  enabled: true
  path: %s
dbs:
  - path: %s
    sync-interval: 1h
    replicas:
      - name: nas
        url: file://%s
      - name: offsite
        url: s3://%s/app
        endpoint: %s
`, sock, dbPath, filepath.Join(dir, "nas"), bucket, proxy.URL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"WALSHIP_ACCESS_KEY_ID=" + srv.AccessKey, "WALSHIP_SECRET_ACCESS_KEY=" + srv.SecretKey}

	app, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=journal_mode(wal)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if _, err := app.Exec("CREATE TABLE t (n INTEGER)"); err != nil {
		t.Fatal(err)
	}
	insert := func(n int) {
		t.Helper()
		if _, err := app.Exec("INSERT INTO t (n) VALUES (?)", n); err != nil {
			t.Fatal(err)
		}
	}
	// restored reports whether a restore from the replica holds row n.
	restored := func(replica string, n int) bool {
		t.Helper()
		out := filepath.Join(t.TempDir(), replica+".db")
		run(t, bin, env, "restore", "-config", cfgPath, "-replica", replica, "-o", out, dbPath)
		db, err := sql.Open("sqlite", "file:"+out+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var count int
		if err := db.QueryRow("SELECT count(*) FROM t WHERE n = ?", n).Scan(&count); err != nil {
			t.Fatalf("read %s: %v", out, err)
		}
		return count == 1
	}
	walship := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	ready := func() {
		t.Helper()
		waitFor(t, "the control socket to answer", func() bool {
			out, err := walship("list", "-socket", sock)
			return err == nil && strings.Contains(out, "[replicating]")
		})
	}

	p := startWalship(t, bin, env, "replicate", "-config", cfgPath)
	ready()
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode %v; want a socket with mode 0600", fi.Mode())
	}

	for n := 1; n <= 3; n++ {
		insert(n)
		run(t, bin, env, "sync", "-config", cfgPath, "-wait", "-timeout", "60s", dbPath)
		for _, replica := range []string{"nas", "offsite"} {
			if !restored(replica, n) {
				t.Fatalf("after sync -wait, a restore from %s lacks row %d", replica, n)
			}
		}
	}

	proxy.SetDown(true)
	insert(4)
	out, err := walship("sync", "-socket", sock, "-wait", "-timeout", "2s", dbPath)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, `replica "offsite" holds TXID`) || !strings.Contains(out, "wanted") {
		t.Fatalf("sync -wait with S3 down: %v\n%s\nwant exit 1 naming replica offsite", err, out)
	}
	proxy.SetDown(false)
	run(t, bin, env, "sync", "-socket", sock, "-wait", "-timeout", "90s", dbPath)
	if !restored("offsite", 4) {
		t.Fatal("after S3 came back and sync -wait returned, a restore from it lacks row 4")
	}

	// Another walship on the same socket is refused, and the first keeps it.
	out, err = walship("replicate", "-config", cfgPath)
	if err == nil || !strings.Contains(out, "another process listens on the control socket") {
		t.Fatalf("a second walship on the socket: %v\n%s", err, out)
	}
	ready()

	// The socket a killed walship leaves does not stop the next one.
	p.kill(t)
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("after SIGKILL the socket file is gone (%v): the test proves nothing", err)
	}
	p = startWalship(t, bin, env, "replicate", "-config", cfgPath)
	ready()
	insert(5)
	run(t, bin, env, "sync", "-config", cfgPath, "-wait", dbPath)
	if !restored("nas", 5) {
		t.Fatal("after a restart over a stale socket, sync -wait returned but nas lacks row 5")
	}
	// Litestream 0.5's own client speaks to walship's socket.
	insert(6)
	ls := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(testserver.Bin(t, "litestream"), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("litestream %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := ls("sync", "-socket", sock, "-wait", dbPath); !strings.Contains(out, "replica_txid:") {
		t.Errorf("litestream sync -wait through walship's socket:\n%s", out)
	}
	if !restored("nas", 6) || !restored("offsite", 6) {
		t.Fatal("after litestream sync -wait through walship's socket, a replica lacks row 6")
	}
	if out := ls("list", "-socket", sock); !strings.Contains(out, dbPath+" [replicating]") {
		t.Errorf("litestream list through walship's socket:\n%s", out)
	}
	if out := run(t, bin, env, "info", "-socket", sock, dbPath); !strings.Contains(out, dbPath) || !strings.Contains(out, "replica offsite") {
		t.Errorf("info DB:\n%s", out)
	}
	p.terminate(t)
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the socket is still there after a clean stop: %v", err)
	}
}
