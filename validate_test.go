package walship

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// TestValidationInterval: with validation-interval set, the replicator
// verifies the replica on that schedule, which a restart does not reset; it
// logs that the replica is whole, and logs a damaged file as an error
// naming it.
func TestValidationInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var logs testutil.SyncBuffer
		dir := filepath.Join(t.TempDir(), "replica")
		path := filepath.Join(t.TempDir(), "app.db")
		start := func() (*sql.DB, *DB, func()) {
			replica := NewReplica("dir", file.New(dir))
			replica.ValidationInterval = time.Hour
			app, _, db, stop := startScheduledAt(t, path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, replica)
			return app, db, stop
		}
		verified := func() int { return strings.Count(logs.String(), "replica verified: whole") }

		app, db, stop := start()
		defer func() { stop() }()
		for range 5 {
			if _, err := app.Exec("INSERT INTO t (v) VALUES (randomblob(3000))"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := Upload(ctx, db); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := verified(); n != 0 {
			t.Fatalf("verified at start, before the interval passed")
		}

		// Restarts every 50 minutes do not reset the schedule: the
		// replica is verified every hour from the first start.
		for i, want := range []int{0, 1, 2, 3} {
			time.Sleep(50 * time.Minute)
			synctest.Wait()
			stop()
			app.Close()
			app, db, stop = start()
			synctest.Wait()
			if n := verified(); n != want {
				t.Fatalf("after %d minutes, restarted every 50: %d verifications; want %d:\n%s", (i+1)*50, n, want, logs.String())
			}
		}

		// Damage the newest level-0 file: the next run logs it.
		files, err := db.replicas[0].Client.LTXFiles(ctx, 0)
		if err != nil || len(files) == 0 {
			t.Fatalf("level 0: %v, %v", files, err)
		}
		f := files[len(files)-1]
		p := filepath.Join(dir, "ltx", "0", storage.FileName(f.MinTXID, f.MaxTXID))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		os.Chmod(p, 0o644)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		out := logs.String()
		if !strings.Contains(out, "level=ERROR msg=\"replica verification found a problem\"") || !strings.Contains(out, storage.FileName(f.MinTXID, f.MaxTXID)) {
			t.Fatalf("the damaged file was not logged as an error:\n%s", out)
		}
		_ = app
	})
}
