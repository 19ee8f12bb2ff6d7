package e2e

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
	"github.com/walship/walship/storage/s3"
)

// Two replicas of one database, a directory and S3 (MinIO behind a proxy
// that can take it down): while S3 is down, and across a SIGKILL and a
// restart while it is still down, the directory replica keeps receiving every
// change; once S3 is back it catches up; both restore to the application's
// final database.
func TestSeveralReplicasOneDown(t *testing.T) {
	ctx := context.Background()
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	proxy := testserver.NewFaultProxy(t, srv.Endpoint, 0)
	dir := t.TempDir()
	bin := Binary(t)
	dbPath := filepath.Join(dir, "app.db")
	local := file.New(filepath.Join(dir, "nas"))
	cfgPath := writeReplicasConfig(t, filepath.Join(dir, "walship.yml"), dbPath,
		"name: nas\nurl: file://"+filepath.Join(dir, "nas"),
		fmt.Sprintf("name: offsite\nurl: s3://%s/app\nendpoint: %s", bucket, proxy.URL))
	env := []string{"WALSHIP_ACCESS_KEY_ID=" + srv.AccessKey, "WALSHIP_SECRET_ACCESS_KEY=" + srv.SecretKey}
	remote, err := s3.Open(ctx, storage.Spec{URL: &url.URL{Scheme: "s3", Host: bucket, Path: "/app"}, Keys: map[string]string{
		"endpoint": srv.Endpoint, "access-key-id": srv.AccessKey, "secret-access-key": srv.SecretKey,
	}})
	if err != nil {
		t.Fatal(err)
	}

	w := startWriter(t, dbPath)
	p := startWalship(t, bin, env, "replicate", "-config", cfgPath)
	waitFor(t, "both replicas to receive the first changes", func() bool {
		return newest(t, local) > 1 && newest(t, remote) > 1
	})

	proxy.SetDown(true)
	atDown := newest(t, local)
	waitFor(t, "the directory replica to move on while S3 is down", func() bool { return newest(t, local) > atDown+5 })
	p.kill(t)

	// Restarted while S3 is still down: the staging directory holds the
	// history, so walship starts and the directory replica keeps up.
	atRestart := newest(t, local)
	p = startWalship(t, bin, env, "replicate", "-config", cfgPath)
	waitFor(t, "the directory replica to move on after a restart with S3 down", func() bool { return newest(t, local) > atRestart+5 })
	if got := newest(t, remote); got >= newest(t, local) {
		t.Fatalf("S3 was down but holds TXID %s, as far as the directory", got)
	}

	proxy.SetDown(false)
	w.stop(t)
	waitFor(t, "S3 to catch up", func() bool { return newest(t, remote) == newest(t, local) })
	p.terminate(t)
	finish(t, bin, env, "replicate", "-once", "-config", cfgPath)

	for _, c := range []storage.Client{local, remote} {
		checkChain(t, ctx, c)
	}
	for _, name := range []string{"nas", "offsite"} {
		out := filepath.Join(dir, name+".db")
		run(t, bin, env, "restore", "-config", cfgPath, "-replica", name, "-o", out, dbPath)
		if got := imageOfFile(t, out); got != w.last {
			t.Fatalf("replica %s does not restore the application's final database", name)
		}
	}
}

// newest returns the newest TXID at level 0 of c.
func newest(t *testing.T, c storage.Client) ltx.TXID {
	t.Helper()
	files, err := c.LTXFiles(context.Background(), 0)
	if err != nil {
		t.Fatalf("list %s: %v", c, err)
	}
	if len(files) == 0 {
		return 0
	}
	return files[len(files)-1].MaxTXID
}

// waitFor polls cond for up to two minutes: remote backends back off for
// seconds between retries, so how long is not the point, only that it
// happens.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitForUpTo(t, 2*time.Minute, what, cond)
}

// waitForUpTo is waitFor with another deadline.
func waitForUpTo(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
