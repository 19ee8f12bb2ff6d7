package walship

import (
	"context"
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
// verifies the replica on that schedule, logs that it is whole, and logs a
// damaged file as an error naming it.
func TestValidationInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var logs testutil.SyncBuffer
		dir := filepath.Join(t.TempDir(), "replica")
		replica := NewReplica("dir", file.New(dir))
		replica.ValidationInterval = time.Hour
		app, _, db, stop := startScheduledReplica(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, replica)
		defer stop()
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
		if strings.Contains(logs.String(), "replica verified") {
			t.Fatal("verified before the interval passed")
		}
		time.Sleep(time.Hour + time.Minute)
		synctest.Wait()
		if !strings.Contains(logs.String(), "replica verified: whole") {
			t.Fatalf("no verification after the interval:\n%s", logs.String())
		}

		// Damage the newest level-0 file: the next run logs it.
		files, err := replica.Client.LTXFiles(ctx, 0)
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
	})
}
