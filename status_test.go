package walship_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/event"
	"github.com/walship/walship/storage/file"
)

// TestStatusLag: a replica that cannot receive what was captured lags by
// the age of the oldest TXID it lacks, one that holds everything by zero;
// once the failing one is back, it is at zero too. The events say what was
// uploaded and what failed.
func TestStatusLag(t *testing.T) {
	h := newHarness(t)
	h.exec("INSERT INTO t (v) VALUES (randomblob(100))")
	healthy := file.New(filepath.Join(t.TempDir(), "a"))
	failing := &switchable{Client: file.New(filepath.Join(t.TempDir(), "b"))}
	var mu sync.Mutex
	var events []walship.Event
	db, err := walship.NewDB(h.path, walship.Options{Logger: quietLogger(), Events: func(e walship.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}}, walship.NewReplica("a", healthy), walship.NewReplica("b", failing))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Open(h.ctx); err != nil {
		t.Fatal(err)
	}
	defer db.Close(h.ctx)
	if err := walship.Upload(h.ctx, db); err != nil {
		t.Fatal(err)
	}
	st := db.Status(h.ctx, time.Now())
	for _, r := range st.Replicas {
		if r.Lag != 0 || r.TXID != st.TXID || r.LastSnapshot.IsZero() {
			t.Fatalf("replica %s after a whole upload: %+v (database at %s)", r.Name, r, st.TXID)
		}
	}

	failing.down.Store(true)
	h.exec("INSERT INTO t (v) VALUES (randomblob(100))")
	if _, err := db.Sync(h.ctx); err != nil {
		t.Fatal(err)
	}
	captured := time.Now()
	walship.Upload(h.ctx, db) // b fails
	later := captured.Add(time.Minute)
	st = db.Status(h.ctx, later)
	a, b := st.Replicas[0], st.Replicas[1]
	if a.Lag != 0 {
		t.Errorf("the healthy replica lags %v", a.Lag)
	}
	if b.Lag < time.Minute || b.Lag > time.Minute+time.Hour {
		t.Errorf("the failing replica lags %v, want about a minute", b.Lag)
	}
	if b.Error == "" || b.Failures == 0 || b.TXID >= st.TXID {
		t.Errorf("the failing replica's status: %+v", b)
	}
	if st.StagingBytes == 0 {
		t.Error("staging holds the file b lacks, yet reads as empty")
	}

	failing.down.Store(false)
	if err := walship.Upload(h.ctx, db); err != nil {
		t.Fatal(err)
	}
	if b := db.Status(h.ctx, later).Replicas[1]; b.Lag != 0 || b.Error != "" {
		t.Errorf("replica b back: %+v", b)
	}

	mu.Lock()
	defer mu.Unlock()
	count := map[event.Kind]int{}
	for _, e := range events {
		count[e.Kind]++
		if e.DB != db.Path() {
			t.Errorf("event %+v names another database", e)
		}
		if e.Kind == event.UploadError && (e.Replica != "b" || e.ErrKind != event.ErrOther) {
			t.Errorf("upload error %+v", e)
		}
	}
	if count[event.Upload] == 0 || count[event.UploadError] == 0 || count[event.Sync] == 0 {
		t.Errorf("events by kind: %v", count)
	}
}

// A database replication cannot start on says so in its status: nothing
// of it is captured, so no replica's lag would show it.
func TestStatusDatabaseFailing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := walship.NewDB(path, walship.Options{Logger: quietLogger()}, walship.NewReplica("a", file.New(filepath.Join(t.TempDir(), "a"))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.Run(ctx, time.Second); err == nil {
		t.Fatal("replicating a file that is not a database did not fail")
	}
	if st := db.Status(ctx, time.Now()); st.Error == "" || st.FailingSince.IsZero() {
		t.Fatalf("status of a database that cannot be opened: %+v", st)
	}
}
