package owner_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/internal/owner"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

func me(db, run, path string) owner.Record {
	return owner.Record{Database: db, Run: run, Host: "h1", PID: 7, Path: path, Started: time.Unix(1000, 0)}
}

func TestClaim(t *testing.T) {
	ctx := context.Background()
	c := file.New(t.TempDir())
	a := me("aaaa", "run1", "/data/a.db")
	now := time.Unix(2000, 0).UTC()

	claimed, err := owner.Claim(ctx, c, owner.Request{Me: a}, now)
	if err != nil || claimed.TookOver || claimed.Previous != nil {
		t.Fatalf("first claim: %+v, %v", claimed, err)
	}
	if err := owner.Check(ctx, c, a); err != nil {
		t.Fatalf("the owner's check: %v", err)
	}

	// The same database restarted: a new run, the same owner since.
	a2 := a
	a2.Run = "run2"
	if _, err := owner.Claim(ctx, c, owner.Request{Me: a2}, now.Add(time.Hour)); err != nil {
		t.Fatalf("the owner restarted: %v", err)
	}
	rec, _, err := owner.Read(ctx, c)
	if err != nil || rec.Run != "run2" || !rec.Since.Equal(now) {
		t.Fatalf("after the restart the record is %+v, %v; want run2, since %s", rec, err, now)
	}
	// The process that ran before it finds out at its next check.
	if err := owner.Check(ctx, c, a); !errors.Is(err, owner.ErrNotOwner) || !strings.Contains(err.Error(), "another process of this database") {
		t.Fatalf("the replaced process's check: %v", err)
	}

	// The same file on the same host, its staging directory (and so its
	// identity) lost: still the owner.
	lost := me("cccc", "run3", "/data/a.db")
	if _, err := owner.Claim(ctx, c, owner.Request{Me: lost}, now); !errors.Is(err, owner.ErrUnproven) || !errors.Is(err, owner.ErrNotOwner) {
		t.Fatalf("the same file on the same host with another identity, unproven: %v; want ErrUnproven", err)
	}
	if _, err := owner.Claim(ctx, c, owner.Request{Me: lost, Adopt: true}, now); err != nil {
		t.Fatalf("the owner without its staging directory, proven: %v", err)
	}

	// Another database is refused and changes nothing.
	b := me("bbbb", "run9", "/data/b.db")
	_, before, _ := c.ReadRecord(ctx, owner.RecordName)
	_, err = owner.Claim(ctx, c, owner.Request{Me: b}, now)
	if !errors.Is(err, owner.ErrNotOwner) {
		t.Fatalf("another database's claim: %v; want ErrNotOwner", err)
	}
	for _, want := range []string{"/data/a.db", "host h1", "-takeover", "a replica path of its own"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, err)
		}
	}
	if _, after, _ := c.ReadRecord(ctx, owner.RecordName); after != before {
		t.Fatal("a refused claim changed the owner record")
	}

	// Unless it takes over.
	claimed, err = owner.Claim(ctx, c, owner.Request{Me: b, Takeover: true}, now)
	if err != nil || !claimed.TookOver || claimed.Previous == nil || claimed.Previous.Path != "/data/a.db" {
		t.Fatalf("takeover: %+v, %v", claimed, err)
	}
	if err := owner.Check(ctx, c, lost); !errors.Is(err, owner.ErrNotOwner) || !strings.Contains(err.Error(), "taken over") {
		t.Fatalf("the old owner's check after the takeover: %v", err)
	}
	if err := owner.Check(ctx, c, b); err != nil {
		t.Fatalf("the new owner's check: %v", err)
	}
	// A takeover of one's own replica is no takeover.
	if claimed, err := owner.Claim(ctx, c, owner.Request{Me: b, Takeover: true}, now); err != nil || claimed.TookOver {
		t.Fatalf("taking over one's own replica: %+v, %v", claimed, err)
	}
}

// TestClaimRace: databases claiming an empty replica at the same instant;
// exactly one becomes the owner, and every other is told whose it is.
func TestClaimRace(t *testing.T) {
	ctx := context.Background()
	c := file.New(t.TempDir())
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = owner.Claim(ctx, c, owner.Request{Me: me(strings.Repeat(string(rune('a'+i)), 4), "r", "/db"+string(rune('a'+i)))}, time.Now())
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, owner.ErrNotOwner):
			t.Errorf("a losing claim failed otherwise: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing claims won", won, n)
	}
}

func TestCheckDeletedRecord(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := file.New(dir)
	a := me("aaaa", "r", "/a.db")
	if _, err := owner.Claim(ctx, c, owner.Request{Me: a}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := removeRecord(dir); err != nil {
		t.Fatal(err)
	}
	if err := owner.Check(ctx, c, a); !errors.Is(err, owner.ErrNoRecord) {
		t.Fatalf("check of a deleted record: %v; want ErrNoRecord", err)
	}
}

func TestForeignRecordRefused(t *testing.T) {
	ctx := context.Background()
	c := file.New(t.TempDir())
	if _, err := c.WriteRecord(ctx, owner.RecordName, []byte("not json"), ""); err != nil {
		t.Fatal(err)
	}
	_, err := owner.Claim(ctx, c, owner.Request{Me: me("aaaa", "r", "/a.db")}, time.Now())
	if err == nil || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "not one walship wrote") {
		t.Fatalf("claim over a record walship did not write: %v", err)
	}
}

// TestTakeoverHistoryFrom: a takeover's history starts at the next multiple
// of EpochSize past the replica's newest TXID, and past an earlier
// takeover's start; the start stays in the record for the new owner's
// later claims.
func TestTakeoverHistoryFrom(t *testing.T) {
	ctx := context.Background()
	c := file.New(t.TempDir())
	a, b, d := me("aaaa", "r", "/a.db"), me("bbbb", "r", "/b.db"), me("dddd", "r", "/d.db")
	if _, err := owner.Claim(ctx, c, owner.Request{Me: a}, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := owner.Claim(ctx, c, owner.Request{Me: b, Takeover: true, Newest: 7}, time.Now())
	if err != nil || !got.TookOver || got.HistoryFrom != owner.EpochSize {
		t.Fatalf("takeover at TXID 7: %+v, %v; want history from %d", got, err, uint64(owner.EpochSize))
	}
	// The new owner restarted: the same start.
	b.Run = "r2"
	if got, err := owner.Claim(ctx, c, owner.Request{Me: b, Newest: 7}, time.Now()); err != nil || got.TookOver || got.HistoryFrom != owner.EpochSize {
		t.Fatalf("the new owner restarted: %+v, %v", got, err)
	}
	// A second takeover before the first one's history reached the
	// replica starts past it.
	if got, err := owner.Claim(ctx, c, owner.Request{Me: d, Takeover: true, Newest: 7}, time.Now()); err != nil || got.HistoryFrom != 2*owner.EpochSize {
		t.Fatalf("a second takeover: %+v, %v; want history from %d", got, err, uint64(2*owner.EpochSize))
	}
}

// TestMayStillRun: which replaced records name a run of this database
// that may still write: another host; this host, another file, a process
// that exists. Not: the same file on this host (the staging lock proves
// that run gone), a process that no longer exists, another database (a
// takeover starts its own TXIDs), this very run, no record.
func TestMayStillRun(t *testing.T) {
	mine := me("aaaa", "run2", "/new/a.db")
	mine.PID = os.Getpid()
	prev := func(host, path string, pid int, db, run string) *owner.Record {
		r := me(db, run, path)
		r.Host, r.PID = host, pid
		return &r
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		c    owner.Claimed
		want bool
	}{
		{"another host", owner.Claimed{Previous: prev("h2", "/new/a.db", 1, "aaaa", "run1")}, true},
		{"this host, another file, alive", owner.Claimed{Previous: prev("h1", "/old/a.db", os.Getpid(), "aaaa", "run1")}, true},
		{"this host, another file, gone", owner.Claimed{Previous: prev("h1", "/old/a.db", gone.Process.Pid, "aaaa", "run1")}, false},
		{"this host, same file", owner.Claimed{Previous: prev("h1", "/new/a.db", os.Getpid(), "aaaa", "run1")}, false},
		{"another database, taken over", owner.Claimed{TookOver: true, Previous: prev("h2", "/x.db", 1, "bbbb", "run1")}, false},
		{"this run", owner.Claimed{Previous: prev("h2", "/new/a.db", 1, "aaaa", "run2")}, false},
		{"no record", owner.Claimed{}, false},
	} {
		if got := c.c.MayStillRun(mine); got != c.want {
			t.Errorf("%s: MayStillRun = %t, want %t", c.name, got, c.want)
		}
	}
}
