package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/lease"
	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/s3"
)

// TestStandbyPartitionedPrimary: a primary cut off from its replica (its
// requests to MinIO blocked by the fault proxy while it keeps running)
// stops its application, saying it lost the lease, before the standby,
// which reaches MinIO directly, promotes and runs its promotion hook;
// after the partition heals, the
// replica holds one chain with no gap and no reuse.
func TestStandbyPartitionedPrimary(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	proxy := testserver.NewFaultProxy(t, srv.Endpoint, 0)
	dir := t.TempDir()
	bin, app := Binary(t), execApp(t)
	env := []string{"WALSHIP_ACCESS_KEY_ID=" + srv.AccessKey, "WALSHIP_SECRET_ACCESS_KEY=" + srv.SecretKey}
	client, err := s3.Open(context.Background(), storage.Spec{URL: &url.URL{Scheme: "s3", Host: bucket, Path: "/app"}, Keys: map[string]string{
		"endpoint": srv.Endpoint, "region": srv.Region, "access-key-id": srv.AccessKey, "secret-access-key": srv.SecretKey}})
	if err != nil {
		t.Fatal(err)
	}
	nodeCfg := func(name, endpoint string) (db, cfg string) {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		db = filepath.Join(dir, name, "app.db")
		cfg = writeConfig(t, filepath.Join(dir, name, "walship.yml"), db, Replica{YAML: fmt.Sprintf("url: s3://%s/app\nendpoint: %s", bucket, endpoint)})
		addDBKey(t, cfg, "lease-ttl: "+standbyTTL.String())
		return db, cfg
	}
	aDB, aCfg := nodeCfg("a", proxy.URL)
	bDB, bCfg := nodeCfg("b", srv.Endpoint)
	appLine := func(db string) string {
		return fmt.Sprintf("'%s' -db '%s' -rows 1 -wait -every 20ms -on-term 0", app, db)
	}
	a := startGroup(t, bin, env, "replicate", "-config", aCfg, "-exec", appLine(aDB))
	waitGroupOutput(t, a, "execapp: waiting for a signal", 30*time.Second)
	hooked := filepath.Join(dir, "hook.out")
	hook := fmt.Sprintf(`sh -c 'echo "$WALSHIP_PROMOTED_DB $WALSHIP_PROMOTED_TXID" > %s'`, hooked)
	b := startGroup(t, bin, env, "replicate", "-standby", "-config", bCfg, "-exec", appLine(bDB), "-promote-hook", hook)
	waitGroupOutput(t, b, "msg=following", 30*time.Second)
	defer func() {
		if t.Failed() {
			t.Logf("node a:\n%s\nnode b:\n%s", a.output(), b.output())
		}
	}()
	time.Sleep(time.Second)

	proxy.SetDown(true)
	var aStopped, bPromoted time.Time
	deadline := time.Now().Add(standbyTTL + 30*time.Second)
	for aStopped.IsZero() || bPromoted.IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("after the partition: the primary stopped at %v, the standby promoted at %v; want both", aStopped, bPromoted)
		}
		if aStopped.IsZero() && strings.Contains(a.output(), "lost the lease") {
			aStopped = time.Now()
		}
		if bPromoted.IsZero() && strings.Contains(b.output(), "took it over") {
			bPromoted = time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !bPromoted.After(aStopped) {
		t.Fatalf("the standby took the lease over %s before the partitioned primary stopped", aStopped.Sub(bPromoted))
	}
	t.Logf("the partitioned primary stopped %s before the standby took the lease over", bPromoted.Sub(aStopped).Round(time.Millisecond))
	if !strings.Contains(a.output(), "stopping the application") {
		t.Fatal("the partitioned primary did not stop its application")
	}
	waitGroupOutput(t, b, "execapp: waiting for a signal", 30*time.Second)
	rec, _, err := lease.Read(context.Background(), client)
	if err != nil || rec.Path != bDB {
		t.Fatalf("the lease: %+v, %v; want held by %s", rec, err, bDB)
	}
	waitRenewedPast(t, context.Background(), Replica{Client: client}, rec.TXID)
	// The promotion hook ran, with the promoted database and TXID.
	waitGroupOutput(t, b, "ran the promotion hook", 30*time.Second)
	if out, err := os.ReadFile(hooked); err != nil || !strings.HasPrefix(string(out), bDB+" ") {
		t.Fatalf("the promotion hook wrote %q, %v; want the promoted database and TXID", out, err)
	}
	proxy.SetDown(false)
	a.cmd.Wait()
	time.Sleep(500 * time.Millisecond)
	if err := b.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Wait(); err != nil {
		t.Fatalf("the new primary did not stop cleanly: %v", err)
	}
	checkChain(t, context.Background(), client)
	if out := run(t, bin, env, "verify", "-config", bCfg, bDB); !strings.Contains(out, "in sync") {
		t.Fatalf("walship verify does not find the replica in sync with the new primary:\n%s", out)
	}
}
