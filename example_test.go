package walship_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
	"github.com/walship/walship/storage/file"
)

// Replicate one database to a directory. Open stages the database's state
// (a snapshot, the first time), Sync captures what was committed since, and
// Upload ships it; DB.Run does all three continuously until its context
// ends.
func Example() {
	dir, err := os.MkdirTemp("", "walship-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.db")
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)")
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()
	if _, err := app.Exec("CREATE TABLE notes (body TEXT)"); err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	db, err := walship.NewDB(path, walship.Options{Logger: slog.New(slog.DiscardHandler)},
		walship.NewReplica("backup", file.New(filepath.Join(dir, "replica"))))
	if err != nil {
		log.Fatal(err)
	}
	if err := db.Open(ctx); err != nil {
		log.Fatal(err)
	}
	defer db.Close(ctx)

	for _, body := range []string{"first", "second"} {
		if _, err := app.Exec("INSERT INTO notes VALUES (?)", body); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := db.Sync(ctx); err != nil {
		log.Fatal(err)
	}
	if err := walship.Upload(ctx, db); err != nil {
		log.Fatal(err)
	}
	fmt.Println("the replica holds TXID", db.Replicas()[0].Pos().TXID)
	// Output: the replica holds TXID 0000000000000002
}

// Build the databases of a walship.yml, ready to run with Store.Run.
func ExampleFromConfig() {
	cfg, err := config.Parse("walship.yml", []byte(`
dbs:
  - path: /var/lib/app/app.db
    sync-interval: 5s
    replicas:
      - name: local
        url: file:///backups/app
`), false)
	if err != nil {
		log.Fatal(err)
	}
	store, err := walship.FromConfig(context.Background(), cfg, "walship.yml", slog.New(slog.DiscardHandler))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	for _, db := range store.DBs {
		for _, r := range db.Replicas() {
			fmt.Println(db.Path(), "->", r.Name, r.Client)
		}
	}
	// Output: /var/lib/app/app.db -> local file:///backups/app
}

// Wait, after a commit that must not be lost, until every replica holds
// it: SyncWait captures it at once and returns when each replica can
// restore it, or a *walship.BehindError naming the replica behind when
// the context ends first.
func ExampleDB_SyncWait() {
	dir, err := os.MkdirTemp("", "walship-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.db")
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)")
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()
	if _, err := app.Exec("CREATE TABLE orders (id INTEGER PRIMARY KEY)"); err != nil {
		log.Fatal(err)
	}

	db, err := walship.NewDB(path, walship.Options{Logger: slog.New(slog.DiscardHandler)},
		walship.NewReplica("backup", file.New(filepath.Join(dir, "replica"))))
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- db.Run(ctx, 10*time.Second) }()
	defer func() { stop(); <-done }()
	for db.Phase() != walship.PhaseReplicating {
		time.Sleep(10 * time.Millisecond)
	}

	if _, err := app.Exec("INSERT INTO orders VALUES (1)"); err != nil {
		log.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pos, err := db.SyncWait(wctx)
	if err != nil {
		log.Fatal(err) // e.g. replica "backup" holds TXID ..., wanted ...
	}
	fmt.Println("every replica holds TXID", pos.TXID)
	// Output: every replica holds TXID 0000000000000002
}
