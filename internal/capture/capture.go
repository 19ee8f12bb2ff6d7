// Package capture turns what the WAL tail read into the database's history:
// LTX files in the staging directory, one per sync, with contiguous TXIDs
// and exact pre- and post-apply checksums. It keeps the checksum of every
// page of the newest staged state, so that each file's checksums are exact
// without the database being read again; writes a whole copy, or just the
// pages that differ, whenever the WAL no longer shows how the database got
// from the staged state to the current one; stages snapshots; and, at
// start-up, finds the staged state in the database again (Resume).
package capture

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/pagesum"
	"github.com/walship/walship/internal/staging"
	"github.com/walship/walship/internal/tail"
	"github.com/walship/walship/storage"
)

// Capturer captures one database into its staging directory. It is safe
// for concurrent use: one mutex serialises its work (syncs, checkpoints,
// snapshots).
type Capturer struct {
	log     *slog.Logger
	staging *staging.Dir

	mu    sync.Mutex
	tail  *tail.Tail
	pos   ltx.Pos        // newest staged file
	state *pagesum.State // page checksums of the state at pos; nil until resumed
	full  string         // why the next sync must stage the whole database; "" if a delta will do
	// lastSnapshot is the newest staged or replicated snapshot;
	// wantSnapshot says a replica asked for a newer one.
	lastSnapshot ltx.TXID
	wantSnapshot bool
	// progress is told how far a copy of the whole database (or of the
	// pages that differ from the recorded state) has been written.
	progress func(done, total int64)
}

// SetProgress sets the function told, as a whole copy or a diff of the
// database is staged, the bytes of pages written so far and in all. It is
// called under the capture lock, so it must not call the Capturer.
func (c *Capturer) SetProgress(f func(done, total int64)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.progress = f
}

// copying returns what encodePages tells of each page of a copy of n pages.
func (c *Capturer) copying(n int, pageSize uint32) func(int) {
	return storage.ProgressCounter(c.progress, int64(n)*int64(pageSize))
}

// New returns a Capturer of the database at path (absolute) into the
// staging directory d. It does no I/O until Open.
func New(path string, opts tail.Options, d *staging.Dir) *Capturer {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Capturer{log: log, staging: d, tail: tail.New(path, opts)}
}

// Open opens the database (see tail.Tail.Open). Resume then establishes
// where its history stands.
func (c *Capturer) Open(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tail.Open(ctx)
}

// Resume makes pos, the newest position of the database's history, the
// staged position: it finds that state in the database as it is now (at,
// where in the WAL it was captured, if known, then the database as a
// whole), so that the next sync stages a delta. If neither reproduces pos's
// checksum, the database changed in a way no delta can describe, and the
// pages that differ (or a whole copy) are staged now. lastSnapshot is the
// newest snapshot staged or replicated.
func (c *Capturer) Resume(ctx context.Context, pos ltx.Pos, at *staging.WALPoint, lastSnapshot ltx.TXID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pos, c.lastSnapshot = pos, lastSnapshot
	if err := c.resume(ctx, at); err != nil {
		return err
	}
	c.tail.Ready()
	return nil
}

// Close captures what has been committed, releases the database and closes
// the staging directory's records.
func (c *Capturer) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	if c.tail.Opened() && c.state != nil {
		_, err = c.sync(ctx)
	}
	return errors.Join(err, c.tail.Close(), c.staging.Close())
}

// Release releases the database without capturing anything: Open failed
// part way.
func (c *Capturer) Release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tail.Close()
}

// Pos returns the position of the newest staged file.
func (c *Capturer) Pos() ltx.Pos {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pos
}

// LastSnapshot returns the TXID of the newest snapshot staged or
// replicated.
func (c *Capturer) LastSnapshot() ltx.TXID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastSnapshot
}

// Unfinished reports whether a Step has work to do although the WAL and
// the database file are unchanged: a checkpoint due on the interval, or a
// whole copy after the WAL's continuity was lost (which a Step also
// retries after a failed checkpoint lost the pin), or a snapshot whose
// staging failed after a whole copy, retried by the next Step.
func (c *Capturer) Unfinished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		return false
	}
	return c.full != "" || c.wantSnapshot || c.tail.Broken() != "" || c.tail.IntervalCheckpointDue()
}

// Sync stages the transactions committed since the last sync as one LTX
// file, and reports whether it staged anything. When nothing was committed
// it writes nothing.
func (c *Capturer) Sync(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		return false, errors.New("database is not open")
	}
	return c.sync(ctx)
}

// Step is one wake-up of the replicator: a snapshot if a replica asked for
// one, else a sync, then a checkpoint if one is due. It reports whether it
// staged anything.
func (c *Capturer) Step(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var staged bool
	if c.wantSnapshot {
		// A snapshot that fails may follow a sync that staged a file:
		// the replicas must hear of that file all the same.
		synced, err := c.snapshot(ctx)
		if err != nil {
			return synced, err
		}
		c.wantSnapshot, staged = false, true
	} else {
		var err error
		if staged, err = c.sync(ctx); err != nil {
			return false, err
		}
	}
	// The sync succeeded: a checkpoint that fails (the write lock stayed
	// busy, say) is retried at the next one without delaying syncs.
	if err := c.tail.MaybeCheckpoint(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn("checkpoint failed; will retry", "error", err)
	}
	return staged, nil
}

// Observe reads new WAL frames and checkpoints if the log has grown past
// the threshold, between syncs. It stages nothing.
func (c *Capturer) Observe(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.full != "" || c.tail.Broken() != "" || c.state == nil {
		return nil
	}
	return c.tail.Observe(ctx)
}

// Checkpoint checkpoints the WAL (see tail.Tail.Checkpoint).
func (c *Capturer) Checkpoint(ctx context.Context, truncate, seal bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tail.Checkpoint(ctx, truncate, seal)
}

// SnapshotIfChanged stages a snapshot if anything was committed since the
// last one, and reports whether it staged anything.
func (c *Capturer) SnapshotIfChanged(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		return false, nil
	}
	staged, err := c.sync(ctx)
	if err != nil {
		return staged, err
	}
	if c.pos.TXID <= c.lastSnapshot {
		return staged, nil
	}
	return true, c.stageSnapshot(ctx)
}

// RequestSnapshot makes the next Step stage a snapshot.
func (c *Capturer) RequestSnapshot(why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.wantSnapshot {
		c.log.Warn("a snapshot will be staged", "reason", why)
	}
	c.wantSnapshot = true
}

// SnapshotIfRequested stages a snapshot now if one was requested, and
// reports whether it did.
func (c *Capturer) SnapshotIfRequested(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.wantSnapshot {
		return false, nil
	}
	c.wantSnapshot = false
	if _, err := c.snapshot(ctx); err != nil {
		return true, err
	}
	return true, nil
}

// sync stages what was committed since the last sync.
func (c *Capturer) sync(ctx context.Context) (bool, error) {
	if err := c.tail.EnsurePinned(ctx); err != nil {
		return false, err
	}
	for attempt := 0; ; attempt++ {
		if why := c.tail.Broken(); why != "" {
			c.setFull(why)
		}
		if c.full != "" {
			return true, c.writeFull(ctx, c.full)
		}
		if err := c.tail.Scan(); err != nil {
			return false, err
		}
		ch := c.tail.Changes()
		if len(ch.Pages) == 0 && ch.Commit == c.state.Commit() {
			return false, nil
		}
		err := c.writeDelta(ctx, ch)
		if errors.Is(err, tail.ErrRestarted) && attempt < 3 {
			// The log restarted while pages were read from it. The pin
			// allows that only once every frame was backfilled, so a
			// rescan reads them from the database file.
			continue
		}
		if errors.Is(err, tail.ErrRestarted) {
			c.setFull(err.Error())
			return true, c.writeFull(ctx, c.full)
		}
		return err == nil, err
	}
}

// setFull makes the next sync stage the whole database. The first reason
// is kept.
func (c *Capturer) setFull(why string) {
	if c.full == "" {
		c.full = why
	}
}

// header returns the header of the next file, at the staged page size.
func (c *Capturer) header(minTXID, maxTXID ltx.TXID, commit uint32, pre ltx.Checksum) ltx.Header {
	return ltx.Header{
		Version:          ltx.Version,
		PageSize:         c.state.PageSize(),
		Commit:           commit,
		MinTXID:          minTXID,
		MaxTXID:          maxTXID,
		Timestamp:        time.Now().UnixMilli(),
		PreApplyChecksum: pre,
	}
}

// commit makes a staged file, holding the state next, the new position.
func (c *Capturer) commit(info *ltx.FileInfo, next *pagesum.State) {
	if err := c.staging.SaveChecksums(info.MaxTXID, c.state, next); err != nil {
		c.log.Warn("cannot record page checksums; a restart will need a full copy", "error", err)
	}
	c.pos = ltx.NewPos(info.MaxTXID, next.Total())
	c.state = next
	c.full = ""
	var at *staging.WALPoint
	if s1, s2, end := c.tail.Mark(); end != 0 {
		at = &staging.WALPoint{Salt1: s1, Salt2: s2, End: end}
	}
	if err := c.staging.WritePosition(c.pos, at); err != nil {
		c.log.Debug("cannot record the wal position", "error", err)
	}
	c.log.Debug("staged", "file", storage.Describe(info.Level, info.MinTXID, info.MaxTXID), "size", info.Size)
}

// errNoDiff means the current state cannot be described as a diff from the
// staged one (the page size changed).
var errNoDiff = errors.New("no diff possible")
