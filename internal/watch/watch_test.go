package watch

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
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
	w := New(slog.New(slog.DiscardHandler))
	subscribe := func(p string) (<-chan struct{}, func()) {
		ch, stop, err := w.Subscribe([]string{p, p + "-wal"}, time.Millisecond)
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

// TestSubscribeDir: a directory's subscriber hears of any file created in
// it, beside the subscribers of one file, and of nothing elsewhere.
func TestSubscribeDir(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	w := New(slog.New(slog.DiscardHandler))
	all, stopAll, err := w.SubscribeDir(dir, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	one, stopOne, err := w.Subscribe([]string{filepath.Join(dir, "a.db")}, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer stopOne()
	if err := os.WriteFile(filepath.Join(other, "x.db"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "new.db"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitNotice(t, all, "a file created in the directory")
	select {
	case <-one:
		t.Fatal("the subscriber of a.db was told of new.db")
	default:
	}
	if err := os.WriteFile(filepath.Join(dir, "a.db"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitNotice(t, one, "a.db")
	waitNotice(t, all, "a.db, to the directory's subscriber")
	stopAll()
	if w.w == nil {
		t.Fatal("the watcher closed while a file's subscriber still used it")
	}
}
