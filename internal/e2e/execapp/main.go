// Command execapp is the application the end-to-end tests of `walship
// replicate -exec` run under walship: it opens a SQLite database (creating
// it if needed), prints how many rows it holds, commits -rows rows one
// transaction each, and exits, or with -wait waits for SIGTERM or SIGINT
// first (committing a row every -every meanwhile). Each row but the one
// committed on the signal says which process committed it and when
// (stamp). It is a test program, not part of walship.
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	_ "modernc.org/sqlite"
)

func main() {
	path := flag.String("db", "", "the database")
	rows := flag.Int("rows", 0, "rows to insert, one transaction each")
	code := flag.Int("exit", 0, "exit status once done")
	wait := flag.Bool("wait", false, "after inserting, wait for SIGTERM or SIGINT")
	every := flag.Duration("every", 0, "with -wait: meanwhile commit one row this often")
	onTerm := flag.Int("on-term", -1, "with -wait: on the signal, commit one more row and exit with this status (default: do not handle the signal, so that it kills the process)")
	linger := flag.Duration("linger", 0, "with -on-term: after the signal, go on committing (every -every) this long before the last row: an application slow to stop")
	flag.Parse()

	// Before the inserts: a signal that comes early is not lost.
	sigs := make(chan os.Signal, 1)
	if *onTerm >= 0 {
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	}
	db, err := sql.Open("sqlite", "file:"+*path+"?_pragma=busy_timeout(30000)&_pragma=journal_mode(wal)")
	check(err)
	db.SetMaxOpenConns(1)
	_, err = db.Exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
	check(err)
	var n int
	check(db.QueryRow("SELECT count(*) FROM t").Scan(&n))
	fmt.Printf("execapp: rows-before %d\n", n)
	for i := range *rows {
		_, err := db.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprintf("row %d of this run %s", i, stamp()))
		check(err)
	}
	if *wait {
		fmt.Println("execapp: waiting for a signal")
		// The writer stops before the last row and the close: a commit
		// racing the close would fail the run.
		stop, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			if *every <= 0 {
				return
			}
			t := time.NewTicker(*every)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				_, err := db.Exec("INSERT INTO t (v) VALUES (?)", "while waiting "+stamp())
				check(err)
			}
		}()
		if *onTerm < 0 {
			for { // until the signal kills the process (a select{} would be a deadlock to Go)
				time.Sleep(time.Hour)
			}
		}
		sig := <-sigs
		time.Sleep(*linger)
		close(stop)
		<-stopped
		_, err := db.Exec("INSERT INTO t (v) VALUES (?)", "at "+sig.String())
		check(err)
		check(db.Close())
		os.Exit(*onTerm)
	}
	check(db.Close())
	os.Exit(*code)
}

// stamp names the process and the time just before a commit (Unix
// milliseconds): a test that finds the row lost knows how long before a
// crash it was committed, at the latest.
func stamp() string {
	return fmt.Sprintf("pid=%d at=%d", os.Getpid(), time.Now().UnixMilli())
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "execapp:", err)
		os.Exit(100)
	}
}
