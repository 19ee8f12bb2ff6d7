package e2e

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/restore"
)

// followTop is the top of RunFollow's config: level 1 every 2s, a
// snapshot every 2s kept 3s, level-0 files deleted 1s after they are
// merged, so the follower meets snapshots, compaction and retention
// within seconds.
const followTop = fastLevels + "snapshot:\n  interval: 2s\n  retention: 3s\nl0-retention: 1s\nl0-retention-check-interval: 1s\n"

// RunFollow is the end-to-end test of read replicas: the application
// writes (every transaction inserts rows and updates a counter row with
// them) while walship replicates to r, with snapshots, compaction and
// retention on short intervals; walship restore -follow keeps a copy;
// another connection, read-only with a busy timeout, reads the copy all
// along and must find it PRAGMA integrity_check clean, its counter equal
// to its row count, and its transactions never going back. The follower
// is killed (SIGKILL) and started again midway. At the end the copy is
// the application's database exactly.
func RunFollow(t *testing.T, r Replica) {
	ctx := context.Background()
	dir := t.TempDir()
	bin := Binary(t)
	dbPath := filepath.Join(dir, "app.db")
	copyPath := filepath.Join(dir, "copy", "copy.db")
	cfgPath := writeConfigWith(t, filepath.Join(dir, "walship.yml"), followTop, dbPath, r)

	w := startCounterWriter(t, dbPath)
	rep := startWalship(t, bin, r.Env, "replicate", "-config", cfgPath)
	pollUntil(t, 30*time.Second, "the replica's first files", func() bool {
		l, err := restore.List(ctx, r.Client)
		return err == nil && l.Len() > 0
	})
	followArgs := []string{"restore", "-f", "-follow-interval", "100ms", "-config", cfgPath, "-o", copyPath, dbPath}
	fol := startWalship(t, bin, r.Env, followArgs...)
	rd := startReader(t, copyPath)

	// Past a snapshot and a compaction, applied while the reader reads.
	applied := func(p *process) int { return strings.Count(p.output(), "follow: applied") }
	pollUntil(t, 60*time.Second, "the follower to apply files for 3s", func() bool { return applied(fol) >= 10 && rd.reads() >= 10 })
	time.Sleep(3 * time.Second) // snapshots, compaction and retention run meanwhile
	fol.kill(t)
	time.Sleep(6 * time.Second) // retention may delete every file it would need next
	fol = startWalship(t, bin, r.Env, followArgs...)
	pollUntil(t, 60*time.Second, "the restarted follower to apply files", func() bool { return applied(fol) >= 5 })
	if !strings.Contains(fol.output(), "as its record says") {
		t.Fatalf("the restarted follower did not go on from its copy:\n%s", fol.output())
	}

	w.stop(t)
	rep.terminate(t)
	finish(t, bin, r.Env, "replicate", "-once", "-config", cfgPath)
	want, err := contentImage(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		img, err := contentImage(ctx, copyPath)
		if err == nil && img == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the copy is not the application's database 30s after the replica got its last commit (%v); the follower's log:\n%s", err, fol.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	rd.stop(t)
	fol.terminate(t)
	if strings.Contains(fol.output(), "level=ERROR") || strings.Contains(fol.output(), "level=WARN") {
		t.Logf("the follower logged warnings or errors (it retries):\n%s", fol.output())
	}
	t.Logf("the application committed %d transactions; the reader checked the copy %d times and saw %d of its states", w.commits(), rd.reads(), rd.states())
	if rd.states() < 5 {
		t.Fatalf("the reader saw only %d states of the copy: it did not read while the copy followed", rd.states())
	}
}

// startCounterWriter starts an application whose every transaction
// inserts rows and adds their number to a counter row, and numbers itself
// in that row (seq).
func startCounterWriter(t *testing.T, path string) *writer {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(30000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{
		"CREATE TABLE rows (id INTEGER PRIMARY KEY, v BLOB)",
		"CREATE TABLE counter (n INTEGER, seq INTEGER)",
		"INSERT INTO counter VALUES (0, 0)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	w := &writer{db: db, done: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
		for {
			select {
			case <-w.done:
				return
			default:
			}
			if err := counterTx(db, rng); err != nil {
				w.err = err
				return
			}
			w.mu.Lock()
			w.n++
			w.mu.Unlock()
			time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
		}
	}()
	return w
}

func counterTx(db *sql.DB, rng *rand.Rand) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	k := 1 + rng.IntN(3)
	for range k {
		if _, err := tx.Exec("INSERT INTO rows (v) VALUES (randomblob(?))", 100+rng.IntN(3000)); err != nil {
			return err
		}
	}
	if rng.IntN(10) == 0 {
		// Deletes free pages, so files also shrink and reuse pages.
		res, err := tx.Exec("DELETE FROM rows WHERE id IN (SELECT id FROM rows ORDER BY random() LIMIT 2)")
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		k -= int(n)
	}
	if _, err := tx.Exec("UPDATE counter SET n = n + ?, seq = seq + 1", k); err != nil {
		return err
	}
	return tx.Commit()
}

// reader reads the copy while it follows, through one read-only
// connection that it keeps (its page cache must not outlive a change).
type reader struct {
	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	n    int
	seen map[int64]bool
	err  error
}

func (r *reader) reads() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *reader) states() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

func startReader(t *testing.T, path string) *reader {
	t.Helper()
	r := &reader{done: make(chan struct{}), seen: map[int64]bool{}}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.err = r.loop(path)
	}()
	t.Cleanup(func() { r.stopNow() })
	return r
}

func (r *reader) stopNow() {
	select {
	case <-r.done:
	default:
		close(r.done)
	}
	r.wg.Wait()
}

func (r *reader) stop(t *testing.T) {
	t.Helper()
	r.stopNow()
	if r.err != nil {
		t.Fatal(r.err)
	}
}

func (r *reader) loop(path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(60000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	var lastSeq int64 = -1
	for {
		select {
		case <-r.done:
			return nil
		case <-time.After(time.Millisecond):
		}
		var check string
		err := db.QueryRow("PRAGMA integrity_check").Scan(&check)
		if err == nil && check != "ok" {
			return fmt.Errorf("the copy failed PRAGMA integrity_check while it followed: %s", check)
		}
		var n, count, seq int64
		if err == nil {
			// One statement, one read transaction: one state.
			err = db.QueryRow("SELECT (SELECT n FROM counter), (SELECT count(*) FROM rows), (SELECT seq FROM counter)").Scan(&n, &count, &seq)
		}
		if err != nil {
			if tolerated(err) {
				continue
			}
			return fmt.Errorf("read the copy while it follows: %w", err)
		}
		if n != count {
			return fmt.Errorf("the copy is inconsistent: its counter says %d rows, it holds %d (transaction %d)", n, count, seq)
		}
		if seq < lastSeq {
			return fmt.Errorf("the copy went back from transaction %d to %d", lastSeq, seq)
		}
		lastSeq = seq
		r.mu.Lock()
		r.n++
		r.seen[seq] = true
		r.mu.Unlock()
	}
}

// tolerated says whether a reader's error is one SQLite gives without
// showing any state: the copy is not there yet, or a follower killed in
// its commit left a hot journal that a read-only connection cannot roll
// back (the follower does, when it starts again).
func tolerated(err error) bool {
	s := err.Error()
	return strings.Contains(s, "unable to open") || strings.Contains(s, "(776)")
}

// contentImage hashes every page of the database at path as SQLite reads
// it, in one read transaction, but for the bytes of page 1 a follower's
// copy holds of its own (journal mode, change counter, in-header size,
// version-valid-for and SQLite version): equal images are the same
// database, page for page.
func contentImage(ctx context.Context, path string) (string, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(60000)")
	if err != nil {
		return "", err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	h := sha256.New()
	for rows.Next() {
		var pgno int
		var data []byte
		if err := rows.Scan(&pgno, &data); err != nil {
			return "", err
		}
		if pgno == 1 {
			for _, r := range [][2]int{{18, 20}, {24, 32}, {92, 100}} {
				clear(data[r[0]:r[1]])
			}
		}
		fmt.Fprintf(h, "%d:", pgno)
		h.Write(data)
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// pollUntil polls cond until it holds, failing the test after d.
func pollUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
