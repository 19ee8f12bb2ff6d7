package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/child"
	"github.com/walship/walship/internal/lease"
)

// childStopGrace is how long the application has to exit after walship
// sends it SIGTERM because replication failed, before it is killed.
const childStopGrace = 10 * time.Second

// stopGrace is how long the application has to exit after SIGTERM when
// replication stopped with err: childStopGrace, or, when a database lost
// its lease on the primary role, leaseStopGrace.
func stopGrace(store *walship.Store, err error) time.Duration {
	if !errors.Is(err, lease.ErrLost) {
		return childStopGrace
	}
	return leaseStopGrace(store)
}

// leaseStopGrace is the shortest stop grace of the store's leases
// (lease.StopGrace), at most childStopGrace: what a node that lost the
// primary role has to stop what writes, so that it is done before a
// standby may take the role over and start its own.
func leaseStopGrace(store *walship.Store) time.Duration {
	grace := childStopGrace
	for _, db := range store.Databases() {
		if ttl := db.LeaseTTL(); ttl > 0 {
			grace = min(grace, lease.StopGrace(ttl))
		}
	}
	return grace
}

// readyPoll is how often replicate -exec looks at the databases' state:
// whether every one replicates (then the application starts), or one
// stopped (then the application is stopped).
const readyPoll = 50 * time.Millisecond

// childExitError is the application's non-zero exit status, which
// replicate -exec exits with.
type childExitError struct {
	code int
	how  string
}

func (e childExitError) Error() string { return "the application exited: " + e.how }
func (e childExitError) ExitCode() int { return e.code }

// replicateWithChild replicates the databases of store while the
// application args runs (replicate -exec): the application starts once
// every directory was scanned and every database is ready
// (walship.Store.Ready), receives the SIGINT and SIGTERM walship is sent,
// and when it exits walship scans the directories once more, captures its
// last commits, gives the replicas up to flush to receive them, and
// returns its exit status. If replication of a database listed in the
// config stops while the application runs, the application is stopped and
// the error says why; a database of a directory that stops is reported
// (walship.Store.Halted), and the application goes on.
func replicateWithChild(ctx context.Context, log *slog.Logger, store *walship.Store, watch watchSettings, flush time.Duration, args []string) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := startWatching(rctx, log, store, watch); err != nil {
		return err
	}
	go superviseSystemd(rctx, log, store.Databases)
	ran := make(chan error, 1)
	go func() { ran <- store.Run(rctx, flush) }()
	// stop ends replication: each database captures what was committed
	// and gives its replicas up to flush to receive it.
	stop := func() error {
		cancel()
		if err := <-ran; err != nil {
			return fmt.Errorf("replication failed: %w", err)
		}
		if err := store.Unflushed(); err != nil {
			return fmt.Errorf("the last commits did not reach every replica within the shutdown-sync-timeout (%s): %w; they stay staged beside the database and ship at the next start of walship: keep that directory, or raise shutdown-sync-timeout", flush, err)
		}
		return nil
	}

	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	waitingSince, told := time.Now(), false
	for !store.Ready() {
		select {
		case sig := <-sigs:
			log.Info("signal received before the application started; stopping", "signal", sig.String())
			return stop()
		case err := <-ran:
			return fmt.Errorf("replication stopped before the application started: %w", cmp.Or(err, errors.New("every database stopped")))
		case <-tick.C:
			if err := store.Halted(); err != nil {
				stop()
				return fmt.Errorf("%w; the application was not started", err)
			}
			if !told && time.Since(waitingSince) > 10*time.Second {
				log.Warn("the application starts once every database replicates; still waiting", "databases", store.NotReady())
				told = true
			}
		}
	}

	p, err := child.Start(args)
	if err != nil {
		return errors.Join(err, stop())
	}
	log.Info("started the application", "pid", p.PID(), "command", strings.Join(args, " "))
	handingOver := false
	for running := true; running; {
		select {
		case sig := <-sigs:
			log.Info("forwarding the signal to the application", "signal", sig.String(), "pid", p.PID())
			if err := p.Signal(sig); err != nil {
				log.Warn("cannot signal the application", "error", err)
			}
		case <-p.Done():
			running = false
		case err := <-ran:
			// Every database stopped (ran is read, so stop must not be).
			err = cmp.Or(err, errors.New("every database stopped"))
			log.Error("replication stopped; stopping the application", "error", err)
			p.Stop(stopGrace(store, err))
			return fmt.Errorf("replication failed while the application ran: %w; the application was stopped (%s)", err, p.Describe())
		case <-tick.C:
			if !handingOver && store.HandoverRequested() {
				// A switchover: the application stops first, then its
				// last commits reach the replica and the lease is
				// released to the standby.
				handingOver = true
				log.Warn("handing the primary role over: stopping the application", "pid", p.PID())
				if err := p.Signal(syscall.SIGTERM); err != nil {
					log.Warn("cannot signal the application", "error", err)
				}
			}
			if err := store.Halted(); err != nil {
				log.Error("replication stopped; stopping the application", "error", err)
				p.Stop(stopGrace(store, err))
				return errors.Join(fmt.Errorf("%w; the application was stopped (%s)", err, p.Describe()), stop())
			}
		}
	}
	log.Info("the application exited; capturing its last commits and flushing the replicas", "status", p.Describe(), "timeout", flush.String())
	// A database the application created is opened before replication
	// stops, so that what it committed is captured: in a watched
	// directory, the scan finds it first.
	deadline := time.Now().Add(flush)
	var unopened error
	sctx, scancel := context.WithDeadline(ctx, deadline)
	if err := store.ScanDirs(sctx); err != nil {
		unopened = fmt.Errorf("%w: a database the application created there just before it exited may not be in the replicas; run walship replicate again to ship it", err)
	}
	scancel()
	for len(store.Unopened()) > 0 && time.Now().Before(deadline) && store.Halted() == nil {
		<-tick.C
	}
	if dbs := store.Unopened(); len(dbs) > 0 {
		unopened = errors.Join(unopened, fmt.Errorf("walship could not open %s within the shutdown-sync-timeout (%s): what the application committed there is not in the replicas; run walship replicate again to ship it", strings.Join(dbs, ", "), flush))
	}
	err = errors.Join(unopened, stop())
	if code := p.Status(); code != 0 {
		if err != nil {
			log.Error("replication failed", "error", err)
		}
		return childExitError{code: code, how: p.Describe()}
	}
	if err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
