package walship

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// fallbackPoll is how often the monitor looks at the WAL when no file event
// arrived, in case the file system does not report changes.
const fallbackPoll = 10 * time.Second

func (db *DB) kick() {
	select {
	case db.kickC <- struct{}{}:
	default:
	}
}

// Checkpoint checkpoints the WAL and restarts it, taking the write barrier
// if the application is writing (see checkpointLocked).
func (db *DB) Checkpoint(ctx context.Context, truncate bool) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.checkpointLocked(ctx, truncate, true)
}

// checkpointLocked copies the WAL into the database without losing a frame,
// so that the next writer can restart the log from its beginning.
//
// First, without any lock: advance the pin to the log's end, backfill up to
// it, and if no frame arrived meanwhile, pin again at rest, reading the
// database file only. The application never waits for this, and when it
// pauses for even a millisecond the log restarts.
//
// An application that never pauses keeps the log growing; past
// MaxCheckpointPageN pages (or with seal) the engine then seals: it takes the
// write barrier, captures the last frames, backfills them, and pins again
// before the barrier is released. With truncate it then also shrinks the WAL
// file to zero if nothing new arrived.
func (db *DB) checkpointLocked(ctx context.Context, truncate, seal bool) error {
	begun := time.Now()
	if err := db.scanLocked(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := db.advancePin(ctx); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	sp, err := db.spare(ctx)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	var busy, logN, ckptN int
	if err := sp.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logN, &ckptN); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	sealed := false
	if logN >= 0 && ckptN == logN {
		// Everything is backfilled: a read transaction begun now reads
		// the database file only and does not hold the log. If a frame
		// arrived in between, it holds the log like any pin.
		if err := db.advancePin(ctx); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	} else if seal || db.walPages >= db.opts.MaxCheckpointPageN || truncate {
		if err := db.sealLocked(ctx, &busy, &logN, &ckptN); err != nil {
			return err
		}
		sealed = true
	} else {
		// The application wrote meanwhile. Each try backfills and
		// fsyncs, which a busy application feels: try again once the
		// log has doubled, and seal at MaxCheckpointPageN.
		db.ckptTried = db.walPages
	}
	if sealed || ckptN == logN {
		// Else the interval or the log's growth brings the next try,
		// even if the application writes nothing more.
		db.ckptPos = db.walPos
	}
	db.lastCheckpoint = time.Now()
	db.log.Debug("checkpoint", "frames", logN, "checkpointed", ckptN, "sealed", sealed, "wal_pages", db.walPages, "took", time.Since(begun).String())
	if !truncate || ckptN != logN {
		return nil
	}
	// Everything is backfilled and the pin reads the database file only, so
	// SQLite can truncate the log only if no frame arrived since: one that
	// did cannot be backfilled under the pin, and TRUNCATE then reports busy
	// and leaves the log alone.
	bg := context.WithoutCancel(ctx)
	c, err := db.spare(bg)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if _, err := c.ExecContext(bg, "PRAGMA busy_timeout=0"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	err = c.QueryRowContext(bg, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logN, &ckptN)
	if _, e := c.ExecContext(bg, fmt.Sprintf("PRAGMA busy_timeout=%d", db.opts.BusyTimeout.Milliseconds())); e != nil && err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("checkpoint: truncate wal: %w", err)
	}
	db.log.Debug("truncated wal", "busy", busy)
	return nil
}

// sealLocked backfills the whole log under the write barrier, taken on the
// spare connection: it reads the last frames, releases the pin, checkpoints
// on the pin's connection and pins again before any writer can restart the
// log. The statements ignore cancellation: the driver may report a cancelled
// context after BEGIN IMMEDIATE took the lock, and the lock must be released
// whatever happens.
func (db *DB) sealLocked(ctx context.Context, busy, logN, ckptN *int) error {
	bg := context.WithoutCancel(ctx)
	lock, err := db.spare(bg)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	rollback := func() {
		// Harmless if BEGIN failed: there is no transaction to end.
		lock.ExecContext(bg, "ROLLBACK")
	}
	if _, err := lock.ExecContext(bg, "BEGIN IMMEDIATE"); err != nil {
		rollback()
		return fmt.Errorf("checkpoint: wait for the write lock: %w", err)
	}
	if err := db.scanLocked(); err != nil {
		rollback()
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := db.unpin(); err != nil {
		rollback()
		db.setNeedFull("the wal pin was lost during a checkpoint")
		return fmt.Errorf("checkpoint: release pin: %w", err)
	}
	// The application's own autocheckpoint may hold the checkpoint lock for a
	// moment (it runs after its commit, outside the write lock); a passive
	// checkpoint does not wait for it, so retry briefly.
	ckpt := db.pinConns[db.pinIdx]
	var ckptErr error
	for range 50 {
		ckptErr = ckpt.QueryRowContext(bg, "PRAGMA wal_checkpoint(PASSIVE)").Scan(busy, logN, ckptN)
		if ckptErr != nil || *logN >= 0 {
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	pinErr := db.pin(bg)
	rollback()
	if pinErr != nil {
		// Without the pin the log may restart unseen: only a full copy is
		// safe after this. The next sync pins again.
		db.setNeedFull("the wal pin was lost during a checkpoint")
		return fmt.Errorf("checkpoint: %w", pinErr)
	}
	if ckptErr != nil {
		return fmt.Errorf("checkpoint: %w", ckptErr)
	}
	return nil
}

// maybeCheckpoint checkpoints when the log has grown past the thresholds or
// the checkpoint interval has passed with frames in the log.
func (db *DB) maybeCheckpoint(ctx context.Context) error {
	if db.walPos == db.ckptPos || db.walPages == 0 {
		return nil
	}
	fileFrames := 0
	if fi, err := os.Stat(db.walPath); err == nil && db.state != nil {
		fileFrames = int(fi.Size() / (24 + int64(db.state.pageSize)))
	}
	truncate := fileFrames >= db.opts.TruncatePageN
	if busy := db.checkpointDue() || truncate; busy || time.Since(db.lastCheckpoint) >= db.opts.CheckpointInterval {
		if err := db.checkpointLocked(ctx, truncate, false); err != nil {
			return err
		}
		if !busy {
			// A checkpoint on the interval: the database is quiet.
			db.releaseSpare()
		}
	}
	return nil
}

// checkpointDue reports whether the log has grown enough since its restart
// to checkpoint: to MinCheckpointPageN pages, to twice its size at the last
// checkpoint that could not restart it, or to MaxCheckpointPageN.
func (db *DB) checkpointDue() bool {
	return db.walPages >= db.opts.MinCheckpointPageN &&
		(db.walPages >= 2*db.ckptTried || db.walPages >= db.opts.MaxCheckpointPageN)
}

// observeDelay is how soon after a WAL write the engine reads the new frames
// to see whether a checkpoint is due, between syncs. Checkpointing by WAL size
// rather than by sync keeps the log short (and in the page cache) under heavy
// writes, whatever the sync interval.
const observeDelay = 5 * time.Millisecond

// observe reads new WAL frames and checkpoints if the log has grown past the
// threshold. It writes no LTX file: the frames' pages stay pending until the
// next sync.
func (db *DB) observe(ctx context.Context) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.needFull || db.state == nil {
		return nil
	}
	if err := db.scanLocked(); err != nil {
		return err
	}
	if db.checkpointDue() {
		return db.maybeCheckpoint(ctx)
	}
	return nil
}

// step is one wake-up of the monitor: a snapshot if a replica asked for one,
// else a sync, then a checkpoint if one is due.
func (db *DB) step(ctx context.Context) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.wantSnapshot {
		if err := db.snapshotLocked(ctx); err != nil {
			return err
		}
		db.wantSnapshot = false
	} else if _, err := db.syncLocked(ctx); err != nil {
		return err
	}
	// The sync succeeded: a checkpoint that fails (the write lock stayed
	// busy, say) is retried at the next one without delaying syncs.
	if err := db.maybeCheckpoint(ctx); err != nil && ctx.Err() == nil {
		db.log.Warn("checkpoint failed; will retry", "error", err)
	}
	return nil
}

// Run replicates the database until ctx ends: it waits for the file to exist,
// opens it, ships staged files to every replica, and syncs whenever the WAL
// changes, at most once per sync interval. When ctx ends it captures what was
// committed, gives the replicas up to flushTimeout to upload it, and closes.
func (db *DB) Run(ctx context.Context, flushTimeout time.Duration) error {
	if err := db.WaitExists(ctx, time.Second); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	if err := db.openLimited(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	rctx, stopReplicas := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, r := range db.replicas {
		wg.Add(1)
		go func() { defer wg.Done(); r.run(rctx) }()
		r.wake()
	}
	mctx, stopMaintenance := context.WithCancel(ctx)
	maintained := make(chan struct{})
	go func() { defer close(maintained); db.maintain(mctx) }()
	db.monitor(ctx)
	stopMaintenance()
	<-maintained

	closeErr := db.Close(context.WithoutCancel(ctx))
	for _, r := range db.replicas {
		r.wake()
	}
	db.waitReplicas(flushTimeout)
	stopReplicas()
	wg.Wait()
	return closeErr
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
			if r.Pos().TXID < pos.TXID {
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

// monitor syncs on WAL changes until ctx ends.
func (db *DB) monitor(ctx context.Context) {
	events, closeWatch := db.watch()
	defer closeWatch()
	poll := time.NewTicker(fallbackPoll)
	defer poll.Stop()
	timer := time.NewTimer(0)
	<-timer.C
	observeTimer := time.NewTimer(0)
	<-observeTimer.C
	observing := false
	armed, dirty := false, true
	var lastSync time.Time
	var lastSize int64
	var lastMod time.Time
	attempt := 0
	for {
		if dirty && !armed {
			d := time.Until(lastSync.Add(db.opts.SyncInterval))
			timer.Reset(max(d, 0))
			armed = true
		}
		select {
		case <-ctx.Done():
			return
		case <-events:
			dirty = true
			if !observing && db.opts.SyncInterval > observeDelay {
				observeTimer.Reset(observeDelay)
				observing = true
			}
		case <-observeTimer.C:
			observing = false
			if err := db.observe(ctx); err != nil && ctx.Err() == nil {
				db.log.Warn("checkpoint failed; will retry", "error", err)
			}
		case <-db.kickC:
			dirty = true
		case <-poll.C:
			if fi, err := os.Stat(db.walPath); err == nil && (fi.Size() != lastSize || !fi.ModTime().Equal(lastMod)) {
				lastSize, lastMod = fi.Size(), fi.ModTime()
				dirty = true
			} else if time.Since(db.lastCheckpointTime()) >= db.opts.CheckpointInterval {
				dirty = true
			}
		case <-timer.C:
			armed, dirty = false, false
			lastSync = time.Now()
			if err := db.step(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				d := backoff(attempt)
				attempt++
				db.log.Error("sync failed; retrying", "error", err, "retry_in", d.String())
				timer.Reset(d)
				armed, dirty = true, true
				continue
			}
			attempt = 0
		}
	}
}

func (db *DB) lastCheckpointTime() time.Time {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.lastCheckpoint
}

// watch reports changes to the database and its WAL as they happen, through
// the process's shared Watcher (Options.Watcher) or one of its own. If the
// file system cannot be watched, the fallback poll alone drives syncs.
func (db *DB) watch() (<-chan struct{}, func()) {
	w := db.opts.Watcher
	if w == nil {
		w = NewWatcher(db.log)
	}
	pause := min(observeDelay, max(db.opts.SyncInterval/2, time.Millisecond))
	events, stop, err := w.subscribe([]string{db.path, db.walPath}, pause)
	if err != nil {
		db.log.Warn("cannot watch the database directory; polling instead", "error", err, "interval", fallbackPoll.String())
		return make(chan struct{}), func() {}
	}
	return events, stop
}
