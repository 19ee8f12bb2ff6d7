package walship_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage/file"
)

// The tests below run the application and the replicator as real OS
// processes: this test binary, started again in a role named by
// WALSHIP_TEST_ROLE.
func TestMain(m *testing.M) {
	switch os.Getenv("WALSHIP_TEST_ROLE") {
	case "":
		os.Exit(m.Run())
	case "writer":
		os.Exit(roleWriter())
	case "replicator":
		os.Exit(roleReplicator())
	default:
		fmt.Fprintln(os.Stderr, "unknown role")
		os.Exit(2)
	}
}

func startRole(t *testing.T, role string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"WALSHIP_TEST_ROLE=" + role}, env...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// roleWriter commits single-row transactions until SIGTERM (or COUNT rows).
// With RECORD set, after each commit it appends "id pages hash" — the image of
// the database right after that commit — to the RECORD file.
func roleWriter() int {
	path, tag := os.Getenv("DB"), os.Getenv("TAG")
	count, _ := strconv.Atoi(os.Getenv("COUNT"))
	ctx := context.Background()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(30000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	db.SetMaxOpenConns(1)
	defer db.Close()
	var rec *bufio.Writer
	if p := os.Getenv("RECORD"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		rec = bufio.NewWriter(f)
		defer rec.Flush()
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	for i := 0; count == 0 || i < count; i++ {
		select {
		case <-stop:
			return 0
		default:
		}
		res, err := db.ExecContext(ctx, "INSERT INTO t (v, n) VALUES (?, ?)", randBytes(rng, 100+rng.IntN(300)), tag)
		if err != nil {
			fmt.Fprintln(os.Stderr, "writer:", err)
			return 1
		}
		if rec != nil {
			id, _ := res.LastInsertId()
			img, err := testutil.ImageOf(ctx, db)
			if err != nil {
				fmt.Fprintln(os.Stderr, "writer:", err)
				return 1
			}
			fmt.Fprintf(rec, "%d %d %s\n", id, img.Pages, img.Hash)
		}
	}
	return 0
}

// roleReplicator replicates DB to REPLICA as `walship replicate` does, until
// SIGTERM, or once with ONCE set.
func roleReplicator() int {
	interval, _ := time.ParseDuration(os.Getenv("SYNC_INTERVAL"))
	db, err := walship.NewDB(os.Getenv("DB"), walship.Options{SyncInterval: interval, SyncIntervalSet: true, MinCheckpointPageN: 200},
		walship.NewReplica("dir", file.New(os.Getenv("REPLICA"))))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	if os.Getenv("ONCE") != "" {
		err = db.RunOnce(ctx)
	} else {
		err = (&walship.Store{DBs: []*walship.DB{db}}).Run(ctx, 10*time.Second)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "replicator:", err)
		return 1
	}
	return 0
}

func createDB(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB, n TEXT)"); err != nil {
		t.Fatal(err)
	}
}

func wait(t *testing.T, cmd *exec.Cmd, what string) {
	t.Helper()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestKillReplicator kills the replicator with SIGKILL at random moments while
// an application process writes, restarts it each time, and then checks that
// the replica holds every TXID exactly once, in one checksum-linked chain, and
// that every TXID restores to exactly the database the application had after
// the commit it contains.
func TestKillReplicator(t *testing.T) {
	dir := t.TempDir()
	dbPath, replicaDir, recPath := filepath.Join(dir, "app.db"), filepath.Join(dir, "replica"), filepath.Join(dir, "record")
	createDB(t, dbPath)
	ctx := context.Background()
	initial, err := testutil.LogicalImage(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	writer := startRole(t, "writer", "DB="+dbPath, "RECORD="+recPath, "TAG=w")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	cycles := 20
	for i := range cycles {
		interval := []string{"0", "10ms", "50ms", "200ms"}[rng.IntN(4)]
		r := startRole(t, "replicator", "DB="+dbPath, "REPLICA="+replicaDir, "SYNC_INTERVAL="+interval)
		time.Sleep(time.Duration(50+rng.IntN(450)) * time.Millisecond)
		if err := r.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		r.Wait()
		t.Logf("cycle %d: killed the replicator (sync-interval %s)", i+1, interval)
	}
	writer.Process.Signal(syscall.SIGTERM)
	wait(t, writer, "writer")
	once := startRole(t, "replicator", "DB="+dbPath, "REPLICA="+replicaDir, "SYNC_INTERVAL=1s", "ONCE=1")
	wait(t, once, "final replicator run")

	// The oracle: the image after each commit, keyed by the newest row id.
	images := map[int64]testutil.Image{0: initial}
	b, err := os.ReadFile(recPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var id int64
		var img testutil.Image
		if _, err := fmt.Sscanf(line, "%d %d %s", &id, &img.Pages, &img.Hash); err != nil {
			t.Fatalf("record %q: %v", line, err)
		}
		images[id] = img
	}
	if len(images) < 100 {
		t.Fatalf("the writer committed only %d rows", len(images)-1)
	}

	replica := file.New(replicaDir)
	points := checkChain(t, ctx, replica)
	t.Logf("%d rows written, %d TXIDs replicated in %d files", len(images)-1, points[len(points)-1], len(points))
	var prevRows int64 = -1
	for _, txid := range points {
		out := filepath.Join(dir, "restored.db")
		res, err := restore.Restore(ctx, replica, out, restore.Options{Target: restore.Target{TXID: txid}, IntegrityCheck: "quick", Force: true})
		if err != nil {
			t.Fatalf("restore TXID %s: %v", txid, err)
		}
		rows, maxID := countRows(t, out)
		if rows != maxID {
			t.Fatalf("TXID %s: %d rows but the newest id is %d: a commit is missing", txid, rows, maxID)
		}
		if rows < prevRows {
			t.Fatalf("TXID %s has %d rows, fewer than the TXID before it (%d)", txid, rows, prevRows)
		}
		prevRows = rows
		want, ok := images[maxID]
		if !ok {
			t.Fatalf("TXID %s: newest row %d was never committed by the writer", txid, maxID)
		}
		got, err := testutil.FileImage(out, int(res.PageSize))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("TXID %s (rows 1..%d): restored image %d pages %s, the application had %d pages %s", txid, maxID, got.Pages, got.Hash[:12], want.Pages, want.Hash[:12])
		}
	}
	if want := int64(len(images) - 1); prevRows != want {
		t.Fatalf("the latest TXID has %d rows, the writer committed %d", prevRows, want)
	}
}

func countRows(t *testing.T, path string) (n, maxID int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow("SELECT count(*), coalesce(max(id), 0) FROM t").Scan(&n, &maxID); err != nil {
		t.Fatal(err)
	}
	return n, maxID
}

// TestTwoWriterProcesses replicates while two application processes write at
// once.
func TestTwoWriterProcesses(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{MinCheckpointPageN: 100})
	for round := range 4 {
		a := startRole(t, "writer", "DB="+h.path, "COUNT=150", "TAG=a")
		b := startRole(t, "writer", "DB="+h.path, "COUNT=150", "TAG=b")
		done := make(chan struct{})
		go func() { a.Wait(); b.Wait(); close(done) }()
	loop:
		for {
			select {
			case <-done:
				break loop
			case <-time.After(5 * time.Millisecond):
				if _, err := h.db.Sync(h.ctx); err != nil {
					t.Fatal(err)
				}
				var err error
				switch round {
				case 1:
					err = h.db.Checkpoint(h.ctx, false)
				case 3:
					err = h.db.CheckpointUnsealed(h.ctx, false)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		if !a.ProcessState.Success() || !b.ProcessState.Success() {
			t.Fatalf("a writer failed: %v, %v", a.ProcessState, b.ProcessState)
		}
		h.sync()
	}
	var n int
	if err := h.app.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 4*300 {
		t.Fatalf("%d rows, %v", n, err)
	}
	h.verifyAll()
	h.verifyChain()
}
