package restore_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/walship/walship"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage/file"
)

// Restore a replica in a directory: its latest state, then the state after
// an earlier transaction.
func ExampleRestore() {
	dir, err := os.MkdirTemp("", "walship-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	replica := file.New(filepath.Join(dir, "replica")) // or any storage.Client
	if err := replicateSomeNotes(filepath.Join(dir, "app.db"), replica); err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	latest := filepath.Join(dir, "latest.db")
	res, err := restore.Restore(ctx, replica, latest, restore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("TXID %s: %d notes\n", res.TXID, countNotes(latest))

	early := filepath.Join(dir, "early.db")
	res, err = restore.Restore(ctx, replica, early, restore.Options{Target: restore.Target{TXID: 1}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("TXID %s: %d notes\n", res.TXID, countNotes(early))
	// Output:
	// TXID 0000000000000002: 2 notes
	// TXID 0000000000000001: 0 notes
}

// replicateSomeNotes makes a database whose replica holds two
// transactions: TXID 1, an empty notes table, and TXID 2, two notes.
func replicateSomeNotes(path string, replica *file.Client) error {
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)")
	if err != nil {
		return err
	}
	defer app.Close()
	if _, err := app.Exec("CREATE TABLE notes (body TEXT)"); err != nil {
		return err
	}
	ctx := context.Background()
	db, err := walship.NewDB(path, walship.Options{Logger: slog.New(slog.DiscardHandler)}, walship.NewReplica("", replica))
	if err != nil {
		return err
	}
	if err := db.Open(ctx); err != nil {
		return err
	}
	defer db.Close(ctx)
	if _, err := app.Exec("INSERT INTO notes VALUES ('first'), ('second')"); err != nil {
		return err
	}
	if _, err := db.Sync(ctx); err != nil {
		return err
	}
	return walship.Upload(ctx, db)
}

func countNotes(path string) int {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM notes").Scan(&n); err != nil {
		log.Fatal(err)
	}
	return n
}
