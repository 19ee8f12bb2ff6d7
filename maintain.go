package walship

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// maintain runs compaction, snapshots and retention on their schedules until
// ctx ends. Each step writes or deletes something only if something changed.
func (db *DB) maintain(ctx context.Context) {
	type schedule struct {
		every   time.Duration
		next    time.Time
		running bool
		run     func(context.Context) error
	}
	now := time.Now()
	var scheds []*schedule
	add := func(every time.Duration, run func(context.Context) error) {
		if every > 0 { // a library user's zero level interval: never
			scheds = append(scheds, &schedule{every: every, next: now.Add(every), run: run})
		}
	}
	for i, interval := range db.opts.Levels {
		level := i + 1
		add(interval, func(ctx context.Context) error {
			_, err := db.Compact(ctx, level)
			return err
		})
	}
	add(db.opts.SnapshotInterval, db.SnapshotIfChanged)
	if !db.opts.RetentionDisabled {
		add(db.opts.L0RetentionCheckInterval, db.EnforceRetention)
	}
	// One goroutine waits for every schedule; each step runs in its own, so
	// that a long hourly compaction does not delay the 30-second one. A
	// step still running when it is due again is skipped.
	if len(scheds) == 0 {
		return
	}
	finished := make(chan *schedule)
	running := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next := scheds[0].next
		for _, s := range scheds[1:] {
			if s.next.Before(next) {
				next = s.next
			}
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			for ; running > 0; running-- {
				(<-finished).running = false
			}
			return
		case s := <-finished:
			s.running = false
			running--
		case now := <-timer.C:
			for _, s := range scheds {
				if now.Before(s.next) {
					continue
				}
				for !now.Before(s.next) {
					s.next = s.next.Add(s.every)
				}
				if s.running {
					continue
				}
				s.running = true
				running++
				go func() {
					if err := s.run(ctx); err != nil && ctx.Err() == nil {
						db.log.Error("maintenance failed; will retry at the next interval", "error", err)
					}
					finished <- s
				}()
			}
		}
	}
}

// compactedTo returns the newest TXID merged into a compaction level.
func (db *DB) compactedTo(level int) ltx.TXID {
	db.cmu.Lock()
	defer db.cmu.Unlock()
	return db.compacted[level]
}

// initCompacted learns how far each level has been compacted, from the
// staging directory and the replicas.
func (db *DB) initCompacted(ctx context.Context) error {
	db.cmu.Lock()
	defer db.cmu.Unlock()
	for level := 1; level <= storage.MaxLevel; level++ {
		files, err := db.staging.LTXFiles(ctx, level)
		if err != nil {
			return fmt.Errorf("list staged level %d files: %w", level, err)
		}
		if n := len(files); n > 0 {
			db.compacted[level] = files[n-1].MaxTXID
		}
		for _, r := range db.replicas {
			db.compacted[level] = max(db.compacted[level], r.levelMax(level))
		}
	}
	db.lastSnapshot = db.compacted[storage.SnapshotLevel]
	return nil
}

// Compact merges the staged files of the level below that level does not
// cover yet into one file of that level, and returns it (nil when there was
// nothing new). Every input is verified first — its checksums, and that the
// inputs form one chain: contiguous TXIDs, each pre-apply checksum equal to
// the previous post-apply checksum — and a problem is an error naming the
// files, with nothing written. The merge streams: it holds a few pages per
// input, whatever the files' sizes.
func (db *DB) Compact(ctx context.Context, level int) (*ltx.FileInfo, error) {
	if level < 1 || level > len(db.opts.Levels) {
		return nil, fmt.Errorf("level %d is not a compaction level", level)
	}
	committed := db.Pos().TXID // before cmu: syncs take db.mu, then cmu
	db.cmu.Lock()
	defer db.cmu.Unlock()
	if committed <= db.compacted[level] {
		return nil, nil // nothing new since the last merge: no listing
	}
	src, err := db.staging.LTXFiles(ctx, level-1)
	if err != nil {
		return nil, fmt.Errorf("compact level %d: %w", level, err)
	}
	var inputs []*ltx.FileInfo
	for _, f := range src {
		if f.MinTXID > db.compacted[level] && f.MaxTXID <= committed {
			inputs = append(inputs, f)
		}
	}
	// A level-0 file that starts at TXID 1 is a snapshot of the whole
	// database, already shipped to the snapshot level: merging it would
	// copy the whole database into every level.
	if len(inputs) > 0 && level == 1 && inputs[0].MinTXID == 1 {
		db.compacted[level] = inputs[0].MaxTXID
		inputs = inputs[1:]
	}
	if len(inputs) == 0 {
		return nil, nil
	}
	// A full copy at another page size (the database was replaced) cannot
	// be merged with the files before it: merge up to it, and start the
	// next file of the level from it.
	if inputs, err = samePageSize(ctx, db.staging, inputs); err != nil {
		return nil, fmt.Errorf("compact level %d: %w", level, err)
	}
	last, err := verifyChain(ctx, db.staging, inputs)
	if err != nil {
		return nil, fmt.Errorf("compact level %d: %w", level, err)
	}

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(db.merge(ctx, inputs, pw)) }()
	minTXID, maxTXID := inputs[0].MinTXID, inputs[len(inputs)-1].MaxTXID
	info, err := db.staging.WriteLTXFile(ctx, level, minTXID, maxTXID, pr, time.UnixMilli(last.Timestamp))
	pr.CloseWithError(errors.New("compaction output closed"))
	if err != nil {
		return nil, fmt.Errorf("compact level %d from %s to %s: %w", level,
			storage.Describe(level-1, minTXID, inputs[0].MaxTXID), storage.Describe(level-1, inputs[len(inputs)-1].MinTXID, maxTXID), err)
	}
	db.compacted[level] = maxTXID
	db.log.Debug("compacted", "file", storage.Describe(level, minTXID, maxTXID), "inputs", len(inputs), "size", info.Size)
	for _, r := range db.replicas {
		r.wake()
	}
	return info, nil
}

// merge writes the staged files inputs, which form one chain at one page
// size, to w as one LTX file.
func (db *DB) merge(ctx context.Context, inputs []*ltx.FileInfo, w io.Writer) error {
	rdrs := make([]io.Reader, len(inputs))
	for i, f := range inputs {
		rc, err := db.staging.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, 0, 0)
		if err != nil {
			return err
		}
		defer rc.Close()
		rdrs[i] = rc
	}
	c, err := ltx.NewCompactor(w, rdrs)
	if err != nil {
		return err
	}
	c.SetSpillDir(db.opts.MetaPath)
	c.SetSpillThreshold(spillPages)
	defer c.Cleanup()
	return c.Compact(ctx)
}

// samePageSize returns the leading files that share the first one's page size.
func samePageSize(ctx context.Context, c storage.Client, files []*ltx.FileInfo) ([]*ltx.FileInfo, error) {
	var pageSize uint32
	for i, f := range files {
		hdr, _, err := ReadHeaderTrailer(ctx, c, f)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			pageSize = hdr.PageSize
		} else if hdr.PageSize != pageSize {
			return files[:i], nil
		}
	}
	return files, nil
}

// verifyChain checks that files form one chain and that each is intact, and
// returns the last one's header.
func verifyChain(ctx context.Context, c storage.Client, files []*ltx.FileInfo) (ltx.Header, error) {
	var prevTrailer ltx.Trailer
	var hdr ltx.Header
	for i, f := range files {
		name := storage.Describe(f.Level, f.MinTXID, f.MaxTXID)
		rc, err := c.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, 0, 0)
		if err != nil {
			return hdr, err
		}
		dec := ltx.NewDecoder(rc)
		dec.SetRetainPageIndex(false)
		err = dec.Verify()
		rc.Close()
		if err != nil {
			return hdr, fmt.Errorf("%s is corrupt: %w", name, err)
		}
		hdr = dec.Header()
		if hdr.MinTXID != f.MinTXID || hdr.MaxTXID != f.MaxTXID {
			return hdr, fmt.Errorf("%s holds TXIDs %s-%s", name, hdr.MinTXID, hdr.MaxTXID)
		}
		if i > 0 {
			prev := files[i-1]
			prevName := storage.Describe(prev.Level, prev.MinTXID, prev.MaxTXID)
			if f.MinTXID != prev.MaxTXID+1 {
				return hdr, fmt.Errorf("%s does not follow %s: TXIDs are missing or repeated", name, prevName)
			}
			if !hdr.NoChecksum() && hdr.PreApplyChecksum != prevTrailer.PostApplyChecksum {
				return hdr, fmt.Errorf("%s does not apply to the state after %s: pre-apply checksum %s, expected %s", name, prevName, hdr.PreApplyChecksum, prevTrailer.PostApplyChecksum)
			}
		}
		prevTrailer = dec.Trailer()
	}
	return hdr, nil
}

// SnapshotIfChanged stages a snapshot if anything was committed since the
// last one.
func (db *DB) SnapshotIfChanged(ctx context.Context) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.state == nil {
		return nil
	}
	if _, err := db.syncLocked(ctx); err != nil {
		return err
	}
	if db.pos.TXID <= db.lastSnapshot {
		return nil
	}
	return db.stageSnapshot(ctx)
}

// retentionPolicy returns the policy replicas enforce.
func (db *DB) retentionPolicy() RetentionPolicy {
	return RetentionPolicy{SnapshotRetention: db.opts.SnapshotRetention, L0Retention: db.opts.L0Retention}
}

// EnforceRetention deletes from every replica the files no retained restore
// point needs.
func (db *DB) EnforceRetention(ctx context.Context) error {
	var errs []error
	for _, r := range db.replicas {
		errs = append(errs, r.enforceRetention(ctx, db.retentionPolicy(), time.Now()))
	}
	return errors.Join(errs...)
}
