package walship_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
	"github.com/walship/walship/internal/lease"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// TestLeaseHeldRefused: a database configured with a lease acquires it at
// Open and renews it; a second node replicating to the same replica is
// refused, names the holder, and writes nothing.
func TestLeaseHeldRefused(t *testing.T) {
	a := newHarness(t)
	a.open(walship.Options{LeaseTTL: 3 * time.Second})
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	rec, _, err := lease.Read(a.ctx, a.replica)
	if err != nil || rec.Path != a.path {
		t.Fatalf("the lease after Open: %+v, %v; want held by %s", rec, err, a.path)
	}
	// Renewed in the background, with the replica's TXID.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, _, err := lease.Read(a.ctx, a.replica)
		if err == nil && r.Seq > rec.Seq+1 && r.TXID == uint64(a.db.Pos().TXID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease was not renewed: %+v, %v", r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	b := newHarness(t)
	b.replica = a.replica
	before := replicaListing(t, a.replica)
	err = b.tryOpen(walship.Options{LeaseTTL: 3 * time.Second})
	if !errors.Is(err, lease.ErrHeld) || !strings.Contains(err.Error(), a.path) || !strings.Contains(err.Error(), "-standby") {
		t.Fatalf("a second node's Open: %v; want lease.ErrHeld naming %s and standby mode", err, a.path)
	}
	if after := replicaListing(t, a.replica); after != before {
		t.Fatalf("the refused node wrote to the replica:\nbefore %s\nafter %s", before, after)
	}
	// The holder still replicates.
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	a.verifyAll()
}

// TestLeaseLostStopsWriting: a database whose lease another node took
// (as a standby does once it expired) stops writing to the replica at
// once, says who holds it, and Halted reports it, which stops an
// application run with -exec.
func TestLeaseLostStopsWriting(t *testing.T) {
	a := newHarness(t)
	ttl := 3 * time.Second
	a.open(walship.Options{LeaseTTL: ttl})
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()

	// Another node writes the lease over, conditionally on a version it
	// read, as a standby's takeover after expiry does (here without
	// waiting: a renewal between the read and the write only makes it
	// try again).
	standby := lease.NewHolder(a.replica, lease.Record{Node: "standby", Host: "other-host", Path: "/elsewhere/app.db"}, ttl, quietLogger())
	o := lease.NewObserver(a.replica, ttl)
	for {
		seen, err := o.Observe(a.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := standby.TakeOver(a.ctx, lease.Seen{Record: seen.Record, Version: seen.Version, Expired: true}, 0); err == nil {
			break
		}
	}

	deadline := time.Now().Add(20 * time.Second)
	for a.db.Halted() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the database went on replicating after its lease was taken")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.db.Halted(); !errors.Is(err, lease.ErrLost) || !strings.Contains(err.Error(), "other-host") {
		t.Fatalf("Halted = %v; want lease.ErrLost naming the new holder", err)
	}
	before := replicaListing(t, a.replica)
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	if _, err := a.db.Sync(a.ctx); err != nil {
		t.Fatal(err)
	}
	walship.Upload(a.ctx, a.db)
	if after := replicaListing(t, a.replica); after != before {
		t.Fatalf("the database wrote to the replica after losing its lease:\nbefore %s\nafter %s", before, after)
	}
}

// TestLeaseNotConfiguredWritesNone: without lease-ttl nothing changes: no
// lease record is written.
func TestLeaseNotConfiguredWritesNone(t *testing.T) {
	a := newHarness(t)
	a.open(walship.Options{})
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	if _, _, err := lease.Read(context.Background(), a.replica); err == nil {
		t.Fatal("a lease record was written without lease-ttl")
	}
}

// cutRecords fails every record write while cut is set: a primary cut
// off from its store.
type cutRecords struct {
	storage.Client
	cut atomic.Bool
}

func (c *cutRecords) WriteRecord(ctx context.Context, name string, data []byte, version string) (string, error) {
	if c.cut.Load() {
		return "", errors.New("connection refused (test)")
	}
	return c.Client.WriteRecord(ctx, name, data, version)
}

// TestLeaseUnrenewableStops: a primary that cannot renew its lease stops
// writing to the replica by its own deadline, within the TTL of its last
// renewal, though no other node took the lease.
func TestLeaseUnrenewableStops(t *testing.T) {
	a := newHarness(t)
	cut := &cutRecords{Client: a.replica}
	ttl := 1500 * time.Millisecond
	db, err := walship.NewDB(a.path, walship.Options{LeaseTTL: ttl, Logger: quietLogger()}, walship.NewReplica("dir", cut))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Open(a.ctx); err != nil {
		t.Fatal(err)
	}
	a.db = db
	t.Cleanup(func() { db.Close(context.Background()) })
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	cut.cut.Store(true)
	cutAt := time.Now()
	// Its last successful renewal was sent before the cut, so its
	// deadline (that renewal + TTL - TTL/4), after which it writes
	// nothing, comes before cut + TTL, the earliest a standby that saw
	// the record at the cut could take it.
	if d := db.LeaseHolder().Deadline(); !d.Before(cutAt.Add(ttl)) {
		t.Fatalf("the holder's deadline is %s after the cut; want before the TTL %s", d.Sub(cutAt), ttl)
	}
	for a.db.Halted() == nil {
		if time.Since(cutAt) > 20*time.Second {
			t.Fatal("the database went on replicating without renewing its lease")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.db.Halted(); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("Halted = %v; want lease.ErrLost", err)
	}
}

// stalling holds every LTX write, once its body was read (as if sent),
// until the write's context ends or release is closed.
type stalling struct {
	cutRecords
	stall   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (c *stalling) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	if !c.stall.Load() {
		return c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, r, createdAt)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	close(c.entered)
	select {
	case <-c.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, bytes.NewReader(data), createdAt)
}

// TestLeaseBoundsWrites: a write to the replica that the store holds up
// while the primary's renewals fail is given up when the lease ends: it
// never lands after a standby took the lease over, however late the
// store would have let it through.
func TestLeaseBoundsWrites(t *testing.T) {
	a := newHarness(t)
	c := &stalling{entered: make(chan struct{}), release: make(chan struct{})}
	c.Client = a.replica
	ttl := 3 * time.Second
	db, err := walship.NewDB(a.path, walship.Options{LeaseTTL: ttl, Logger: quietLogger()}, walship.NewReplica("dir", c))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Open(a.ctx); err != nil {
		t.Fatal(err)
	}
	a.db = db
	t.Cleanup(func() { db.Close(context.Background()) })
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	before := replicaListing(t, a.replica)

	// The store stalls: renewals fail, and one upload is in flight.
	c.stall.Store(true)
	c.cut.Store(true)
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	if _, err := db.Sync(a.ctx); err != nil {
		t.Fatal(err)
	}
	uploaded := make(chan error, 1)
	go func() { uploaded <- walship.Upload(a.ctx, db) }()
	<-c.entered

	// A standby takes the lease over once it expired on its clock.
	o := lease.NewObserver(a.replica, ttl)
	standby := lease.NewHolder(a.replica, lease.Record{Node: "standby", Host: "other", Path: "/other/app.db"}, ttl, quietLogger())
	for {
		seen, err := o.Observe(a.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if seen.Expired {
			if err := standby.TakeOver(a.ctx, seen, 0); err != nil {
				t.Fatal(err)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The store would let the held write through now: it was given up.
	close(c.release)
	if err := <-uploaded; !errors.Is(err, lease.ErrLost) && !errors.Is(err, context.Canceled) {
		t.Fatalf("the held upload: %v; want it given up when the lease ended", err)
	}
	if after := replicaListing(t, a.replica); after != before {
		t.Fatalf("the old primary's write landed after the standby took the lease over:\nbefore %s\nafter %s", before, after)
	}
}

// TestLeaseConfig: lease-ttl on a database's entry sets the lease; too
// short a TTL, or more than one replica, is refused with the reason.
func TestLeaseConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		entry string
		want  string // "" when the config is accepted
	}{
		{"lease-ttl: 3s\n    replica:\n      url: file://" + dir + "/r", ""},
		{"lease-ttl: 500ms\n    replica:\n      url: file://" + dir + "/r", "shorter than 1s"},
		{"lease-ttl: 3s\n    replicas:\n      - url: file://" + dir + "/r1\n      - url: file://" + dir + "/r2", "exactly one replica"},
	} {
		cfg, err := config.Parse("test.yml", []byte("dbs:\n  - path: "+dir+"/a.db\n    "+tt.entry+"\n"), false)
		if err != nil {
			t.Fatalf("%s: %v", tt.entry, err)
		}
		s, err := walship.FromConfig(context.Background(), cfg, "test.yml", quietLogger())
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.entry, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v; want an error containing %q", tt.entry, err, tt.want)
		}
		if err == nil {
			s.Close()
		}
	}
}

// TestLeaseRestartKeepsRole: a primary restarted (a new process, the same
// database) takes its own lease again once it expired, and goes on.
func TestLeaseRestartKeepsRole(t *testing.T) {
	a := newHarness(t)
	ttl := 1200 * time.Millisecond
	a.open(walship.Options{LeaseTTL: ttl})
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	if err := a.db.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.open(walship.Options{LeaseTTL: ttl})
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	a.sync()
	if err := a.db.Halted(); err != nil {
		t.Fatal(err)
	}
	a.verifyAll()
}

// TestLeaseOnceRefused: a one-shot run (replicate -once) of a database
// with a lease is refused before anything is written: it could not stop
// the application once a standby took the role over.
func TestLeaseOnceRefused(t *testing.T) {
	h := newHarness(t)
	db, err := walship.NewDB(h.path, walship.Options{LeaseTTL: time.Minute, Logger: quietLogger()}, walship.NewReplica("dir", h.replica))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RunOnce(h.ctx); err == nil || !strings.Contains(err.Error(), "lease-ttl") {
		t.Fatalf("a one-shot run with a lease: %v; want a refusal naming lease-ttl", err)
	}
	if listing := replicaListing(t, h.replica); listing != "" {
		t.Fatalf("the refused run wrote to the replica: %s", listing)
	}
	if _, _, err := lease.Read(h.ctx, h.replica); err == nil {
		t.Fatal("the refused run wrote a lease")
	}
}

// unreachableRecords fails every record read with a network error while
// down is set: a store out of reach at start-up.
type unreachableRecords struct {
	storage.Client
	down atomic.Bool
}

func (c *unreachableRecords) ReadRecord(ctx context.Context, name string) ([]byte, string, error) {
	if c.down.Load() {
		return nil, "", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused (test)")}
	}
	return c.Client.ReadRecord(ctx, name)
}

// TestLeaseNotReadyUntilHeld: a database with a lease whose file does not
// exist yet is not ready for its application (-exec) while taking the
// lease is retried: only once this node holds it may the application
// start and create the database.
func TestLeaseNotReadyUntilHeld(t *testing.T) {
	dir := t.TempDir()
	c := &unreachableRecords{Client: file.New(filepath.Join(dir, "replica"))}
	c.down.Store(true)
	db, err := walship.NewDB(filepath.Join(dir, "app.db"), walship.Options{LeaseTTL: 3 * time.Second, Logger: quietLogger()}, walship.NewReplica("dir", c))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- db.Run(ctx, time.Second) }()
	defer func() { cancel(); <-ran }()
	waitFor(t, "taking the lease retried", func() bool { return db.Phase() == walship.PhaseWaiting })
	if db.Ready() {
		t.Fatal("ready for the application while the lease is not held")
	}
	c.down.Store(false)
	waitFor(t, "ready once the lease is held", db.Ready)
	if h := db.LeaseHolder(); h == nil || h.Valid() != nil {
		t.Fatal("ready without holding the lease")
	}
}
