package walship_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
)

// TestDirectoryRemovalOrderings: a database deleted (with its WAL and
// shared memory) from a watched directory is stopped with one line,
// "database removed from the directory", and reported as no failure,
// whichever of the engine, the directory's scan and the store's stop sees
// the deletion first. The scans are held at a gate, so each ordering is
// made, not hoped for:
//
//   - sync, then scan: the engine's sync finds the file gone while the
//     scan waits (it used to log "sync failed" as an error), then the
//     scan stops the database;
//   - sync, then stop: as above, but the store stops before any scan saw
//     the deletion (the removal was never said: the e2e flake of
//     TestDirectoryFile on a loaded machine);
//   - stop, then last capture: no sync ran since the deletion (a long
//     sync interval), so the database's last capture at the stop finds
//     the file gone (it used to be reported as the database's failure).
func TestDirectoryRemovalOrderings(t *testing.T) {
	for _, tc := range []struct {
		name         string
		syncInterval string
		engineFirst  bool // wait until the engine's sync found the file gone
		scanFirst    bool // then let the scan see the deletion before the stop
	}{
		{"sync, then scan", "10ms", true, true},
		{"sync, then stop", "10ms", true, false},
		{"stop, then last capture", "1h", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dbs := filepath.Join(root, "dbs")
			if err := os.Mkdir(dbs, 0o755); err != nil {
				t.Fatal(err)
			}
			tenant := filepath.Join(dbs, "tenant.db")
			createDB(t, tenant)
			s, logs := dirStoreWith(t, dbs, filepath.Join(root, "replica"), tc.syncInterval, slog.LevelDebug)
			old := walship.DirPoll
			walship.DirPoll = time.Hour // only notifications scan
			defer func() { walship.DirPoll = old }()

			// The gate: while hold is set, a scan's walk waits for
			// release, and then fails with what it is sent, or walks.
			var hold atomic.Bool
			held := make(chan struct{}, 1)
			release := make(chan error)
			walship.SetDirWalk(s.Dirs[0], func(dir string, fn fs.WalkDirFunc) error {
				if hold.Load() {
					select {
					case held <- struct{}{}:
					default:
					}
					if err := <-release; err != nil {
						return err
					}
				}
				return filepath.WalkDir(dir, fn)
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx, 10*time.Second) }()
			var once sync.Once
			var runErr error
			stop := func(scan error) error {
				once.Do(func() {
					cancel()
					if hold.Swap(false) {
						release <- scan // the held scan ends after the cancel
					}
					runErr = <-done
				})
				return runErr
			}
			t.Cleanup(func() { stop(nil) })

			waitUntil(t, "the tenant is replicated", func() bool { return replicated(s, tenant) })
			// Hold the next scan, made by a file created beside, before
			// the deletion: no scan can see it until released.
			hold.Store(true)
			if err := os.WriteFile(filepath.Join(dbs, "notes.txt"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			select {
			case <-held:
			case <-time.After(time.Minute):
				t.Fatal("no scan after a file was created in the directory")
			}
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(tenant + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Fatal(err)
				}
			}
			if tc.engineFirst {
				waitUntil(t, "the engine's sync finds the file gone", func() bool {
					out := logs.String()
					// The second is how it was said before, a failure.
					return strings.Contains(out, "the database file was deleted; the directory's scan stops its replication") || strings.Contains(out, "sync failed; retrying")
				})
			}
			if tc.scanFirst {
				hold.Store(false)
				release <- nil
				waitUntil(t, "the deleted database is stopped and forgotten", func() bool { _, ok := status(s, tenant); return !ok })
			}
			// A held scan ends without a look, as one the stop interrupts:
			// the store's last look must say what it did not.
			if err := stop(errors.New("the test ends this scan")); err != nil {
				t.Fatalf("the store reports a failure: %v\n%s", err, logs.String())
			}
			out := logs.String()
			if n := countLines(out, tenant, "database removed from the directory; stopping its replication"); n != 1 {
				t.Errorf("%d lines say the database was removed, want 1:\n%s", n, out)
			}
			for _, level := range []string{"level=ERROR", "level=WARN"} {
				if strings.Contains(out, level) {
					t.Errorf("a deleted database was reported as a problem (%s):\n%s", level, out)
				}
			}
		})
	}
}

// dirStoreWith is dirStore with the databases' sync interval and the
// log's level.
func dirStoreWith(t *testing.T, dbs, replica, syncInterval string, level slog.Level) (*walship.Store, *lockedBuffer) {
	t.Helper()
	cfg, err := config.Parse("t.yml", []byte("dbs:\n  - dir: "+dbs+"\n    pattern: \"*.db\"\n    sync-interval: "+syncInterval+"\n    replica:\n      url: file://"+replica+"\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	s, err := walship.FromConfig(context.Background(), cfg, "t.yml", slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: level})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &logs
}

// countLines counts the lines of the log s that hold both db and msg.
func countLines(s, db, msg string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, db) && strings.Contains(l, msg) {
			n++
		}
	}
	return n
}
