// Command demo shows walship end to end: it replicates a live database that is
// being written to, stops the replicator, restores the replica and checks that
// the restored database holds exactly the rows of the original.
//
//	go build -o /tmp/walship ./cmd/walship
//	go run ./internal/demo [-keep] /tmp/walship
//
// It builds nothing itself; the first argument is the walship binary. With
// -keep the temporary directory is kept and its path printed.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "modernc.org/sqlite"

	"github.com/walship/walship/internal/sqliteuri"
)

const (
	transactions = 200
	rowsPerTx    = 10
	writeFor     = 3 * time.Second
)

func main() {
	var bin string
	keep := false
	for _, a := range os.Args[1:] {
		switch a {
		case "-keep", "--keep":
			keep = true
		case "-h", "-help", "--help":
			usage(os.Stdout)
			return
		default:
			if bin != "" || strings.HasPrefix(a, "-") {
				usage(os.Stderr)
				os.Exit(2)
			}
			bin = a
		}
	}
	if bin == "" {
		usage(os.Stderr)
		os.Exit(2)
	}
	if err := demo(bin, keep); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo FAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("\ndemo OK: the restored database is identical to the original")
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: go run ./internal/demo [-keep] PATH_TO_WALSHIP_BINARY")
	fmt.Fprintln(w, "build the binary first: go build -o /tmp/walship ./cmd/walship")
}

var stepN int

func step(format string, args ...any) {
	stepN++
	fmt.Printf("\n=== Step %d: %s\n", stepN, fmt.Sprintf(format, args...))
}

func demo(bin string, keep bool) (err error) {
	bin, err = filepath.Abs(bin)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		return fmt.Errorf("walship binary %s not found; build it with: go build -o %s ./cmd/walship", bin, bin)
	}

	dir, err := os.MkdirTemp("", "walship-demo-")
	if err != nil {
		return err
	}
	defer func() {
		if keep {
			fmt.Printf("\nkept the demo directory: %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	dbPath := filepath.Join(dir, "app.db")
	replicaURL := "file://" + filepath.Join(dir, "replica")
	restored := filepath.Join(dir, "restored.db")

	step("create a sample database")
	app, err := sql.Open("sqlite", sqliteuri.File(dbPath, "_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)"))
	if err != nil {
		return err
	}
	defer app.Close()
	app.SetMaxOpenConns(1)
	if _, err := app.Exec(`CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount INTEGER, created TEXT)`); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	fmt.Printf("created %s with table orders\n", dbPath)

	step("start walship replicate")
	args := []string{"replicate", "-sync-interval", "100ms", dbPath, replicaURL}
	fmt.Printf("$ walship %s\n", strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "WALSHIP_CONFIG="+filepath.Join(dir, "no-config.yml"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = os.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start walship: %w", err)
	}
	var logWG sync.WaitGroup
	logWG.Add(1)
	go func() {
		defer logWG.Done()
		prefix(stderr, "  [walship] ")
	}()
	exited := make(chan error, 1)
	go func() {
		logWG.Wait() // read all output before Wait closes the pipe
		exited <- cmd.Wait()
	}()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	}()
	if err := waitForFile(filepath.Join(dir, "replica", "ltx", "0"), exited, 10*time.Second); err != nil {
		return err
	}

	step("write %d rows in %d transactions over ~%s", transactions*rowsPerTx, transactions, writeFor)
	customers := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	start := time.Now()
	id := 0
	for i := range transactions {
		tx, err := app.Begin()
		if err != nil {
			return err
		}
		for range rowsPerTx {
			id++
			_, err := tx.Exec(`INSERT INTO orders (id, customer, amount, created) VALUES (?, ?, ?, ?)`,
				id, customers[rand.IntN(len(customers))], rand.IntN(100000), time.Now().UTC().Format(time.RFC3339Nano))
			if err != nil {
				tx.Rollback()
				return fmt.Errorf("insert: %w", err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if (i+1)%50 == 0 {
			fmt.Printf("committed %d transactions (%d rows) after %s\n", i+1, id, time.Since(start).Round(10*time.Millisecond))
		}
		select {
		case err := <-exited:
			stopped = true
			return fmt.Errorf("walship exited while the demo was writing: %v", err)
		default:
		}
		time.Sleep(time.Until(start.Add(writeFor * time.Duration(i+1) / transactions)))
	}

	step("stop walship with SIGTERM")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			return fmt.Errorf("walship did not exit cleanly: %v", err)
		}
		fmt.Println("walship exited with status 0")
	case <-time.After(30 * time.Second):
		return errors.New("walship did not exit within 30s of SIGTERM")
	}

	step("list the replica's LTX files")
	out, err := walship(bin, dir, "ltx", replicaURL)
	if err != nil {
		return err
	}
	printTail(out, 12)

	step("restore the replica")
	out, err = walship(bin, dir, "restore", "-o", restored, replicaURL)
	if err != nil {
		return err
	}
	fmt.Print(out)

	step("compare the original and the restored database")
	origN, origSum, err := fingerprint(dbPath)
	if err != nil {
		return fmt.Errorf("original: %w", err)
	}
	restN, restSum, err := fingerprint(restored)
	if err != nil {
		return fmt.Errorf("restored: %w", err)
	}
	fmt.Printf("original: %5d rows  sha256 %s\n", origN, origSum)
	fmt.Printf("restored: %5d rows  sha256 %s\n", restN, restSum)
	if origN != restN || origSum != restSum {
		return errors.New("the restored database differs from the original")
	}
	if origN != transactions*rowsPerTx {
		return fmt.Errorf("the original holds %d rows, want %d", origN, transactions*rowsPerTx)
	}
	return nil
}

// walship runs the binary, echoing the command, and returns its stdout.
func walship(bin, dir string, args ...string) (string, error) {
	fmt.Printf("$ walship %s\n", strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "WALSHIP_CONFIG="+filepath.Join(dir, "no-config.yml"))
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("walship %s: %v\n%s", args[0], err, stderr.String())
	}
	if stderr.Len() > 0 {
		fmt.Print(stderr.String())
	}
	return stdout.String(), nil
}

// waitForFile waits until dir holds a file, failing early if the process
// exits.
func waitForFile(dir string, exited <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			fmt.Println("the replica received its first file")
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("walship exited early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no file arrived in %s within %s", dir, timeout)
		}
	}
}

// prefix copies r to stdout line by line, prefixing each line.
func prefix(r io.Reader, p string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fmt.Println(p + sc.Text())
	}
}

// printTail prints the header line and the last n lines of a table.
func printTail(out string, n int) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) <= n+1 {
		fmt.Println(strings.Join(lines, "\n"))
		return
	}
	fmt.Println(lines[0])
	fmt.Printf("... (%d more files)\n", len(lines)-1-n)
	fmt.Println(strings.Join(lines[len(lines)-n:], "\n"))
}

// fingerprint returns the row count of orders and the SHA-256 of all its rows
// in id order.
func fingerprint(path string) (int, string, error) {
	db, err := sql.Open("sqlite", sqliteuri.File(path, "mode=ro"))
	if err != nil {
		return 0, "", err
	}
	defer db.Close()
	var n int
	var all sql.NullString
	err = db.QueryRowContext(context.Background(), `
		SELECT count(*), group_concat(id || '|' || customer || '|' || amount || '|' || created, char(10) ORDER BY id)
		FROM orders`).Scan(&n, &all)
	if err != nil {
		return 0, "", err
	}
	sum := sha256.Sum256([]byte(all.String))
	return n, hex.EncodeToString(sum[:]), nil
}
