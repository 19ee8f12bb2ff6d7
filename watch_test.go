package walship

import (
	"context"
	"database/sql"
	"errors"

	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walship/walship/storage/file"
)

func waitNotice(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(time.Minute):
		t.Fatalf("no notice of %s", what)
	}
}

// One watcher serves databases in several directories: each subscriber hears
// of its own files only, and the inotify instance closes with the last one.
func TestSharedWatcher(t *testing.T) {
	dir1, dir2 := t.TempDir(), t.TempDir()
	a, b, c := filepath.Join(dir1, "a.db"), filepath.Join(dir1, "b.db"), filepath.Join(dir2, "c.db")
	w := NewWatcher(slog.New(slog.DiscardHandler))
	subscribe := func(p string) (<-chan struct{}, func()) {
		ch, stop, err := w.subscribe([]string{p, p + "-wal"}, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		return ch, stop
	}
	ca, stopA := subscribe(a)
	cb, stopB := subscribe(b)
	cc, stopC := subscribe(c)
	write := func(p string) {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	write(b + "-wal")
	waitNotice(t, cb, "b's WAL")
	// Events are handed out in order: had a's or c's subscriber been told
	// of b's write, it would hold a notice by now.
	for name, ch := range map[string]<-chan struct{}{"a": ca, "c": cc} {
		select {
		case <-ch:
			t.Fatalf("%s was told of a write to b", name)
		default:
		}
	}
	write(a)
	waitNotice(t, ca, "a")
	write(c + "-wal")
	waitNotice(t, cc, "c's WAL in another directory")

	stopA()
	stopB()
	if w.w == nil {
		t.Fatal("the watcher closed while a database still used it")
	}
	stopC()
	if w.w != nil {
		t.Fatal("the watcher stayed open after its last database stopped")
	}
	// It opens again for the next database.
	cd, stopD := subscribe(a)
	defer stopD()
	write(a + "-wal")
	waitNotice(t, cd, "a after the watcher reopened")
}

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
