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
