package walship

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/walship/walship/storage/file"
)

// A database waits for a free opening slot, and gives up when its context
// ends.
func TestOpenWaitsForASlot(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.db")
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if _, err := app.Exec("CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	slots := make(chan struct{}, 1)
	slots <- struct{}{} // taken by another database
	db, err := NewDB(path, Options{Opening: slots, Logger: slog.New(slog.DiscardHandler)}, NewReplica("dir", file.New(filepath.Join(dir, "replica"))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.openLimited(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("opened without a free slot: %v", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting for a slot: %v; want context.Canceled", err)
	}
	<-slots // the other database opened
	if err := db.openLimited(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if len(slots) != 0 {
		t.Fatal("the slot stayed taken after the database opened")
	}
}
