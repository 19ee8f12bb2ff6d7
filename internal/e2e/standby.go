package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/internal/lease"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/storage"
)

// standbyTTL is the lease's TTL in RunStandby: short, so that a cycle
// takes seconds, and long enough that a loaded machine's renewals (every
// second) reach the replica well within it.
const standbyTTL = 3 * time.Second

// StandbyCycles is how many times RunStandby kills the primary:
// WALSHIP_STANDBY_CYCLES overrides the default (20 for a long run).
func StandbyCycles(def int) int {
	if n, err := strconv.Atoi(os.Getenv("WALSHIP_STANDBY_CYCLES")); err == nil && n > 0 {
		return n
	}
	return def
}

// node is one machine of RunStandby: its own directory, database and
// config, running walship with the application under -exec.
type node struct {
	name, db, cfg string
	p             *groupProcess
}

// RunStandby is the end-to-end test of failover (walship replicate
// -standby, lease-ttl) on the destination of r, which must be empty: two
// nodes on one machine, each with its own directory, replicate one
// database to r with a 3s lease, each running internal/e2e/execapp under
// -exec (a row every 20ms). The first starts as the primary, the second as
// a standby. Then, cycles times, the primary (walship and its
// application) is SIGKILLed under writes and restarted as a standby:
//
//   - the standby promotes within the TTL plus a few seconds, and its
//     application writes;
//   - the lease names exactly the promoted node;
//   - the old primary restarted as a primary is refused, naming the
//     holder; restarted as a standby, it keeps its database aside and
//     follows.
//
// Then a switchover: the primary is stopped with SIGTERM; it releases its
// lease once the replica holds its last commit, and the standby promotes
// with that commit; then another, with walship promote on the standby. At the end the new primary is stopped with SIGTERM:
// the replica holds one chain of TXIDs with no gap and no reuse, walship verify finds it in
// sync with the survivor's database, and a restore holds the survivor's
// rows exactly.
func RunStandby(t *testing.T, r Replica, cycles int) {
	if r.Client == nil {
		t.Fatal("e2e.RunStandby: Replica.Client is nil")
	}
	ctx := context.Background()
	dir := t.TempDir()
	bin, app := Binary(t), execApp(t)
	nodes := [2]*node{}
	for i, name := range []string{"a", "b"} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		n := &node{name: name, db: filepath.Join(dir, name, "app.db")}
		n.cfg = writeConfig(t, filepath.Join(dir, name, "walship.yml"), n.db, r)
		addDBKey(t, n.cfg, "lease-ttl: "+standbyTTL.String())
		nodes[i] = n
	}
	appLine := func(n *node) string {
		return fmt.Sprintf("'%s' -db '%s' -rows 1 -wait -every 20ms -on-term 0", app, n.db)
	}
	// The demotion hook leaves a file saying why the node stopped being
	// the primary.
	demoteLine := func(n *node) string {
		return fmt.Sprintf(`sh -c 'echo "$WALSHIP_REASON" > %s'`, filepath.Join(dir, n.name, "demoted"))
	}
	defer func() {
		if t.Failed() {
			for _, n := range nodes {
				if n.p != nil {
					t.Logf("node %s:\n%s", n.name, n.p.output())
				}
			}
		}
	}()

	// Both nodes run the same command (-standby=auto): the first to
	// start is the primary, the other finds the lease held and stands by.
	primary, standby := nodes[0], nodes[1]
	primary.p = startGroup(t, bin, r.Env, "replicate", "-standby=auto", "-config", primary.cfg, "-exec", appLine(primary), "-demote-hook", demoteLine(primary))
	waitGroupOutput(t, primary.p, "execapp: waiting for a signal", 30*time.Second)
	standby.p = startGroup(t, bin, r.Env, "replicate", "-standby=auto", "-config", standby.cfg, "-exec", appLine(standby), "-demote-hook", demoteLine(standby))
	waitGroupOutput(t, standby.p, "msg=following", 30*time.Second)
	if !strings.Contains(standby.p.output(), "another node holds the primary role: standing by") {
		t.Fatalf("the second node started with -standby=auto did not say why it stands by:\n%s", standby.p.output())
	}

	// No file the replica held is ever written again: an old primary's
	// write landing after a takeover would change one in place.
	written := map[string]int64{}
	for cycle := range cycles {
		// Let the primary write for a moment, then kill its machine.
		time.Sleep(time.Duration(300+100*(cycle%5)) * time.Millisecond)
		primary.p.killGroup(t)
		killed := time.Now()
		waitGroupOutput(t, standby.p, "execapp: waiting for a signal", standbyTTL+30*time.Second)
		took := time.Since(killed)
		// The lease is taken after a TTL of the old one unchanged, seen
		// by polling every TTL/3, then the copy catches up and the
		// application starts: allow the TTL plus a few seconds.
		if took > standbyTTL+standbyTTL/3+5*time.Second {
			t.Fatalf("cycle %d: the standby's application started %s after the primary was killed; want within the TTL (%s) plus a few seconds", cycle, took, standbyTTL)
		}
		if !strings.Contains(standby.p.output(), "promoted: this node is now the primary") {
			t.Fatalf("cycle %d: the standby did not say it was promoted", cycle)
		}
		rec, _, err := lease.Read(ctx, r.Client)
		if err != nil || rec.Path != standby.db {
			t.Fatalf("cycle %d: the lease is %+v, %v; want held by the promoted node %s", cycle, rec, err, standby.db)
		}
		t.Logf("cycle %d: node %s promoted %s after node %s was killed, at TXID %d", cycle, standby.name, took.Round(time.Millisecond), primary.name, rec.TXID)
		// The new primary's application writes and they reach the
		// replica; walship says when the first was accepted, and what
		// the failover may have lost.
		waitRenewedPast(t, ctx, r, rec.TXID)
		waitGroupOutput(t, standby.p, "failover complete: the promoted database accepted its first write", 30*time.Second)
		// The promoted copy is the replica's state byte for byte: its
		// replication goes on from it, without a full copy.
		if strings.Contains(standby.p.output(), "writing a full copy") {
			t.Fatalf("cycle %d: the promoted node wrote a full copy of the database", cycle)
		}
		if !strings.Contains(standby.p.output(), "the previous primary stopped without releasing the lease") && !strings.Contains(standby.p.output(), "TXIDs of the previous primary are lost") {
			t.Fatalf("cycle %d: the promoted node did not say what the failover may have lost", cycle)
		}

		if cycle == 0 {
			// The old primary coming back as a primary is refused,
			// naming the holder, and writes nothing; a one-shot run
			// is refused for holding a lease at all.
			res := runResult(bin, r.Env, "replicate", "-config", primary.cfg)
			if res.err == nil || !strings.Contains(res.out, "held by") || !strings.Contains(res.out, standby.db) {
				t.Fatalf("the old primary restarted as a primary: %v; want a refusal naming the holder %s:\n%s", res.err, standby.db, res.out)
			}
			res = runResult(bin, r.Env, "replicate", "-once", "-config", primary.cfg)
			if res.err == nil || !strings.Contains(res.out, "cannot hold the primary role's lease") {
				t.Fatalf("replicate -once with a lease: %v; want a refusal:\n%s", res.err, res.out)
			}
		}
		// The old primary comes back with the same command: it finds
		// the lease held and stands by (every other cycle, started
		// as a standby on purpose).
		mode := "-standby=auto"
		if cycle%2 == 1 {
			mode = "-standby"
		}
		primary.p = startGroup(t, bin, r.Env, "replicate", mode, "-config", primary.cfg, "-exec", appLine(primary), "-demote-hook", demoteLine(primary))
		waitGroupOutput(t, primary.p, "msg=following", 30*time.Second)
		if !strings.Contains(primary.p.output(), "kept it aside") {
			t.Fatalf("cycle %d: the old primary did not keep its database aside", cycle)
		}
		// The database kept aside holds every commit the old primary
		// made: those the new primary lacks are the data lost, and
		// each was committed within the old primary's last sync
		// interval (plus the upload's time) before the kill.
		lost := lostCommits(t, keptAside(t, primary.db), standby.db)
		var oldest time.Duration
		for _, at := range lost {
			if age := killed.Sub(at); age > oldest {
				oldest = age
			}
		}
		if oldest > standbySyncInterval+lossAllowance {
			t.Fatalf("cycle %d: the failover lost %d commits, the oldest committed %s before the kill; want only those of the primary's last sync interval (%s, plus %s for the upload)",
				cycle, len(lost), oldest, standbySyncInterval, lossAllowance)
		}
		t.Logf("cycle %d: lost %d commits, the oldest committed %s before the kill", cycle, len(lost), oldest.Round(time.Millisecond))
		checkNotRewritten(t, ctx, r, written)
		primary, standby = standby, primary
	}

	// A switchover: the primary is stopped cleanly (its application
	// commits one more row, "at terminated", and exits 0; walship flushes
	// and releases the lease). The standby takes over at once, before the
	// TTL, with every commit.
	if err := primary.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := primary.p.cmd.Wait(); err != nil {
		t.Fatalf("the primary did not stop cleanly: %v\n%s", err, primary.p.output())
	}
	if !strings.Contains(primary.p.output(), "released the lease") {
		t.Fatalf("the primary stopped cleanly did not release its lease:\n%s", primary.p.output())
	}
	if why, err := os.ReadFile(filepath.Join(dir, primary.name, "demoted")); err != nil || !strings.Contains(string(why), "handed over") {
		t.Fatalf("the primary that handed over ran its demotion hook: %q, %v; want it to say it handed over", why, err)
	}
	stoppedAt := time.Now()
	waitGroupOutput(t, standby.p, "execapp: waiting for a signal", 30*time.Second)
	if took := time.Since(stoppedAt); took > standbyTTL+time.Second {
		t.Logf("the switchover took %s (the standby looks at the lease every %s)", took, standbyTTL/3)
	}
	if n := countRows(t, standby.db, "at terminated"); n != 1 {
		t.Fatalf("after the switchover the new primary holds %d rows of the old primary's last commit; want 1: a switchover loses no commit", n)
	}
	if lost := lostCommits(t, primary.db, standby.db); len(lost) != 0 {
		t.Fatalf("the switchover lost %d of the old primary's commits; want none", len(lost))
	}
	primary, standby = standby, primary

	// A manual switchover from the standby's side: walship promote asks
	// the primary to hand over; it stops its application (which commits
	// "at terminated"), flushes, releases, and the standby promotes with
	// that commit.
	standby.p = startGroup(t, bin, r.Env, "replicate", "-standby", "-config", standby.cfg, "-exec", appLine(standby), "-demote-hook", demoteLine(standby))
	waitGroupOutput(t, standby.p, "msg=following", 30*time.Second)
	if out := run(t, bin, r.Env, "promote", "-config", standby.cfg); !strings.Contains(out, standby.db+" is the primary") {
		t.Fatalf("walship promote did not report the promotion:\n%s", out)
	}
	if err := primary.p.cmd.Wait(); err != nil {
		t.Fatalf("the primary asked to hand over did not stop cleanly: %v\n%s", err, primary.p.output())
	}
	waitGroupOutput(t, standby.p, "execapp: waiting for a signal", 30*time.Second)
	if n := countRows(t, standby.db, "at terminated"); n != 2 {
		t.Fatalf("after walship promote the new primary holds %d rows of the old primaries' last commits; want 2: a switchover loses no commit", n)
	}
	if lost := lostCommits(t, primary.db, standby.db); len(lost) != 0 {
		t.Fatalf("walship promote lost %d of the old primary's commits; want none", len(lost))
	}
	primary, standby = standby, primary

	// Stop the survivor cleanly.
	if err := primary.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := primary.p.cmd.Wait(); err != nil {
		t.Fatalf("the last primary did not stop cleanly: %v", err)
	}
	checkChain(t, ctx, r.Client)
	if out := run(t, bin, r.Env, "verify", "-config", primary.cfg, primary.db); !strings.Contains(out, "in sync") {
		t.Fatalf("walship verify does not find the replica in sync with the survivor:\n%s", out)
	}
	out := filepath.Join(dir, "restored.db")
	run(t, bin, r.Env, "restore", "-config", primary.cfg, "-o", out, "-integrity-check", "full", primary.db)
	if got, want := rowsOf(t, out), rowsOf(t, primary.db); got != want {
		t.Fatalf("a restore is not the survivor's database: %d bytes of rows, want %d", len(got), len(want))
	}
}

// checkNotRewritten fails the test if a level-0 file of the replica
// listed in sizes (by its TXIDs) now has another size, and adds every one
// listed now. Level 0 holds each capture once, written by the primary of
// its time; a file written again with other bytes is another node's.
func checkNotRewritten(t *testing.T, ctx context.Context, r Replica, sizes map[string]int64) {
	t.Helper()
	files, err := r.Client.LTXFiles(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		key := storage.Describe(0, f.MinTXID, f.MaxTXID)
		if size, ok := sizes[key]; ok && size != f.Size {
			t.Fatalf("the replica's %s was written again: %d bytes, earlier %d", key, f.Size, size)
		}
		sizes[key] = f.Size
	}
}

// standbySyncInterval is the nodes' sync-interval in RunStandby
// (writeConfig's); lossAllowance is the time one upload of a sync's file
// may take on a loaded machine, on top of it, in the bound on what a
// crash loses.
const (
	standbySyncInterval = 50 * time.Millisecond
	lossAllowance       = 3 * time.Second
)

// keptAside returns the newest database a standby kept aside at path
// (path.diverged-<UTC time>).
func keptAside(t *testing.T, path string) string {
	t.Helper()
	found, err := filepath.Glob(path + ".diverged-*")
	var dbs []string
	for _, f := range found {
		if !strings.HasSuffix(f, "-wal") && !strings.HasSuffix(f, "-shm") && !strings.HasSuffix(f, "-journal") {
			dbs = append(dbs, f)
		}
	}
	if err != nil || len(dbs) == 0 {
		t.Fatalf("no database kept aside beside %s: %v", path, err)
	}
	slices.Sort(dbs)
	return dbs[len(dbs)-1]
}

// lostCommits returns when each of the application's commits in the old
// primary's database (kept aside) that the new primary's database does
// not hold was made (execapp's stamp: at the latest). The commits the
// new primary holds must be a prefix of the old primary's: a commit
// missing before one present would be a hole in the history.
func lostCommits(t *testing.T, old, promoted string) []time.Time {
	t.Helper()
	has := map[string]bool{}
	for _, row := range appRows(t, promoted) {
		has[row] = true
	}
	var lost []time.Time
	for _, row := range appRows(t, old) {
		if has[row] {
			if len(lost) > 0 {
				t.Fatalf("the promoted database %s holds the old primary's commit %q but not one before it: a hole in the history", promoted, row)
			}
			continue
		}
		i := strings.LastIndex(row, " at=")
		if i < 0 {
			t.Fatalf("the old primary's lost commit %q has no time", row)
		}
		ms, err := strconv.ParseInt(row[i+len(" at="):], 10, 64)
		if err != nil {
			t.Fatalf("the old primary's lost commit %q: %v", row, err)
		}
		lost = append(lost, time.UnixMilli(ms))
	}
	return lost
}

// appRows returns the application's rows, "id=v", in id order.
func appRows(t *testing.T, path string) []string {
	t.Helper()
	rows, err := testutil.Strings(context.Background(), path, "SELECT id || '=' || v FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// waitRenewedPast waits until the lease was renewed at a TXID past txid:
// the promoted node's application wrote, and the replica received it.
func waitRenewedPast(t *testing.T, ctx context.Context, r Replica, txid uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec, _, err := lease.Read(ctx, r.Client)
		if err == nil && rec.TXID > txid {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the promoted node's writes did not reach the replica: the lease is %+v, %v", rec, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countRows counts the application's rows of value v.
func countRows(t *testing.T, path, v string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t WHERE v = ?", v).Scan(&n); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return n
}

// rowsOf is the content of the application's table.
func rowsOf(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var s string
	if err := db.QueryRow("SELECT count(*) || ':' || coalesce(group_concat(id || '=' || v, ','), '') FROM (SELECT * FROM t ORDER BY id)").Scan(&s); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return s
}

// groupProcess is walship in a process group of its own, with its
// application, so that a test kills both as a machine's death would.
type groupProcess struct {
	cmd *exec.Cmd
	log *testutil.SyncBuffer
}

func (p *groupProcess) output() string { return p.log.String() }

func startGroup(t *testing.T, bin string, env []string, args ...string) *groupProcess {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log := new(testutil.SyncBuffer)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start walship: %v", err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	return &groupProcess{cmd: cmd, log: log}
}

// killGroup SIGKILLs walship and its application.
func (p *groupProcess) killGroup(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill node: %v\n%s", err, p.output())
	}
	p.cmd.Wait()
}

// stopGroup stops a standby with SIGTERM; it exits 0 without replicating.
func (p *groupProcess) stopGroup(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("a standby did not stop cleanly on SIGTERM: %v\n%s", err, p.output())
	}
}

func waitGroupOutput(t *testing.T, p *groupProcess, s string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !bytes.Contains([]byte(p.output()), []byte(s)) {
		if time.Now().After(deadline) {
			t.Fatalf("walship's output lacks %q after %s:\n%s", s, within, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
