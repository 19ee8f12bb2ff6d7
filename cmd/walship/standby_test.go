package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/lease"
	"github.com/walship/walship/internal/monitor"
	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/storage/file"
)

// -standby refuses what it cannot stand by for before anything is
// written: DB_PATH REPLICA_URL, -once, -takeover, a -promote-hook alone, a
// config of two databases, a database without lease-ttl, an S3 replica
// without conditional writes.
func TestStandbyUsage(t *testing.T) {
	dir := t.TempDir()
	db, replica := filepath.Join(dir, "app.db"), "file://"+filepath.Join(dir, "replica")
	config := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leased := config("leased.yml", "dbs:\n  - path: "+db+"\n    lease-ttl: 3s\n    replica:\n      url: "+replica+"\n")
	two := config("two.yml", "dbs:\n  - path: "+db+"\n    lease-ttl: 3s\n    replica:\n      url: "+replica+"\n  - path: "+db+"2\n    replica:\n      url: "+replica+"2\n")
	noLease := config("nolease.yml", "dbs:\n  - path: "+db+"\n    replica:\n      url: "+replica+"\n")
	unconditional := config("s3.yml", "dbs:\n  - path: "+db+"\n    lease-ttl: 3s\n    replica:\n      url: s3://bucket/app\n      endpoint: http://127.0.0.1:1\n      region: us-east-1\n      conditional-writes: false\n")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"replicate", "-standby", db, replica}, 2, "-standby needs the config file"},
		{[]string{"replicate", "-standby", "-once", "-config", leased}, 2, "-standby cannot be combined with -once"},
		{[]string{"replicate", "-standby", "-takeover", "-config", leased}, 2, "-standby cannot be combined with -takeover"},
		{[]string{"replicate", "-promote-hook", "true", "-config", leased}, 2, "-promote-hook applies only with -standby"},
		{[]string{"replicate", "-standby", "-config", two}, 2, "exactly one database"},
		{[]string{"replicate", "-standby", "-config", noLease}, 1, "standby mode needs lease-ttl"},
		{[]string{"replicate", "-standby", "-config", unconditional}, 1, "cannot hold a lease"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, want %d with %q:\n%s", c.args, code, c.code, c.want, stderr)
		}
	}
	if _, err := os.Stat(db); err == nil {
		t.Fatal("a refused standby created the database")
	}
}

// TestStandbyServesStatus: replicate -standby with addr: serves /metrics,
// /healthz and /status while it stands by: the standby's lag
// (walship_standby_lag_seconds), the lease not held by it, and the
// primary holding it; walship status prints them.
func TestStandbyServesStatus(t *testing.T) {
	noConfig(t)
	dir := t.TempDir()
	primaryDB, standbyDB := filepath.Join(dir, "app.db"), filepath.Join(dir, "standby", "app.db")
	replica := filepath.Join(dir, "replica")
	addr := testserver.Addr(testserver.FreePort(t))
	config := func(name, extra, db string) string {
		p := filepath.Join(dir, name)
		yml := fmt.Sprintf("%sdbs:\n  - path: %s\n    sync-interval: 20ms\n    lease-ttl: 3s\n    replica:\n      url: file://%s\n", extra, db, replica)
		if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	primaryCfg := config("primary.yml", "", primaryDB)
	standbyCfg := config("standby.yml", "addr: "+addr+"\n", standbyDB)

	app := newAppDB(t, primaryDB, 5)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { runCLICtx(ctx, "replicate", "-config", primaryCfg) })
	wg.Go(func() { runCLICtx(ctx, "replicate", "-standby", "-config", standbyCfg) })

	// The standby serves its copy's lag from the start, and never holds
	// the lease while the primary renews it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		app.insert(1)
		m, err := testutil.Scrape("http://" + addr + "/metrics")
		_, lagged := m.Value("walship_standby_lag_seconds", "db", standbyDB)
		held, leased := m.Value("walship_lease_held", "db", standbyDB)
		if err == nil && lagged && leased {
			if held != 0 {
				t.Fatal("the standby reports holding the lease while the primary renews it")
			}
			// None of a primary's figures: they would be zeros that
			// look like a replica that stopped.
			for _, name := range []string{"walship_replica_txid", "walship_replica_lag_seconds", "walship_db_wal_bytes", "walship_db_staging_bytes"} {
				if _, ok := m.Value(name, "db", standbyDB); ok {
					t.Fatalf("the standby serves %s, a primary's figure", name)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby's metrics never showed its lag (scrape error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a standby's /healthz: %s", resp.Status)
	}
	var rep monitor.Report
	for {
		rep = monitor.Report{}
		resp, err := http.Get("http://" + addr + "/status")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&rep)
			resp.Body.Close()
		}
		if err == nil && len(rep.DBs) == 1 && rep.DBs[0].Lease != nil && rep.DBs[0].Lease.Holder != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/status never named the lease's holder: %+v, %v", rep, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := rep.DBs[0]
	if st.Phase != walship.StateStandby || st.Lease.Held || st.Lease.Standby == nil || st.Lease.Standby.TXID == 0 || !strings.Contains(st.Lease.Holder, primaryDB) {
		t.Fatalf("the standby's /status: %+v, lease %+v; want phase standby, the lease held by %s, and its copy", st, st.Lease, primaryDB)
	}
	out := mustRun(t, "status", "-addr", addr)
	for _, want := range []string{"standing by", "held by node", primaryDB, "standby copy at TXID", "lag "} {
		if !strings.Contains(out, want) {
			t.Fatalf("walship status does not say %q:\n%s", want, out)
		}
	}
	// Nor what a standby does not do: capture, or upload to the replica.
	for _, not := range []string{"captured TXID", "replica file:"} {
		if strings.Contains(out, not) {
			t.Fatalf("walship status of a standby says %q:\n%s", not, out)
		}
	}
}

// TestReplicateLeaseHeldExitStatus: a primary that finds the lease held by
// another node (the standby promoted while it was down) exits with
// exitLeaseHeld, naming the holder, so that a service manager does not
// restart it as a primary in a loop.
func TestReplicateLeaseHeldExitStatus(t *testing.T) {
	noConfig(t)
	dir := t.TempDir()
	db, replica := filepath.Join(dir, "app.db"), filepath.Join(dir, "replica")
	newAppDB(t, db, 3)
	other := lease.NewHolder(file.New(replica), lease.Record{Node: "n2", Host: "standby-host", Path: "/srv/app.db"}, time.Minute, nil)
	if err := other.Acquire(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "walship.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "dbs:\n  - path: %s\n    lease-ttl: 3s\n    replica:\n      url: file://%s\n", db, replica), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "replicate", "-config", cfg)
	if code != exitLeaseHeld || !strings.Contains(stderr, "standby-host") {
		t.Fatalf("exit %d; want %d naming the holder:\n%s", code, exitLeaseHeld, stderr)
	}
}

// TestExecNotStartedWhenLeaseHeld: with a lease held by another node, the
// application is never started, not even while its database does not
// exist yet (walship takes the role before it waits for the file, which
// the application would create): only the primary's application writes.
func TestExecNotStartedWhenLeaseHeld(t *testing.T) {
	noConfig(t)
	dir := t.TempDir()
	db, replica := filepath.Join(dir, "app.db"), filepath.Join(dir, "replica")
	other := lease.NewHolder(file.New(replica), lease.Record{Node: "n2", Host: "standby-host", Path: "/srv/app.db"}, time.Minute, nil)
	if err := other.Acquire(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "walship.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "dbs:\n  - path: %s\n    lease-ttl: 3s\n    replica:\n      url: file://%s\n", db, replica), 0o600); err != nil {
		t.Fatal(err)
	}
	started := filepath.Join(dir, "started")
	code, _, stderr := runCLI(t, "replicate", "-config", cfg, "-exec", "touch "+started)
	if code == 0 || !strings.Contains(stderr, "standby-host") {
		t.Fatalf("exit %d; want a failure naming the holder:\n%s", code, stderr)
	}
	if _, err := os.Stat(started); err == nil {
		t.Fatal("the application was started on a node that does not hold the lease")
	}
	if _, err := os.Stat(db); err == nil {
		t.Fatal("the database was created on a node that does not hold the lease")
	}
}

// TestStandbyFlag: -standby is a boolean flag that also takes "auto".
func TestStandbyFlag(t *testing.T) {
	for _, c := range []struct {
		arg      string
		on, auto bool
	}{
		{"-standby", true, false},
		{"-standby=true", true, false},
		{"-standby=auto", false, true},
		{"-standby=false", false, false},
	} {
		var sb standbyFlags
		fs := flag.NewFlagSet("replicate", flag.ContinueOnError)
		fs.Var(standbyFlag{&sb}, "standby", "")
		if err := fs.Parse([]string{c.arg}); err != nil || sb.on != c.on || sb.auto != c.auto {
			t.Errorf("%s: on %v, auto %v, %v; want on %v, auto %v", c.arg, sb.on, sb.auto, err, c.on, c.auto)
		}
	}
	var sb standbyFlags
	fs := flag.NewFlagSet("replicate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(standbyFlag{&sb}, "standby", "")
	if err := fs.Parse([]string{"-standby=sometimes"}); err == nil {
		t.Error("-standby=sometimes was accepted")
	}
}

// TestPromoteWarnsWithoutExec: walship promote reports a clean handover,
// and warns when the previous primary's application does not run under
// walship: nothing stops it from writing its own copy.
func TestPromoteWarnsWithoutExec(t *testing.T) {
	noConfig(t)
	ctx := context.Background()
	dir := t.TempDir()
	db, replica := filepath.Join(dir, "standby.db"), filepath.Join(dir, "replica")
	c := file.New(replica)
	primary := lease.NewHolder(c, lease.Record{Node: "p1", Host: "primary-host", Path: "/srv/app.db"}, time.Minute, nil)
	if err := primary.Acquire(ctx, 5); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "walship.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "dbs:\n  - path: %s\n    lease-ttl: 1m\n    replica:\n      url: file://%s\n", db, replica), 0o600); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, stdout, stderr := runCLI(t, "promote", "-config", cfg, "-timeout", "30s")
		done <- result{code, stdout, stderr}
	}()
	// The primary sees the request, hands over; the standby takes over.
	deadline := time.Now().Add(30 * time.Second)
	for asked, _ := lease.HandoverRequested(ctx, c, "p1"); !asked; asked, _ = lease.HandoverRequested(ctx, c, "p1") {
		if time.Now().After(deadline) {
			t.Fatal("walship promote wrote no handover request")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := primary.Release(ctx, 5); err != nil {
		t.Fatal(err)
	}
	seen, err := lease.NewObserver(c, time.Minute).Observe(ctx)
	if err != nil || !seen.Expired {
		t.Fatalf("the released lease: %+v, %v", seen, err)
	}
	host, _ := os.Hostname()
	if err := lease.NewHolder(c, lease.Record{Node: "s1", Host: host, Path: db}, time.Minute, nil).TakeOver(ctx, seen, 5); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.code != 0 || !strings.Contains(r.stdout, "handed over with every commit") || !strings.Contains(r.stderr, "does not run its application under walship") {
		t.Fatalf("promote: exit %d\n%s\n%s\nwant a clean handover and a warning about the application", r.code, r.stdout, r.stderr)
	}
}

// TestDemoteHookOnLostLease: a primary without -exec that loses its lease
// runs the demotion hook (for the application it does not run), stops,
// and exits non-zero saying so.
func TestDemoteHookOnLostLease(t *testing.T) {
	ctx := context.Background()
	p := startLeasedPrimary(t, func(marker string) string { return "touch " + marker })
	marker, c := p.marker, p.replica
	// Another node writes over the lease (as a standby that took it over).
	data, version, err := c.ReadRecord(ctx, lease.RecordName)
	if err != nil {
		t.Fatal(err)
	}
	var rec lease.Record
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	rec.Node, rec.Host, rec.Path, rec.Seq = "intruder", "elsewhere", "/srv/app.db", rec.Seq+1
	data, _ = json.Marshal(rec)
	if _, err := c.WriteRecord(ctx, lease.RecordName, data, version); err != nil {
		t.Fatal(err)
	}
	r := p.wait(t, "the primary that lost its lease did not stop")
	if r.code == 0 || !strings.Contains(r.stderr, "lost the primary role") {
		t.Fatalf("exit %d; want a failure saying it lost the primary role:\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the demotion hook did not run: %v\n%s", err, r.stderr)
	}
}

// TestHandoverWithoutExec: a primary whose application walship does not
// run, asked to hand over (walship promote's request), stops cleanly,
// releases its lease once the replica holds every commit, exits 0, and
// runs its demotion hook saying it handed over.
func TestHandoverWithoutExec(t *testing.T) {
	ctx := context.Background()
	p := startLeasedPrimary(t, func(marker string) string { return fmt.Sprintf(`sh -c 'echo "$WALSHIP_REASON" > %s'`, marker) })
	marker, c := p.marker, p.replica
	if _, err := lease.RequestHandover(ctx, c, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	r := p.wait(t, "the primary asked to hand over did not stop")
	if r.code != 0 {
		t.Fatalf("exit %d; want 0:\n%s", r.code, r.stderr)
	}
	if rec, _, err := lease.Read(ctx, c); err != nil || !rec.Released {
		t.Fatalf("the lease after the handover: %+v, %v; want released", rec, err)
	}
	if why, err := os.ReadFile(marker); err != nil || !strings.Contains(string(why), "handed over") {
		t.Fatalf("the demotion hook: %q, %v; want it to say the node handed over", why, err)
	}
}

// leasedPrimary is `walship replicate` running as the primary of a new
// database, with a 3 s lease on its directory replica and a demotion hook.
type leasedPrimary struct {
	marker  string // a path the demotion hook may write
	replica *file.Client
	done    chan cliExit
}

// cliExit is how a run of the command line ended.
type cliExit struct {
	code   int
	stderr string
}

// startLeasedPrimary starts it, with the demotion hook hook(marker), and
// returns once it holds the lease.
func startLeasedPrimary(t *testing.T, hook func(marker string) string) leasedPrimary {
	t.Helper()
	noConfig(t)
	dir := t.TempDir()
	db, replica := filepath.Join(dir, "app.db"), filepath.Join(dir, "replica")
	newAppDB(t, db, 3)
	cfg := filepath.Join(dir, "walship.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "dbs:\n  - path: %s\n    lease-ttl: 3s\n    replica:\n      url: file://%s\n", db, replica), 0o600); err != nil {
		t.Fatal(err)
	}
	p := leasedPrimary{marker: filepath.Join(dir, "demoted"), replica: file.New(replica), done: make(chan cliExit, 1)}
	go func() {
		code, _, stderr := runCLI(t, "replicate", "-config", cfg, "-demote-hook", hook(p.marker))
		p.done <- cliExit{code, stderr}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if rec, _, err := lease.Read(context.Background(), p.replica); err == nil && rec.Path == db {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatal("the primary took no lease")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait returns how the primary's run ended, failing with stuck if it has
// not within 30 s.
func (p leasedPrimary) wait(t *testing.T, stuck string) cliExit {
	t.Helper()
	select {
	case r := <-p.done:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal(stuck)
		return cliExit{}
	}
}
