package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/lease"
	"github.com/walship/walship/storage/file"
)

// -exec refuses what it cannot run before anything is replicated: with
// -once, and a command line that does not split.
func TestExecUsage(t *testing.T) {
	dir := t.TempDir()
	db, replica := filepath.Join(dir, "app.db"), "file://"+filepath.Join(dir, "replica")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"replicate", "-once", "-exec", "myapp", db, replica}, 2, "-once cannot be combined with -exec"},
		{[]string{"replicate", "-exec", `myapp "unclosed`, db, replica}, 1, "quote it as a shell would"},
		{[]string{"replicate", "-exec", "   ", db, replica}, 1, "names no command"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, want %d with %q:\n%s", c.args, code, c.code, c.want, stderr)
		}
	}
}

// An application that cannot be started ends replicate with an error
// that names it, once the databases were stopped.
func TestExecMissingProgram(t *testing.T) {
	dir := t.TempDir()
	db, replica := filepath.Join(dir, "app.db"), "file://"+filepath.Join(dir, "replica")
	code, _, stderr := runCLI(t, "replicate", "-exec", "walship-test-no-such-program serve", db, replica)
	if code != 1 || !strings.Contains(stderr, `start the application "walship-test-no-such-program"`) {
		t.Fatalf("exit %d, want 1 naming the program:\n%s", code, stderr)
	}
}

// TestStopGraceUnderLease: an application stopped because its node lost
// the lease gets the lease's stop grace (half its margin), not the usual
// ten seconds: it is gone before a standby may take the role over.
func TestStopGraceUnderLease(t *testing.T) {
	dir := t.TempDir()
	db, err := walship.NewDB(filepath.Join(dir, "app.db"), walship.Options{LeaseTTL: 8 * time.Second}, walship.NewReplica("dir", file.New(filepath.Join(dir, "replica"))))
	if err != nil {
		t.Fatal(err)
	}
	store := &walship.Store{DBs: []*walship.DB{db}}
	if got, want := stopGrace(store, fmt.Errorf("replica dir: %w", lease.ErrLost)), time.Second; got != want {
		t.Errorf("lease lost: grace %s; want %s", got, want)
	}
	if got := stopGrace(store, errors.New("disk full")); got != childStopGrace {
		t.Errorf("another failure: grace %s; want %s", got, childStopGrace)
	}
}
