// Package e2e is the end-to-end test every replica backend must pass, run
// through the real walship binary: an application writes while walship
// replicates to the backend; walship is killed with SIGKILL and restarted
// several times, then stopped with SIGTERM. The replica must then hold one
// contiguous, checksum-linked chain of TXIDs, and restores of the latest state
// and of earlier TXIDs must be page-for-page the database the application had
// at that point (the oracle of docs/design.md, "Invariants").
package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
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

	"github.com/superfly/ltx"
	_ "modernc.org/sqlite"

	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
)

// Replica is the destination under test.
type Replica struct {
	// YAML holds the keys of the replica's entry in the config file, one per
	// line and not indented, e.g. "url: s3://bucket/db\nendpoint: http://...".
	YAML string
	// Env is added to walship's environment (credentials, emulator hosts).
	Env []string
	// Client reads the same destination, to check what walship wrote.
	Client storage.Client
}

// Run runs the test against r.
func Run(t *testing.T, r Replica) {
	if r.Client == nil {
		t.Fatal("e2e.Run: Replica.Client is nil")
	}
	ctx := context.Background()
	dir := t.TempDir()
	bin := Binary(t)
	dbPath := filepath.Join(dir, "app.db")
	cfgPath := writeConfigWith(t, filepath.Join(dir, "walship.yml"), fastLevels, dbPath, r)

	w := startWriter(t, dbPath)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	replicateKilled(t, bin, r.Env, cfgPath, r.Client, w, 3, rng)
	txids := checkChain(t, ctx, r.Client)
	t.Logf("the replica holds TXIDs 1 to %d in one chain", txids[len(txids)-1])
	checkRestores(t, bin, r.Env, cfgPath, dbPath, dir, w, txids, rng)
}

// fastLevels is the top of a config that compacts level 1 every two
// seconds, so that a short test's replica holds a level 1.
const fastLevels = "levels:\n  - interval: 2s\n"

// replicateKilled replicates, with the config at cfgPath, while w writes:
// walship is killed with SIGKILL kills times, each while it replicates
// (once the replica c holds a commit it shipped, then up to a second
// later, so that kills land in uploads, compactions and checkpoints alike)
// and started again, runs two seconds more and is stopped (stopCleanly).
// It fails the test unless the application committed at least 50
// transactions.
func replicateKilled(t *testing.T, bin string, env []string, cfgPath string, c storage.Client, w *writer, kills int, rng *rand.Rand) {
	t.Helper()
	for i := range kills {
		before := newestTXID(t, c)
		started := time.Now()
		p := startWalship(t, bin, env, "replicate", "-config", cfgPath)
		// Not a fixed delay: opening takes seconds behind a faulty
		// network, and a kill before it ends tests no replication.
		shipped := waitShipped(t, p, c, before)
		took := time.Since(started)
		time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		p.kill(t)
		t.Logf("killed walship with SIGKILL (%d of %d) after %d commits, while it replicated (it shipped TXID %s, past %s, %s after it started)", i+1, kills, w.commits(), shipped, before, took.Round(time.Millisecond))
	}
	p := startWalship(t, bin, env, "replicate", "-config", cfgPath)
	time.Sleep(2 * time.Second)
	stopCleanly(t, bin, env, cfgPath, p, w)
	t.Logf("the application committed %d transactions", len(w.images)-1)
	if len(w.images) < 50 {
		t.Fatalf("the application committed only %d transactions", len(w.images)-1)
	}
}

// newestTXID returns the newest TXID the replica c holds; 0 if none.
func newestTXID(t *testing.T, c storage.Client) ltx.TXID {
	t.Helper()
	newest, err := newestShipped(c)
	if err != nil {
		t.Fatalf("list %s: %v", c, err)
	}
	return newest
}

// newestShipped is newestTXID returning the listing's error, which a
// wait may outlast.
func newestShipped(c storage.Client) (ltx.TXID, error) {
	l, err := restore.List(context.Background(), c)
	if err != nil {
		return 0, err
	}
	return l.Newest(), nil
}

// waitShipped waits until the replica c holds a TXID past from, the
// newest it held when walship p started, and returns it: p is then past
// opening (its replicas' listings, its first capture) and uploading. It
// fails the test with p's log if that takes longer than two minutes.
func waitShipped(t *testing.T, p *process, c storage.Client, from ltx.TXID) ltx.TXID {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		newest, err := newestShipped(c)
		if err == nil && newest > from {
			return newest
		}
		if time.Now().After(deadline) {
			t.Fatalf("walship shipped nothing past TXID %s to %s in two minutes (last listing: %v):\n%s", from, c, err, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkRestores restores, from the replica of dbPath configured at
// cfgPath, the latest state and three TXIDs of txids picked at random, and
// fails the test unless each is exactly the database the application w
// had then; walship ltx must list the newest TXID, and walship verify find
// the replica whole and in sync with the database. It returns the path of
// the latest state's restore.
func checkRestores(t *testing.T, bin string, env []string, cfgPath, dbPath, dir string, w *writer, txids []ltx.TXID, rng *rand.Rand) string {
	t.Helper()
	latest := checkLatest(t, bin, env, cfgPath, dbPath, w.last, dir, "the latest state")

	// Earlier states: each restored TXID must be exactly the database after
	// some commit of the application, the one that wrote its newest row.
	for i := range 3 {
		txid := txids[rng.IntN(len(txids))]
		out := filepath.Join(dir, fmt.Sprintf("restored-%d.db", i))
		run(t, bin, env, "restore", "-config", cfgPath, "-o", out, "-txid", txid.String(), dbPath)
		checkRestored(t, out, w.images, "TXID "+txid.String())
	}
	if listing := run(t, bin, env, "ltx", "-config", cfgPath, dbPath); !strings.Contains(listing, txids[len(txids)-1].String()) {
		t.Fatalf("walship ltx does not list the newest TXID %s:\n%s", txids[len(txids)-1], listing)
	}
	// verify finds the replica whole and in sync with the database.
	if out := run(t, bin, env, "verify", "-config", cfgPath, dbPath); !strings.Contains(out, "in sync") {
		t.Fatalf("walship verify does not find the replica in sync with the database:\n%s", out)
	}
	return latest
}

// checkChain checks that level 0 of the replica holds TXIDs 1..N exactly once
// (or, after retention or a first snapshot, from the end of a snapshot to N;
// or nothing, when the newest snapshot holds every commit), each file's
// pre-apply checksum the previous file's post-apply checksum, and returns the
// end TXID of each file.
func checkChain(t *testing.T, ctx context.Context, c storage.Client) []ltx.TXID {
	t.Helper()
	files, err := c.LTXFiles(ctx, 0)
	if err != nil {
		t.Fatalf("list level 0 of %s: %v", c, err)
	}
	if len(files) == 0 {
		// A history whose every commit is in a snapshot (the first sync
		// goes to the snapshot level only, and a restart that finds the
		// replica behind its staged history ships a snapshot): the
		// newest snapshot is the chain.
		snaps, err := c.LTXFiles(ctx, storage.SnapshotLevel)
		if err != nil {
			t.Fatalf("list snapshots of %s: %v", c, err)
		}
		if len(snaps) == 0 {
			t.Fatalf("%s holds no level-0 file and no snapshot", c)
		}
		newest := snaps[len(snaps)-1]
		readFile(t, ctx, c, newest)
		return []ltx.TXID{newest.MaxTXID}
	}
	var txids []ltx.TXID
	var prev ltx.Checksum
	next := ltx.TXID(1)
	if first := files[0].MinTXID; first > 1 {
		// Level 0 starts after a snapshot: retention removed the files it
		// covers, or the replica's history began with one. The chain starts
		// from the oldest snapshot that reaches the level-0 files.
		snaps, err := c.LTXFiles(ctx, storage.SnapshotLevel)
		if err != nil {
			t.Fatalf("list snapshots of %s: %v", c, err)
		}
		i := slices.IndexFunc(snaps, func(s *ltx.FileInfo) bool { return s.MaxTXID >= first-1 && s.MaxTXID <= files[len(files)-1].MaxTXID })
		if i < 0 {
			t.Fatalf("%s: level 0 starts at TXID %s and no snapshot reaches it:\n%s", c, first, listing(ctx, c))
		}
		_, trailer := readFile(t, ctx, c, snaps[i])
		prev, next = trailer.PostApplyChecksum, snaps[i].MaxTXID+1
		txids = append(txids, snaps[i].MaxTXID)
		files = slices.DeleteFunc(files, func(f *ltx.FileInfo) bool { return f.MaxTXID <= snaps[i].MaxTXID })
	}
	for _, f := range files {
		if f.MinTXID != next {
			t.Fatalf("%s: level 0 has %s after TXID %s; want a file starting at %s:\n%s", c, storage.Describe(0, f.MinTXID, f.MaxTXID), next-1, next, listing(ctx, c))
		}
		hdr, trailer := readFile(t, ctx, c, f)
		if f.MinTXID > 1 && hdr.PreApplyChecksum != prev {
			t.Fatalf("%s: %s starts from checksum %s; the previous file ended at %s", c, storage.Describe(0, f.MinTXID, f.MaxTXID), hdr.PreApplyChecksum, prev)
		}
		prev = trailer.PostApplyChecksum
		next = f.MaxTXID + 1
		txids = append(txids, f.MaxTXID)
	}
	return txids
}

// listing describes every file of a replica, for failure messages.
func listing(ctx context.Context, c storage.Client) string {
	var b strings.Builder
	for level := 0; level <= storage.MaxLevel; level++ {
		files, err := c.LTXFiles(ctx, level)
		if err != nil {
			fmt.Fprintf(&b, "level %d: %v\n", level, err)
			continue
		}
		for _, f := range files {
			fmt.Fprintf(&b, "  %s %d bytes %s\n", storage.Describe(level, f.MinTXID, f.MaxTXID), f.Size, f.CreatedAt.Format(time.RFC3339Nano))
		}
	}
	return b.String()
}

func readFile(t *testing.T, ctx context.Context, c storage.Client, f *ltx.FileInfo) (ltx.Header, ltx.Trailer) {
	t.Helper()
	rc, err := c.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, 0, 0)
	if err != nil {
		t.Fatalf("open %s: %v", storage.Describe(f.Level, f.MinTXID, f.MaxTXID), err)
	}
	defer rc.Close()
	dec := ltx.NewDecoder(rc)
	if err := dec.Verify(); err != nil {
		t.Fatalf("%s on %s is not a valid LTX file: %v", storage.Describe(f.Level, f.MinTXID, f.MaxTXID), c, err)
	}
	return dec.Header(), dec.Trailer()
}

// Binary builds the walship command once per test and returns its path.
func Binary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "walship")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/walship/walship/cmd/walship")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build walship: %v\n%s", err, out)
	}
	return bin
}

// run runs walship to completion and fails the test unless it succeeds.
func run(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("walship %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// finish runs walship until it succeeds, at most five times: a one-shot run
// fails when its destination does, and a test destination may fail on
// purpose.
func finish(t *testing.T, bin string, env []string, args ...string) {
	t.Helper()
	var last string
	for range 5 {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		last = fmt.Sprintf("%v\n%s", err, out)
	}
	t.Fatalf("walship %s failed five times; the last:\n%s", strings.Join(args, " "), last)
}

// stopCleanly stops the application, then walship the way an operator
// does, and ships what walship left staged with a one-shot run: what the
// replica did not receive before walship stopped (a flaky destination)
// stays staged, and a one-shot run ships it, as the next start would.
func stopCleanly(t *testing.T, bin string, env []string, cfgPath string, p *process, w *writer) {
	t.Helper()
	w.stop(t)
	time.Sleep(500 * time.Millisecond)
	p.terminate(t)
	finish(t, bin, env, "replicate", "-once", "-config", cfgPath)
}

// process is a running walship.
type process struct {
	cmd  *exec.Cmd
	log  *testutil.SyncBuffer
	args []string
}

// output returns what the process has written so far.
func (p *process) output() string { return p.log.String() }

func startWalship(t *testing.T, bin string, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	log := new(testutil.SyncBuffer)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start walship: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return &process{cmd: cmd, log: log, args: args}
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("walship exited before it was killed: %v\n%s", err, p.log)
	}
	p.cmd.Wait()
	if strings.Contains(p.log.String(), "level=ERROR") {
		t.Logf("walship logged errors before it was killed:\n%s", p.log)
	}
}

// terminate stops walship the way an operator does and fails the test
// unless it flushes and exits cleanly.
func (p *process) terminate(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("walship exited before it was stopped: %v\n%s", err, p.log)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("walship %s did not stop cleanly on SIGTERM: %v\n%s", strings.Join(p.args, " "), err, p.log)
	}
}

// writer is the application: it commits transactions of one to three rows
// and records the image of the database after each, keyed by its newest row.
type writer struct {
	db     *sql.DB
	done   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	n      int
	err    error
	images map[int64]testutil.Image
	last   testutil.Image
	first  int64  // the newest row when it started
	marker []byte // what each inserted row starts with
}

func startWriter(t *testing.T, path string) *writer {
	t.Helper()
	return startMarkedWriter(t, path, "")
}

// startMarkedWriter is startWriter for an application that starts each
// row it inserts with marker, a string to search the replica for.
func startMarkedWriter(t *testing.T, path, marker string) *writer {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(30000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	var newest sql.NullInt64
	if err := db.QueryRow("SELECT max(id) FROM t").Scan(&newest); err != nil {
		t.Fatal(err)
	}
	img, err := testutil.ImageOf(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{db: db, done: make(chan struct{}), images: map[int64]testutil.Image{newest.Int64: img}, last: img, first: newest.Int64, marker: []byte(marker)}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.err = w.loop(ctx)
	}()
	return w
}

func (w *writer) loop(ctx context.Context) error {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	id := w.first
	for {
		select {
		case <-w.done:
			return nil
		default:
		}
		tx, err := w.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for range 1 + rng.IntN(3) {
			id++
			v := make([]byte, 100+rng.IntN(3000))
			for i := range v {
				v[i] = byte(rng.Uint32())
			}
			v = slices.Concat(w.marker, v)
			if _, err := tx.Exec("INSERT INTO t (id, v) VALUES (?, ?)", id, v); err != nil {
				tx.Rollback()
				return err
			}
		}
		if rng.IntN(20) == 0 && id > 10 {
			// Some updates and deletes, so pages are rewritten and freed.
			if _, err := tx.Exec("UPDATE t SET v = randomblob(500) WHERE id = ?", 1+rng.Int64N(id-1)); err != nil {
				tx.Rollback()
				return err
			}
			if _, err := tx.Exec("DELETE FROM t WHERE id = ?", 1+rng.Int64N(id-1)); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		img, err := testutil.ImageOf(ctx, w.db)
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.images[id] = img
		w.last = img
		w.n++
		w.mu.Unlock()
		time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
	}
}

func (w *writer) commits() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func (w *writer) stop(t *testing.T) {
	t.Helper()
	close(w.done)
	w.wg.Wait()
	if w.err != nil {
		t.Fatalf("the application failed to write: %v", w.err)
	}
}

func imageOfFile(t *testing.T, path string) testutil.Image {
	t.Helper()
	img, err := testutil.LogicalImage(context.Background(), path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return img
}

// checkRestored fails unless the database at out is exactly a state the
// application committed: the one after the commit of its newest row.
func checkRestored(t *testing.T, out string, imgs map[int64]testutil.Image, what string) {
	t.Helper()
	got := imageOfFile(t, out)
	id := newestRow(t, out)
	want, ok := imgs[id]
	if !ok {
		t.Fatalf("%s restores a database whose newest row %d the application never committed last", what, id)
	}
	if got != want {
		t.Fatalf("%s restores a database that differs from the application's after row %d", what, id)
	}
}

func newestRow(t *testing.T, path string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id sql.NullInt64
	if err := db.QueryRow("SELECT max(id) FROM t").Scan(&id); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return id.Int64
}
