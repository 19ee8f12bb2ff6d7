package walship

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/walship/walship/internal/event"
	"github.com/walship/walship/internal/levels"
	"github.com/walship/walship/storage"
)

// fallbackPoll is how often the monitor looks at the WAL and the database
// file when no file event arrived, in case the file system does not report
// changes.
const fallbackPoll = 10 * time.Second

// untilPoll returns how long after now the database in slot polls next:
// at the instants of its slot (levels.Slot) within each fallbackPoll, so
// that a hundred idle databases wake their process ten times a period, not
// a hundred, and a thousand written in one period are looked at again a
// tenth at a time (all at one instant, their syncs ran together and grew
// the heap by a third). Never now: the poll that just fired is at it.
func untilPoll(now time.Time, slot int) time.Duration {
	if d := levels.AlignPad(now, fallbackPoll, slot); d > 0 {
		return d
	}
	return fallbackPoll
}

// fileStamp is what the fallback poll compares of a file: which file is at
// the path, its size and modification time, and its first bytes; nil fi
// when there is none.
type fileStamp struct {
	fi   os.FileInfo
	head [walHeaderBytes]byte
}

// walHeaderBytes is how much of the WAL a stamp holds: its header, whose
// checkpoint sequence and salts change at every restart of the log. A
// commit that restarts the log overwrites it from the start and may leave
// its size as it was; on a file system with coarse times (one or two
// seconds: NFS, FAT, some FUSE mounts, where notifications are missing
// too) its time may not move either.
const walHeaderBytes = 32

// stampOf returns the stamp of the file at path, without its first bytes.
// It opens nothing: closing a descriptor of the database file would drop
// the POSIX locks the process's SQLite connections hold on it.
func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi: fi}
}

// walStampOf returns the stamp of the WAL at path, with its header. SQLite
// takes no locks on the WAL file itself (they are in the -shm), so opening
// and closing it here is safe.
func walStampOf(path string) fileStamp {
	f, err := os.Open(path)
	if err != nil {
		return fileStamp{}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileStamp{}
	}
	st := fileStamp{fi: fi}
	// A short or failed read leaves zeros: the size says the rest.
	f.ReadAt(st.head[:], 0)
	return st
}

// same reports whether a and b are the same file, unchanged.
func (a fileStamp) same(b fileStamp) bool {
	if a.fi == nil || b.fi == nil {
		return a.fi == nil && b.fi == nil
	}
	return os.SameFile(a.fi, b.fi) && a.fi.Size() == b.fi.Size() && a.fi.ModTime().Equal(b.fi.ModTime()) && a.head == b.head
}

// observeDelay is how soon after a WAL write the engine reads the new frames
// to see whether a checkpoint is due, between syncs. Checkpointing by WAL size
// rather than by sync keeps the log short (and in the page cache) under heavy
// writes, whatever the sync interval.
const observeDelay = 5 * time.Millisecond

// Run replicates the database until ctx ends: it waits for the file to exist,
// opens it, ships staged files to every replica, and syncs whenever the WAL
// changes, at most once per sync interval. When ctx ends it captures what was
// committed, gives the replicas up to flushTimeout to upload it, and closes.
func (db *DB) Run(ctx context.Context, flushTimeout time.Duration) error {
	defer db.setPhase(PhaseStopped)
	db.inRun.Store(true)
	defer db.endLease()
	// With a lease, the role first: an application that creates the
	// database (-exec starts it while walship waits for the file) must
	// not write on a node that is not the primary.
	db.forgetLostLease()
	if err := db.startRetrying(ctx, func(ctx context.Context) error { return db.acquireLease(ctx, db.shipWriter()) }); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	db.keepLease()
	if err := db.WaitExists(ctx, time.Second); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	if err := db.startRetrying(ctx, db.openLimited); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	rctx, stopReplicas := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, r := range db.replicas {
		wg.Go(func() { r.up.Run(rctx) })
		r.up.Wake()
	}
	db.setPhase(PhaseReplicating)
	mctx, stopMaintenance := context.WithCancel(ctx)
	maintained := make(chan struct{})
	go func() { defer close(maintained); db.maintain(mctx) }()
	db.monitor(ctx)
	stopMaintenance()
	<-maintained

	closeErr := db.Close(context.WithoutCancel(ctx))
	db.wakeReplicas()
	db.waitReplicas(flushTimeout)
	stopReplicas()
	wg.Wait()
	if closeErr == nil {
		db.releaseLease(context.WithoutCancel(ctx))
	}
	return closeErr
}

// startRetrying runs a step of the start (taking the lease, opening the
// database), and while that fails for a reason that can pass (a full or
// read-only disk, permissions, the network) retries with backoff, saying
// what is wrong, as a running replicator does with a failing sync. Any
// other failure (not a SQLite database, a replica another database owns
// or another node's lease, another replicator of this one) is returned.
func (db *DB) startRetrying(ctx context.Context, step func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		db.setPhase(PhaseStarting)
		err := step(ctx)
		if ctx.Err() == nil {
			db.failing.set(err) // a failure that is not transient stays: replication stopped
		}
		if err == nil {
			if attempt > 0 {
				db.log.Info("started replicating after the problem cleared", "attempts", attempt+1)
			}
			return nil
		}
		if ctx.Err() != nil || !transient(err) {
			return err
		}
		d := storage.LoopRetry.Delay(attempt)
		db.setPhase(PhaseWaiting)
		db.log.Error("cannot start replicating the database; retrying", "error", err, "retry_in", d.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

// transient reports whether err can pass without anyone changing walship's
// configuration: the disk filling up or going read-only, permissions, an
// I/O error, SQLite finding the database busy, the network. A certificate
// that does not verify, or a host name that does not resolve, is a
// mistake of the configuration, not transient.
func transient(err error) bool {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EACCES, syscall.EPERM, syscall.EIO} {
		if errors.Is(err, errno) {
			return true
		}
	}
	// SQLite's own codes (modernc.org/sqlite's errors carry them): BUSY,
	// LOCKED, READONLY, IOERR, FULL, CANTOPEN.
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		switch coded.Code() & 0xff {
		case 5, 6, 8, 10, 13, 14:
			return true
		}
	}
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var badCert x509.CertificateInvalidError
	var tlsErr *tls.CertificateVerificationError
	if (errors.As(err, &dnsErr) && dnsErr.IsNotFound) || errors.As(err, &unknownCA) || errors.As(err, &badHost) || errors.As(err, &badCert) || errors.As(err, &tlsErr) {
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded)
}

// openLimited opens the database once one of Options.Opening's slots is
// free: a thousand databases starting at once would otherwise stage a
// thousand snapshots at once, with the memory that takes.
func (db *DB) openLimited(ctx context.Context) error {
	if db.opts.Opening != nil {
		select {
		case db.opts.Opening <- struct{}{}:
			defer func() { <-db.opts.Opening }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return db.Open(ctx)
}

// waitReplicas waits until every replica holds the newest staged file or
// timeout passes.
func (db *DB) waitReplicas(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		pos, behind := db.Pos(), 0
		for _, r := range db.replicas {
			if r.Pos().TXID < pos.TXID && r.up.Stopped() == nil {
				behind++
			}
		}
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			db.log.Warn("stopping with files not yet uploaded; they stay staged and are shipped at the next start", "replicas_behind", behind)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// maintain runs compaction, snapshots and retention on their schedules until
// ctx ends. Each step writes or deletes something only if something changed.
func (db *DB) maintain(ctx context.Context) {
	var tasks []levels.Task
	for i, interval := range db.opts.Levels {
		level := i + 1
		tasks = append(tasks, levels.Task{Every: interval, Last: db.lastAt(level), Run: func(ctx context.Context) error {
			_, err := db.Compact(ctx, level)
			return err
		}})
	}
	tasks = append(tasks, levels.Task{Every: db.opts.SnapshotInterval, Last: db.lastAt(storage.SnapshotLevel), Run: db.SnapshotIfChanged})
	if !db.opts.RetentionDisabled {
		tasks = append(tasks, levels.Task{Every: db.opts.L0RetentionCheckInterval, Run: db.EnforceRetention})
	}
	for _, r := range db.replicas {
		// The listing LoadPos read at start was the first audit.
		tasks = append(tasks, levels.Task{Every: r.AuditInterval, Run: func(ctx context.Context) error {
			_, err := db.Audit(ctx, r)
			return err
		}})
		tasks = append(tasks, levels.Task{Every: r.ValidationInterval, Last: func() time.Time { return db.lastValidated(r) }, Run: func(ctx context.Context) error {
			_, err := db.Validate(ctx, r)
			return err
		}})
	}
	levels.Maintain(ctx, db.log, tasks, levels.Slot(db.path))
}

// lastAt returns when the replica most behind at a level (a compaction
// level or the snapshot level) received its newest file there, the zero
// time if one has none: the schedule of that level goes on from there
// across restarts, as RunOnce's levelDue does.
func (db *DB) lastAt(level int) func() time.Time {
	return func() time.Time {
		var oldest time.Time
		for _, r := range db.replicas {
			at, ok := r.up.Newest(level)
			if !ok {
				return time.Time{}
			}
			if oldest.IsZero() || at.Before(oldest) {
				oldest = at
			}
		}
		return oldest
	}
}

// monitor syncs on WAL changes until ctx ends.
func (db *DB) monitor(ctx context.Context) {
	walPath := db.path + "-wal"
	events, closeWatch := db.watch(walPath)
	defer closeWatch()
	// What the poll saw, taken before the first Step (dirty is set):
	// whatever changed before is captured by it, and after, the poll
	// sees.
	walSeen, dbSeen := walStampOf(walPath), stampOf(db.path)
	slot := levels.Slot(db.path)
	poll := time.NewTimer(untilPoll(time.Now(), slot))
	defer poll.Stop()
	timer := time.NewTimer(0)
	<-timer.C
	observeTimer := time.NewTimer(0)
	<-observeTimer.C
	observing := false
	armed, dirty := false, true
	var lastSync time.Time
	attempt := 0  // failed syncs in a row, for the backoff
	reported := 0 // of those, the ones reported as failures
	for {
		if dirty && !armed {
			d := time.Until(lastSync.Add(db.opts.SyncInterval))
			timer.Reset(max(d, 0))
			armed = true
		}
		db.beats.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-db.probeC:
		case <-events:
			dirty = true
			if !observing && db.opts.SyncInterval > observeDelay {
				observeTimer.Reset(observeDelay)
				observing = true
			}
		case <-observeTimer.C:
			observing = false
			if err := db.cap.Observe(ctx); err != nil && ctx.Err() == nil && !db.goneFromDir() {
				db.log.Warn("checkpoint failed; will retry", "error", err)
			}
		case <-db.kickC:
			dirty = true
		case <-poll.C:
			poll.Reset(untilPoll(time.Now(), slot))
			// A changed WAL, or a database file replaced or written
			// (a checkpoint or restore by another process), is a
			// sync's to look at; unchanged, a Step would find nothing
			// unless a checkpoint on the interval is due or a whole
			// copy waits (Capturer.Unfinished).
			walNow, dbNow := walStampOf(walPath), stampOf(db.path)
			if !walNow.same(walSeen) || !dbNow.same(dbSeen) {
				walSeen, dbSeen = walNow, dbNow
				dirty = true
			} else if db.cap.Unfinished() {
				dirty = true
			}
		case <-timer.C:
			armed, dirty = false, false
			lastSync = time.Now()
			staged, err := db.cap.Step(ctx)
			if err == nil {
				db.timed(event.Sync, lastSync)
			}
			db.afterStaging(ctx, staged)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				d := storage.LoopRetry.Delay(attempt)
				attempt++
				if db.goneFromDir() {
					// Deleted from a watched directory: a removal,
					// which its scan (asked for now) stops with one
					// line, not a failure to alarm anyone with.
					db.log.Debug("the database file was deleted; the directory's scan stops its replication", "error", err)
					db.scanDir()
				} else {
					reported++
					db.failing.set(err)
					db.log.Error("sync failed; retrying", "error", err, "retry_in", d.String())
				}
				timer.Reset(d)
				armed, dirty = true, true
				continue
			}
			if reported > 0 {
				db.failing.set(nil)
				db.log.Info("sync recovered", "failed_attempts", attempt, "txid", db.cap.Pos().TXID.String())
			}
			attempt, reported = 0, 0
		}
	}
}

// watch reports changes to the database and its WAL as they happen, through
// the process's shared Watcher (Options.Watcher) or one of its own. If the
// file system cannot be watched, the fallback poll alone drives syncs.
func (db *DB) watch(walPath string) (<-chan struct{}, func()) {
	if db.unwatched {
		return make(chan struct{}), func() {}
	}
	w := db.opts.Watcher
	if w == nil {
		w = NewWatcher(db.log)
	}
	pause := min(observeDelay, max(db.opts.SyncInterval/2, time.Millisecond))
	events, stop, err := w.Subscribe([]string{db.path, walPath}, pause)
	if err != nil {
		db.log.Warn("cannot watch the database directory; polling instead", "error", err, "interval", fallbackPoll.String())
		return make(chan struct{}), func() {}
	}
	return events, stop
}
