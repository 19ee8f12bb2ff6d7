package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	_ "modernc.org/sqlite"

	"github.com/walship/walship/internal/sqliteuri"
)

// The application under test is this program run as "bench app": one
// connection committing single-row transactions, as an application would,
// in its own process so that the benchmark can SIGKILL it.

// rowBytes is the size of each row's payload.
const rowBytes = 100

// appResult is what "bench app" prints when it stops by itself.
type appResult struct {
	Commits int64   `json:"commits"`
	Seconds float64 `json:"seconds"`
}

// schema is the table every benchmark database holds: ts is the commit time
// in Unix nanoseconds, which the RPO scenario compares.
const schema = `CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, v BLOB NOT NULL)`

// openApp opens a database the way the benchmark's application does: WAL,
// synchronous=NORMAL, one connection.
func openApp(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", sqliteuri.File(path, "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return db, nil
}

// appMain runs the application: -rate commits per second (0: as fast as it
// can) for -duration (0: until killed).
func appMain(args []string) int {
	fs := flag.NewFlagSet("app", flag.ExitOnError)
	path := fs.String("db", "", "database")
	rate := fs.Int("rate", 0, "commits per second; 0 is as fast as possible")
	duration := fs.Duration("duration", 0, "how long to write; 0 is until killed")
	autockpt := fs.Int("wal-autocheckpoint", -1, "the application's PRAGMA wal_autocheckpoint; -1 leaves SQLite's default (1000)")
	fs.Parse(args)

	db, err := openApp(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		return 1
	}
	defer db.Close()
	if *autockpt >= 0 {
		if _, err := db.Exec(fmt.Sprintf("PRAGMA wal_autocheckpoint=%d", *autockpt)); err != nil {
			fmt.Fprintln(os.Stderr, "app:", err)
			return 1
		}
	}
	stmt, err := db.Prepare(`INSERT INTO t (ts, v) VALUES (?, ?)`)
	if err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	// Tell the parent the database is open and the loop starts now.
	fmt.Println("ready")

	row := make([]byte, rowBytes)
	var n int64
	start := time.Now()
	var interval time.Duration
	if *rate > 0 {
		interval = time.Second / time.Duration(*rate)
	}
	next := start
	for ctx.Err() == nil {
		if interval > 0 {
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
		rand.Read(row)
		if _, err := stmt.Exec(time.Now().UnixNano(), row); err != nil {
			fmt.Fprintln(os.Stderr, "app: commit:", err)
			return 1
		}
		n++
	}
	json.NewEncoder(os.Stdout).Encode(appResult{Commits: n, Seconds: time.Since(start).Seconds()})
	return 0
}
