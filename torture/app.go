package main

import (
	"bufio"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite"

	"github.com/walship/walship/internal/sqliteuri"
)

// The application under test is this program run as "torture app": one
// connection (modernc.org/sqlite, WAL, synchronous=NORMAL) committing the
// history of -seed at -rate commits a second, in a process of its own so
// that walship replicates it as it would any application.
//
// It starts where the database's meta row says it stands (a new database
// starts at commit 0), prints "ready C", and then takes commands on stdin,
// one a line, answering each with one line on stdout, "ok C" (C: the
// commits applied) or "error MESSAGE":
//
//	status          where it stands
//	pause, resume   stop and restart committing
//	rate N          commit N times a second
//	checkpoint      PRAGMA wal_checkpoint(TRUNCATE)
//	vacuum          VACUUM
//	pagesize N      journal_mode=DELETE, page_size=N, VACUUM, journal_mode=WAL
//	stop            close the database and exit; answers "stopped C"
//
// With -crash-after K it commits K transactions and exits without closing
// the database, as a crashed application does, leaving the last K-1 in its
// WAL (the first is checkpointed into the file); it prints "crashed C".

// application is the running application's state.
type application struct {
	h      history
	path   string
	db     *sql.DB
	conn   *sql.Conn
	mark   mark
	next   int64 // the next row number
	paused bool
	pace   pacer
}

func appMain(args []string) int {
	fs := flag.NewFlagSet("app", flag.ExitOnError)
	path := fs.String("db", "", "the database")
	seed := fs.Uint64("seed", 0, "the history's seed")
	rate := fs.Int("rate", 500, "commits a second")
	branch := fs.Uint64("branch", 0, "leave the main history for this branch (nonzero, below 2^63)")
	crashAfter := fs.Int("crash-after", 0, "commit this many transactions, then exit without closing the database")
	fs.Parse(args)

	ctx := context.Background()
	a, err := openApplication(ctx, *path, history{seed: *seed})
	if err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		return 1
	}
	if *branch != 0 && a.mark.branch == 0 {
		if err := a.setBranch(ctx, *branch); err != nil {
			fmt.Fprintln(os.Stderr, "app:", err)
			return 1
		}
	}
	if *crashAfter > 0 {
		if err := a.crash(ctx, *crashAfter); err != nil {
			fmt.Fprintln(os.Stderr, "app:", err)
			return 1
		}
		fmt.Printf("crashed %d\n", a.mark.commit)
		os.Exit(0) // without closing: the WAL stays as a crash leaves it
	}
	a.pace.setRate(*rate)
	fmt.Printf("ready %d\n", a.mark.commit)
	if err := a.run(ctx, readLines(os.Stdin)); err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		return 1
	}
	return 0
}

// openApplication opens (or creates) the database and reads where it stands.
func openApplication(ctx context.Context, path string, h history) (*application, error) {
	db, err := sql.Open("sqlite", sqliteuri.File(path, "_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	a := &application{h: h, path: path, db: db, conn: conn}
	if _, err := conn.ExecContext(ctx, schema); err != nil {
		a.close()
		return nil, fmt.Errorf("create the schema in %s: %w", path, err)
	}
	var branch int64
	if err := conn.QueryRowContext(ctx, `SELECT c, next, branch, branch_at FROM meta`).Scan(&a.mark.commit, &a.next, &branch, &a.mark.branchAt); err != nil {
		a.close()
		return nil, fmt.Errorf("read the meta row of %s: %w", path, err)
	}
	a.mark.branch = uint64(branch)
	return a, nil
}

func (a *application) close() error {
	a.conn.Close()
	return a.db.Close()
}

// setBranch makes the commits from now on those of branch b.
func (a *application) setBranch(ctx context.Context, b uint64) error {
	if _, err := a.conn.ExecContext(ctx, `UPDATE meta SET branch = ?, branch_at = c`, int64(b)); err != nil {
		return fmt.Errorf("set branch %x: %w", b, err)
	}
	a.mark.branch, a.mark.branchAt = b, a.mark.commit
	return nil
}

// commit applies the history's next commit in one transaction.
func (a *application) commit(ctx context.Context) error {
	c := a.mark.commit + 1
	o := a.h.op(a.mark, c, a.next)
	tx, err := a.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("commit %d: begin: %w", c, err)
	}
	defer tx.Rollback()
	next := a.next
	switch o.kind {
	case opInsert:
		for range o.rows {
			if _, err := tx.ExecContext(ctx, `INSERT INTO rows (n, w, v) VALUES (?, ?, ?)`, next, c, a.h.payload(a.mark, c, next)); err != nil {
				return fmt.Errorf("commit %d: insert row %d: %w", c, next, err)
			}
			next++
		}
	case opUpdate:
		if _, err := tx.ExecContext(ctx, `UPDATE rows SET w = ?, v = ? WHERE n = ?`, c, a.h.payload(a.mark, c, o.row), o.row); err != nil {
			return fmt.Errorf("commit %d: update row %d: %w", c, o.row, err)
		}
	case opDelete:
		if _, err := tx.ExecContext(ctx, `DELETE FROM rows WHERE n = ?`, o.row); err != nil {
			return fmt.Errorf("commit %d: delete row %d: %w", c, o.row, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET c = ?, next = ?`, c, next); err != nil {
		return fmt.Errorf("commit %d: meta: %w", c, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit %d: %w", c, err)
	}
	a.mark.commit, a.next = c, next
	return nil
}

// run commits at the pace set until told to stop; commands are taken
// between commits.
func (a *application) run(ctx context.Context, cmds <-chan string) error {
	for {
		var cmd string
		var ok bool
		if a.paused {
			cmd, ok = <-cmds
		} else {
			select {
			case cmd, ok = <-cmds:
			default:
				a.pace.wait()
				if err := a.commit(ctx); err != nil {
					return err
				}
				continue
			}
		}
		if !ok || cmd == "stop" {
			if err := a.close(); err != nil {
				return fmt.Errorf("close: %w", err)
			}
			fmt.Printf("stopped %d\n", a.mark.commit)
			return nil
		}
		if err := a.do(ctx, cmd); err != nil {
			fmt.Printf("error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Printf("ok %d\n", a.mark.commit)
		}
	}
}

// do carries out one command other than stop.
func (a *application) do(ctx context.Context, cmd string) error {
	name, arg, _ := strings.Cut(cmd, " ")
	switch name {
	case "status":
		return nil
	case "pause":
		a.paused = true
		return nil
	case "resume":
		a.paused = false
		a.pace.reset()
		return nil
	case "rate":
		n, err := strconv.Atoi(arg)
		if err != nil || n <= 0 {
			return fmt.Errorf("rate %q: want commits a second", arg)
		}
		a.pace.setRate(n)
		return nil
	case "checkpoint":
		return a.checkpoint(ctx)
	case "vacuum":
		_, err := a.conn.ExecContext(ctx, "VACUUM")
		return err
	case "pagesize":
		n, err := strconv.Atoi(arg)
		if err != nil {
			return fmt.Errorf("pagesize %q: want a page size", arg)
		}
		return a.changePageSize(ctx, n)
	}
	return fmt.Errorf("unknown command %q", cmd)
}

// checkpoint runs wal_checkpoint(TRUNCATE) and fails if it could not
// finish (a reader held the log).
func (a *application) checkpoint(ctx context.Context) error {
	var busy, logFrames, done int
	if err := a.conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done); err != nil {
		return fmt.Errorf("wal_checkpoint(TRUNCATE): %w", err)
	}
	if busy != 0 {
		return fmt.Errorf("wal_checkpoint(TRUNCATE) could not finish: %d of %d frames", done, logFrames)
	}
	return nil
}

// changePageSize rebuilds the database with another page size, which a
// database in WAL mode can only do after leaving it.
func (a *application) changePageSize(ctx context.Context, size int) error {
	if err := a.journalMode(ctx, "delete"); err != nil {
		return err
	}
	if _, err := a.conn.ExecContext(ctx, fmt.Sprintf("PRAGMA page_size = %d", size)); err != nil {
		return fmt.Errorf("page_size %d: %w", size, err)
	}
	if _, err := a.conn.ExecContext(ctx, "VACUUM"); err != nil {
		return fmt.Errorf("VACUUM to page size %d: %w", size, err)
	}
	if err := a.journalMode(ctx, "wal"); err != nil {
		return err
	}
	var got int
	if err := a.conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&got); err != nil {
		return err
	}
	if got != size {
		return fmt.Errorf("page size is %d after changing it to %d", got, size)
	}
	return nil
}

func (a *application) journalMode(ctx context.Context, mode string) error {
	var got string
	if err := a.conn.QueryRowContext(ctx, "PRAGMA journal_mode = "+mode).Scan(&got); err != nil {
		return fmt.Errorf("journal_mode=%s: %w", mode, err)
	}
	if got != mode {
		return fmt.Errorf("journal_mode=%s left the database in %s mode", mode, got)
	}
	return nil
}

// crash commits k transactions, the first checkpointed into the database
// file and the others left in the WAL.
func (a *application) crash(ctx context.Context, k int) error {
	if err := a.commit(ctx); err != nil {
		return err
	}
	if err := a.checkpoint(ctx); err != nil {
		return err
	}
	if _, err := a.conn.ExecContext(ctx, "PRAGMA wal_autocheckpoint = 0"); err != nil {
		return err
	}
	for range k - 1 {
		if err := a.commit(ctx); err != nil {
			return err
		}
	}
	return nil
}

// readLines sends each line read from f; the channel closes at EOF, as
// when the parent dies.
func readLines(f *os.File) <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			ch <- strings.TrimSpace(sc.Text())
		}
	}()
	return ch
}

// pacer spaces commits to a rate without bursting after a stall.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func (p *pacer) setRate(n int) {
	p.interval = time.Second / time.Duration(max(n, 1))
	p.reset()
}

func (p *pacer) reset() { p.next = time.Now() }

func (p *pacer) wait() {
	p.next = p.next.Add(p.interval)
	d := time.Until(p.next)
	switch {
	case d > 0:
		time.Sleep(d)
	case d < -50*time.Millisecond:
		p.next = time.Now() // behind after a stall: go on from now, not in a burst
	}
}
