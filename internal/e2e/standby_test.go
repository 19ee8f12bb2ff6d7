package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
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
	// Longer than RunStandby's: the application's kill must come a margin
	// (a quarter of it) before the standby's takeover even on a loaded
	// machine; the test asserts that order.
	ttl := 6 * time.Second
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
		addDBKey(t, cfg, "lease-ttl: "+ttl.String())
		return db, cfg
	}
	aDB, aCfg := nodeCfg("a", proxy.URL)
	bDB, bCfg := nodeCfg("b", srv.Endpoint)
	appLine := func(db string) string {
		return fmt.Sprintf("'%s' -db '%s' -rows 1 -wait -every 20ms -on-term 0", app, db)
	}
	// The primary's application is slow to stop: it goes on writing for a
	// minute after SIGTERM, unless killed.
	a := startGroup(t, bin, env, "replicate", "-config", aCfg, "-exec", appLine(aDB)+" -linger 1m")
	waitGroupOutput(t, a, "execapp: waiting for a signal", 30*time.Second)
	appPID := startedPID(t, a)
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
	var aStopped, aAppGone, bPromoted time.Time
	deadline := time.Now().Add(ttl + 30*time.Second)
	for aStopped.IsZero() || aAppGone.IsZero() || bPromoted.IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("after the partition: the primary stopped at %v, its application was gone at %v, the standby promoted at %v; want all three", aStopped, aAppGone, bPromoted)
		}
		if aStopped.IsZero() && strings.Contains(a.output(), "lost the lease") {
			aStopped = time.Now()
		}
		if aAppGone.IsZero() && syscall.Kill(appPID, 0) == syscall.ESRCH {
			aAppGone = time.Now()
		}
		if bPromoted.IsZero() && strings.Contains(b.output(), "took it over") {
			bPromoted = time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !bPromoted.After(aStopped) {
		t.Fatalf("the standby took the lease over %s before the partitioned primary stopped", aStopped.Sub(bPromoted))
	}
	// Its application, which would have written for a minute more, was
	// killed before the standby could start its own.
	if !bPromoted.After(aAppGone) {
		t.Fatalf("the standby took the lease over %s before the partitioned primary's application was gone", aAppGone.Sub(bPromoted))
	}
	t.Logf("the partitioned primary stopped %s, and its application was gone %s, before the standby took the lease over",
		bPromoted.Sub(aStopped).Round(time.Millisecond), bPromoted.Sub(aAppGone).Round(time.Millisecond))
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

// startedPID returns the pid of the application walship -exec started, as
// its log says.
func startedPID(t *testing.T, p *groupProcess) int {
	t.Helper()
	m := regexp.MustCompile(`msg="started the application" pid=(\d+)`).FindStringSubmatch(p.output())
	if m == nil {
		t.Fatalf("walship did not log the application's pid:\n%s", p.output())
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
