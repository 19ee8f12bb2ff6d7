package walship_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/storage/file"
)

// TestPhaseAndBeats: a supervisor sees a database wait for its file, then
// replicate, with a monitor loop that answers probes while idle, then stop.
func TestPhaseAndBeats(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "later.db")
	db, err := walship.NewDB(path, walship.Options{Logger: quietLogger()}, walship.NewReplica("dir", file.New(filepath.Join(dir, "replica"))))
	if err != nil {
		t.Fatal(err)
	}
	if got := db.Phase(); got != walship.PhaseStarting {
		t.Fatalf("before Run: phase %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.Run(ctx, 5*time.Second) }()
	waitPhase := func(want walship.Phase) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); db.Phase() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("phase %v, want %v", db.Phase(), want)
			}
		}
	}
	waitPhase(walship.PhaseWaiting)
	createDB(t, path)
	waitPhase(walship.PhaseReplicating)

	// Idle, the loop goes round only when probed.
	for range 3 {
		before := db.Beats()
		db.Probe()
		for deadline := time.Now().Add(5 * time.Second); db.Beats() == before; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the monitor loop did not answer a probe")
			}
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := db.Phase(); got != walship.PhaseStopped {
		t.Fatalf("after Run: phase %v", got)
	}
}
