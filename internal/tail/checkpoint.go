package tail

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/walship/walship/internal/event"
	"github.com/walship/walship/internal/wal"
)

// Checkpoint copies the WAL into the database without losing a frame, so
// that the next writer can restart the log from its beginning.
//
// First, without any lock: advance the pin to the log's end, backfill up to
// it, and if no frame arrived meanwhile, pin again at rest, reading the
// database file only. The application never waits for this, and when it
// pauses for even a millisecond the log restarts.
//
// An application that never pauses keeps the log growing; past
// MaxCheckpointPageN pages (or with seal) the tail then seals: it takes the
// write barrier, reads the last frames, backfills them, and pins again
// before the barrier is released. With truncate it then also shrinks the WAL
// file to zero if nothing new arrived.
func (t *Tail) Checkpoint(ctx context.Context, truncate, seal bool) (err error) {
	begun := time.Now()
	defer func() {
		if err == nil {
			t.opts.Events.Emit(event.Since(event.Checkpoint, begun))
		}
	}()
	if err := t.Scan(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := t.advancePin(ctx); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	sp, err := t.spare(ctx)
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
		if err := t.advancePin(ctx); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	} else if seal || t.walPages >= t.opts.MaxCheckpointPageN || truncate {
		if err := t.seal(ctx, &busy, &logN, &ckptN); err != nil {
			return err
		}
		sealed = true
	} else {
		// The application wrote meanwhile. Each try backfills and
		// fsyncs, which a busy application feels: try again once the
		// log has doubled, and seal at MaxCheckpointPageN.
		t.ckptTried = t.walPages
	}
	if sealed || ckptN == logN {
		// Else the interval or the log's growth brings the next try,
		// even if the application writes nothing more.
		t.ckptPos = t.walPos
	}
	t.lastCkpt = time.Now()
	t.log.Debug("checkpoint", "frames", logN, "checkpointed", ckptN, "sealed", sealed, "wal_pages", t.walPages, "took", time.Since(begun).String())
	if !truncate || ckptN != logN {
		return nil
	}
	// Everything is backfilled and the pin reads the database file only, so
	// SQLite can truncate the log only if no frame arrived since: one that
	// did cannot be backfilled under the pin, and TRUNCATE then reports busy
	// and leaves the log alone.
	bg := context.WithoutCancel(ctx)
	c, err := t.spare(bg)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if _, err := c.ExecContext(bg, "PRAGMA busy_timeout=0"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	err = c.QueryRowContext(bg, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logN, &ckptN)
	if _, e := c.ExecContext(bg, fmt.Sprintf("PRAGMA busy_timeout=%d", t.opts.BusyTimeout.Milliseconds())); e != nil && err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("checkpoint: truncate wal: %w", err)
	}
	t.log.Debug("truncated wal", "busy", busy)
	return nil
}

// seal backfills the whole log under the write barrier, taken on the spare
// connection: it reads the last frames, releases the pin, checkpoints on the
// pin's connection and pins again before any writer can restart the log. The
// statements ignore cancellation: the driver may report a cancelled context
// after BEGIN IMMEDIATE took the lock, and the lock must be released
// whatever happens.
func (t *Tail) seal(ctx context.Context, busy, logN, ckptN *int) error {
	bg := context.WithoutCancel(ctx)
	lock, err := t.spare(bg)
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
	if err := t.Scan(); err != nil {
		rollback()
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := t.unpin(); err != nil {
		rollback()
		t.lose("the wal pin was lost during a checkpoint")
		return fmt.Errorf("checkpoint: release pin: %w", err)
	}
	// The application's own autocheckpoint may hold the checkpoint lock for a
	// moment (it runs after its commit, outside the write lock); a passive
	// checkpoint does not wait for it, so retry briefly.
	ckpt := t.pinConns[t.pinIdx]
	var ckptErr error
	for range 50 {
		ckptErr = ckpt.QueryRowContext(bg, "PRAGMA wal_checkpoint(PASSIVE)").Scan(busy, logN, ckptN)
		if ckptErr != nil || *logN >= 0 {
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	pinErr := t.pin(bg)
	rollback()
	if pinErr != nil {
		// Without the pin the log may restart unseen: only a whole copy
		// is safe after this. The next sync pins again.
		t.lose("the wal pin was lost during a checkpoint")
		return fmt.Errorf("checkpoint: %w", pinErr)
	}
	if ckptErr != nil {
		return fmt.Errorf("checkpoint: %w", ckptErr)
	}
	return nil
}

// MaybeCheckpoint checkpoints when the log has grown past the thresholds or
// the checkpoint interval has passed with frames in the log.
func (t *Tail) MaybeCheckpoint(ctx context.Context) error {
	if !t.unbackfilled() {
		return nil
	}
	fileFrames := 0
	if fi, err := os.Stat(t.walPath); err == nil && t.pageSize != 0 {
		fileFrames = int(fi.Size() / (wal.FrameHeaderSize + int64(t.pageSize)))
	}
	truncate := fileFrames >= t.opts.TruncatePageN
	if busy := t.checkpointDue() || truncate; busy || t.intervalPassed() {
		if err := t.Checkpoint(ctx, truncate, false); err != nil {
			return err
		}
		if !busy {
			// A checkpoint on the interval: the database is quiet.
			t.ReleaseSpare()
		}
	}
	return nil
}

// checkpointDue reports whether the log has grown enough since its restart
// to checkpoint: to MinCheckpointPageN pages, to twice its size at the last
// checkpoint that could not restart it, or to MaxCheckpointPageN.
func (t *Tail) checkpointDue() bool {
	return t.walPages >= t.opts.MinCheckpointPageN &&
		(t.walPages >= 2*t.ckptTried || t.walPages >= t.opts.MaxCheckpointPageN)
}

// Observe reads new WAL frames and checkpoints if the log has grown past the
// threshold. It captures nothing: the frames' pages stay pending until the
// next capture.
func (t *Tail) Observe(ctx context.Context) error {
	if err := t.Scan(); err != nil {
		return err
	}
	if t.checkpointDue() {
		return t.MaybeCheckpoint(ctx)
	}
	return nil
}

// IntervalCheckpointDue reports whether MaybeCheckpoint would checkpoint
// on the interval now: frames were read since the last checkpoint (or it
// could not backfill them all) and CheckpointInterval has passed since.
// With nothing read since, a wake-up to checkpoint would find nothing to
// do.
func (t *Tail) IntervalCheckpointDue() bool {
	return t.unbackfilled() && t.intervalPassed()
}

// unbackfilled reports whether frames were read since the last checkpoint
// that backfilled them all.
func (t *Tail) unbackfilled() bool { return t.walPos != t.ckptPos && t.walPages != 0 }

// intervalPassed reports whether CheckpointInterval has passed since the
// last checkpoint.
func (t *Tail) intervalPassed() bool { return time.Since(t.lastCkpt) >= t.opts.CheckpointInterval }
