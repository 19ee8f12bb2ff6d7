package e2e

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore/litestream03"
	"github.com/walship/walship/storage"
)

// Litestream03 is a destination that Litestream v0.3 writes to and walship
// reads.
type Litestream03 struct {
	// V03YAML holds the keys of the replica's entry in Litestream v0.3's
	// config file, one per line and not indented.
	V03YAML string
	// Replica is the same destination as walship names it; its Env is
	// given to both programs, and its Client must implement
	// storage.Objects.
	Replica Replica
}

// RunLitestream03 is the end-to-end test of restoring Litestream v0.3
// backups, with the real Litestream v0.3.13 (testserver.Bin
// "litestream-v0.3"). An application writes while Litestream v0.3
// replicates to the destination, with a snapshot every 3 s and a WAL that
// restarts every 100 pages; Litestream is stopped and started again (its
// generation goes on, unless the WAL restarted meanwhile), then stopped
// while the application truncates the WAL, and started again (a new
// generation).
// walship must then:
//
//   - restore the latest state page for page as the database is once both
//     have stopped;
//   - restore each of three times, one in each stretch, to exactly a state
//     the application committed before that time, the one Litestream
//     v0.3's own restore gives, with commits after it that it must not
//     hold;
//   - refuse -txid, naming -timestamp;
//   - say in ltx and verify that the replica holds a v0.3 backup;
//   - replicate the database into the same replica path beside the v0.3
//     backup, with retention deleting its own old files, and leave every
//     v0.3 object as it was: walship's latest state restores from its own
//     files, the times before from the v0.3 backup, as before.
func RunLitestream03(t *testing.T, r Litestream03) {
	objs, ok := r.Replica.Client.(storage.Objects)
	if !ok {
		t.Fatalf("e2e.RunLitestream03: %T does not implement storage.Objects", r.Replica.Client)
	}
	ctx := context.Background()
	dir := t.TempDir()
	bin := Binary(t)
	v03 := testserver.Bin(t, "litestream-v0.3")
	dbPath := filepath.Join(dir, "app.db")
	v03Config := filepath.Join(dir, "litestream.yml")
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "dbs:\n  - path: %s\n    monitor-interval: 100ms\n    checkpoint-interval: 2s\n    min-checkpoint-page-count: 100\n    replicas:\n      - sync-interval: 100ms\n        snapshot-interval: 3s\n        retention: 1h\n", dbPath)
	for _, line := range strings.Split(strings.TrimSpace(r.V03YAML), "\n") {
		fmt.Fprintf(&cfg, "        %s\n", line)
	}
	if err := os.WriteFile(v03Config, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	walshipConfig := filepath.Join(dir, "walship.yml")
	writeConfig(t, walshipConfig, dbPath, r.Replica)

	w := startWriter03(t, dbPath)
	// Three stretches: Litestream v0.3 from the start; restarted (its
	// generation goes on); restarted after the WAL was truncated behind
	// its back (a new generation). A time is taken in each.
	var targets []time.Time
	for stretch := range 3 {
		if stretch == 2 {
			w.checkpointTruncate(t)
		}
		started := time.Now()
		p := startV03(t, v03, r.Replica.Env, v03Config)
		// A time the stretch's generation restores: after a snapshot
		// this process wrote (slow to come on a loaded machine), and
		// some WAL after it.
		awaitV03Snapshot(t, ctx, objs, started, p)
		time.Sleep(time.Second)
		targets = append(targets, endOfSecond())
		time.Sleep(time.Until(targets[stretch]) + 2*time.Second)
		if stretch == 2 {
			w.stop(t)
			time.Sleep(time.Second)
		}
		for attempt := 1; !p.stopV03(t); attempt++ {
			if attempt == 3 {
				t.Fatal("litestream v0.3 hung in its shutdown three times in a row")
			}
			// A new process resumes the generation and ships what the
			// killed one may not have.
			p = startV03(t, v03, r.Replica.Env, v03Config)
			time.Sleep(2 * time.Second)
		}
	}
	final := w.image(t)
	t.Logf("the application committed %d transactions", len(w.states)-1)
	before := listV03(t, ctx, objs)
	b := litestream03.NewBackup(r.Replica.Client.String(), before)
	if b == nil || len(b.Generations) < 2 {
		t.Fatalf("Litestream v0.3 wrote %d objects and fewer than two generations; the test needs a generation restarted", len(before))
	}
	snaps, segs := b.Objects()
	t.Logf("Litestream v0.3 wrote %s", b.Summary())
	if snaps < 4 || segs < 10 {
		t.Fatalf("Litestream v0.3 wrote %d snapshots and %d segments; the test needs several of each", snaps, segs)
	}

	// The latest state, page for page.
	env := r.Replica.Env
	out := filepath.Join(dir, "latest.db")
	stdout := run(t, bin, env, "restore", "-config", walshipConfig, "-o", out, "-integrity-check", "full", dbPath)
	if !strings.Contains(stdout, "restored the Litestream v0.3 backup") {
		t.Fatalf("walship restore printed %q", stdout)
	}
	if got := imageOfFile(t, out); got != final {
		t.Fatalf("the restored database is not the application's final state: %d pages %s, want %d pages %s", got.Pages, got.Hash, final.Pages, final.Hash)
	}

	// A time in each stretch.
	restored := make([]int64, len(targets))
	for i, target := range targets {
		out := filepath.Join(dir, fmt.Sprintf("at-%d.db", i))
		ts := target.Format(time.RFC3339Nano)
		res := runResult(bin, env, "restore", "-config", walshipConfig, "-o", out, "-timestamp", ts, "-integrity-check", "full", dbPath)
		if res.err != nil && tornV03Snapshot(t, res.out, out) {
			// On a loaded machine Litestream v0.3 can copy a generation's
			// only snapshot while a checkpoint writes later changes into
			// the database: no restore of a time before those changes is
			// a state the application committed, and walship refuses to
			// write one (v0.3's own restore writes it).
			t.Logf("-timestamp %s: walship refused a torn v0.3 snapshot:\n%s", ts, res.out)
			restored[i] = refused
			continue
		}
		if res.err != nil {
			t.Fatalf("walship restore -timestamp %s: %v\n%s", ts, res.err, res.out)
		}
		restored[i] = w.check(t, out, target)
		// Litestream v0.3's own restore of the same time is the same
		// database, unless walship went around a snapshot that v0.3
		// would have laid the WAL under.
		ref := filepath.Join(dir, fmt.Sprintf("v03-at-%d.db", i))
		refCmd := exec.Command(v03, "restore", "-config", v03Config, "-o", ref, "-timestamp", ts, dbPath)
		refCmd.Env = append(os.Environ(), env...)
		if b, err := refCmd.CombinedOutput(); err != nil {
			t.Fatalf("litestream v0.3 restore -timestamp %s: %v\n%s", ts, err, b)
		}
		switch got, want := imageOfFile(t, out), imageOfFile(t, ref); {
		case got == want:
		case strings.Contains(res.out, "warning:"):
			t.Logf("-timestamp %s: walship went around a snapshot, and its restore differs from Litestream v0.3's:\n%s", ts, res.out)
		default:
			t.Fatalf("-timestamp %s: walship's restore is not Litestream v0.3's: %d pages %s, want %d pages %s", ts, got.Pages, got.Hash, want.Pages, want.Hash)
		}
	}
	t.Logf("the three times restore the application's states %v (of %d; %d: refused)", restored, len(w.states)-1, refused)
	if slices.Index(restored, refused) == 0 || slices.Equal(restored, []int64{refused, refused, refused}) {
		// The first stretch's generation has several snapshots: an older
		// one restores the time when the newest is torn.
		t.Fatalf("walship refused the times %v; the first at least must restore", restored)
	}

	// -txid means nothing to v0.3.
	res := runResult(bin, env, "restore", "-config", walshipConfig, "-o", filepath.Join(dir, "txid.db"), "-txid", "5", dbPath)
	if res.err == nil || !strings.Contains(res.out, "Litestream v0.3") || !strings.Contains(res.out, "-timestamp") {
		t.Fatalf("walship restore -txid of a v0.3 backup: %v\n%s", res.err, res.out)
	}
	// ltx and verify say what the replica holds.
	res = runResult(bin, env, "ltx", "-config", walshipConfig, dbPath)
	if res.err != nil || !strings.Contains(res.out, "holds a backup that Litestream v0.3 wrote") {
		t.Fatalf("walship ltx: %v\n%s", res.err, res.out)
	}
	res = runResult(bin, env, "verify", "-config", walshipConfig, dbPath)
	if res.err == nil || !strings.Contains(res.out, "litestream-v0.3") {
		t.Fatalf("walship verify: %v\n%s", res.err, res.out)
	}

	// walship replicates beside the v0.3 backup, with retention deleting
	// its own files as it goes.
	retention := filepath.Join(dir, "walship-retention.yml")
	writeRetentionConfig(t, retention, walshipConfig)
	w.start()
	p := startWalship(t, bin, env, "replicate", "-config", retention)
	waitForLog(t, p, "holds a backup that Litestream v0.3 wrote", 30*time.Second)
	var first []string
	eventually(t, 30*time.Second, "walship's first snapshot", func() bool {
		first = snapshots(t, ctx, r.Replica.Client)
		return len(first) > 0
	})
	eventually(t, 60*time.Second, "retention deleting walship's first snapshot", func() bool {
		return !slices.Contains(snapshots(t, ctx, r.Replica.Client), first[0])
	})
	w.stop(t)
	time.Sleep(500 * time.Millisecond)
	p.terminate(t)
	final = w.image(t)
	if after := listV03(t, ctx, objs); !slices.Equal(after, before) {
		t.Fatalf("walship changed the v0.3 backup: %d objects before, %d after", len(before), len(after))
	}
	checkLatest(t, bin, env, walshipConfig, dbPath, final, dir, "after walship replicated beside the v0.3 backup")
	for i, target := range targets {
		out := filepath.Join(dir, fmt.Sprintf("again-at-%d.db", i))
		if restored[i] == refused {
			res := runResult(bin, env, "restore", "-config", walshipConfig, "-o", out, "-timestamp", target.Format(time.RFC3339Nano), dbPath)
			if res.err == nil || !tornV03Snapshot(t, res.out, out) {
				t.Fatalf("-timestamp %s, refused before walship replicated beside the v0.3 backup: %v\n%s", target.Format(time.RFC3339Nano), res.err, res.out)
			}
			continue
		}
		run(t, bin, env, "restore", "-config", walshipConfig, "-o", out, "-timestamp", target.Format(time.RFC3339Nano), dbPath)
		if id := w.check(t, out, target); id != restored[i] {
			t.Fatalf("-timestamp %s restores state %d once walship replicated beside the v0.3 backup, %d before", target.Format(time.RFC3339Nano), id, restored[i])
		}
	}
}

// refused marks a time whose restore walship refused (tornV03Snapshot).
const refused = -1

// tornV03Snapshot reports whether a failed restore's output says that the
// only snapshot of the time's generation holds changes written after the
// time, and fails the test if the refused restore left an output file.
func tornV03Snapshot(t *testing.T, out, path string) bool {
	t.Helper()
	if !strings.Contains(out, "the snapshot was copied while SQLite's checkpoint wrote later changes into the database") ||
		!strings.Contains(out, "holds no older snapshot to restore the same state from") {
		return false
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused restore left %s (%v)", path, err)
	}
	return true
}

// eventually polls cond until it holds, and fails the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
	}
}

// endOfSecond returns the last instant of the current second: a time that
// stores dating objects to the second (Azure, SFTP) date every object on
// the same side of as those dating them finely.
// awaitV03Snapshot waits until the replica holds a snapshot that
// Litestream v0.3 wrote since the time given.
func awaitV03Snapshot(t *testing.T, ctx context.Context, objs storage.Objects, since time.Time, p *v03Process) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, o := range listV03(t, ctx, objs) {
			// In a later second than since: some stores date objects
			// to the second.
			if strings.Contains(o.Name, "/snapshots/") && !o.ModTime.Before(since.Truncate(time.Second).Add(time.Second)) {
				return
			}
		}
	}
	t.Fatalf("Litestream v0.3 wrote no snapshot in a minute:\n%s", p.log.String())
}

func endOfSecond() time.Time {
	return time.Now().Truncate(time.Second).Add(time.Second - time.Nanosecond)
}

// writeRetentionConfig writes, from the config file at from, one with
// snapshots every 2 s kept 3 s, and level-0 files kept 1 s.
func writeRetentionConfig(t *testing.T, path, from string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	head := "levels:\n  - interval: 1s\nsnapshot:\n  interval: 2s\n  retention: 3s\nl0-retention: 1s\nl0-retention-check-interval: 1s\n"
	if err := os.WriteFile(path, append([]byte(head), b...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// snapshots returns the names of walship's snapshots in the replica.
func snapshots(t *testing.T, ctx context.Context, c storage.Client) []string {
	t.Helper()
	files, err := c.LTXFiles(ctx, storage.SnapshotLevel)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, storage.FileName(f.MinTXID, f.MaxTXID))
	}
	return names
}

// listV03 lists the objects of the replica's v0.3 backup.
func listV03(t *testing.T, ctx context.Context, o storage.Objects) []storage.ObjectInfo {
	t.Helper()
	objs, err := o.ListObjects(ctx, litestream03.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// v03Process is a running Litestream v0.3.
type v03Process struct {
	cmd *exec.Cmd
	log *testutil.SyncBuffer
}

func startV03(t *testing.T, bin string, env []string, config string) *v03Process {
	t.Helper()
	cmd := exec.Command(bin, "replicate", "-config", config)
	cmd.Env = append(os.Environ(), env...)
	log := new(testutil.SyncBuffer)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start litestream v0.3: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return &v03Process{cmd: cmd, log: log}
}

// stopV03 stops Litestream v0.3 as an operator does: it syncs what was
// committed, then exits. It reports false, having killed it, when it did
// not exit within a minute: v0.3.13 can hang in its shutdown (seen with its
// SFTP client on a loaded machine), and then may not have shipped its last
// sync.
func (p *v03Process) stopV03(t *testing.T) bool {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("litestream v0.3 exited before it was stopped: %v\n%s", err, p.log)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(time.Minute):
		p.cmd.Process.Kill()
		<-exited
		t.Logf("litestream v0.3 did not exit within a minute of SIGTERM; killed it:\n%s", p.log)
		return false
	}
	out := p.log.String()
	// v0.3.13 may exit 1 when it stops while the application writes: a
	// checkpoint due then fails (its read transaction's context is already
	// cancelled), or its last sync and its replica's loop upload the same
	// segment at once, through the same temporary file. Either way it went
	// through its shutdown; what it left in the replica is what the
	// restores check.
	if err != nil && !strings.Contains(out, `msg="litestream shut down"`) {
		t.Fatalf("litestream v0.3 did not stop: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "new generation") || strings.Contains(line, "level=ERROR") {
			t.Logf("litestream v0.3: %s", line)
		}
	}
	return true
}

// writer03 is the application of RunLitestream03. Each transaction inserts
// rows (the newest row's id names the state after it), and now and then
// updates and deletes others; it records the content of table t after each
// as a hash, which Litestream's own table does not enter.
type writer03 struct {
	db    *sql.DB
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex // held by each transaction
	err   error
	rng   *rand.Rand
	rows  map[int64]uint64 // live row -> hash of (id, v)
	sum   uint64           // XOR of rows' hashes
	id    int64
	state map[int64]int // newest id -> index in states
	// states[k] is the state after commit k.
	states []state03
}

type state03 struct {
	id     int64
	sum    uint64
	before time.Time // when its commit began
	after  time.Time // when its commit returned
}

func startWriter03(t *testing.T, path string) *writer03 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(30000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	w := &writer03{db: db, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11)), rows: map[int64]uint64{}, state: map[int64]int{0: 0}}
	w.states = []state03{{before: time.Now(), after: time.Now()}}
	w.start()
	return w
}

// start starts the application's transactions, until stop.
func (w *writer03) start() {
	w.done = make(chan struct{})
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			select {
			case <-w.done:
				return
			default:
			}
			if err := w.commit(); err != nil {
				w.err = err
				return
			}
			time.Sleep(time.Duration(w.rng.IntN(5)) * time.Millisecond)
		}
	}()
}

func rowHash(id int64, v []byte) uint64 {
	h := fnv.New64a()
	binary.Write(h, binary.BigEndian, id)
	h.Write(v)
	return h.Sum64()
}

// commit commits one transaction and records the state after it.
func (w *writer03) commit() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	rows, sum, id := map[int64]uint64{}, w.sum, w.id
	blob := func() []byte {
		v := make([]byte, 100+w.rng.IntN(2500))
		for i := range v {
			v[i] = byte(w.rng.Uint32())
		}
		return v
	}
	before := time.Now()
	tx, err := w.db.Begin()
	if err != nil {
		return err
	}
	for range 1 + w.rng.IntN(3) {
		id++
		v := blob()
		if _, err := tx.Exec("INSERT INTO t (id, v) VALUES (?, ?)", id, v); err != nil {
			tx.Rollback()
			return err
		}
		rows[id] = rowHash(id, v)
		sum ^= rows[id]
	}
	var gone []int64
	if w.rng.IntN(10) == 0 && len(w.rows) > 10 {
		// An older row updated, another deleted.
		var live []int64
		for r := range w.rows {
			live = append(live, r)
		}
		slices.Sort(live)
		up, del := live[w.rng.IntN(len(live))], live[w.rng.IntN(len(live))]
		v := blob()
		if _, err := tx.Exec("UPDATE t SET v = ? WHERE id = ?", v, up); err != nil {
			tx.Rollback()
			return err
		}
		sum ^= w.rows[up] ^ rowHash(up, v)
		rows[up] = rowHash(up, v)
		if del != up {
			if _, err := tx.Exec("DELETE FROM t WHERE id = ?", del); err != nil {
				tx.Rollback()
				return err
			}
			sum ^= w.rows[del]
			gone = append(gone, del)
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	after := time.Now()
	maps.Copy(w.rows, rows)
	for _, g := range gone {
		delete(w.rows, g)
	}
	w.sum, w.id = sum, id
	w.state[id] = len(w.states)
	w.states = append(w.states, state03{id: id, sum: sum, before: before, after: after})
	return nil
}

// checkpointTruncate truncates the WAL between two transactions, as an
// application may while Litestream is not running.
func (w *writer03) checkpointTruncate(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var busy, log, done int
	if err := w.db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &log, &done); err != nil || busy != 0 {
		t.Fatalf("truncate the WAL: %v (busy %d)", err, busy)
	}
}

func (w *writer03) stop(t *testing.T) {
	t.Helper()
	close(w.done)
	w.wg.Wait()
	if w.err != nil {
		t.Fatalf("the application failed to write: %v", w.err)
	}
}

// image returns the database's pages as SQLite reads them.
func (w *writer03) image(t *testing.T) testutil.Image {
	t.Helper()
	img, err := testutil.ImageOf(context.Background(), w.db)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// check fails unless the database at path is exactly a state the
// application committed before target, with commits after target that it
// does not hold, and returns the state's newest id.
func (w *writer03) check(t *testing.T, path string, target time.Time) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT id, v FROM t")
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	defer rows.Close()
	var sum uint64
	var newest int64
	for rows.Next() {
		var id int64
		var v []byte
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		sum ^= rowHash(id, v)
		newest = max(newest, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	k, ok := w.state[newest]
	ts := target.Format(time.RFC3339Nano)
	switch {
	case !ok:
		t.Fatalf("-timestamp %s restores a database whose newest row, %d, no commit of the application ended with", ts, newest)
	case w.states[k].sum != sum:
		t.Fatalf("-timestamp %s restores a database with the newest row of commit %d but not its rows", ts, k)
	case w.states[k].before.After(target):
		t.Fatalf("-timestamp %s restores commit %d, which began at %s, after that time", ts, k, w.states[k].before.Format(time.RFC3339Nano))
	case k+1 >= len(w.states) || !w.states[len(w.states)-1].before.After(target.Add(time.Second)):
		t.Fatalf("-timestamp %s restores commit %d of %d: the test needs commits well after the time", ts, k, len(w.states)-1)
	case w.states[k+1].after.Before(target.Add(-10 * time.Second)):
		t.Fatalf("-timestamp %s restores commit %d, committed at %s: more than 10 s older than the time", ts, k, w.states[k].after.Format(time.RFC3339Nano))
	}
	return newest
}
