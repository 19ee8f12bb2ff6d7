package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/walship/walship/restore/litestream03"
	"github.com/walship/walship/storage"
)

// Litestream03For returns the Litestream v0.3 backup of c (see package
// litestream03) that a restore to target reads instead of c's LTX files,
// or nil. planErr is the error planning from the LTX files gave: a v0.3
// backup is read when they hold no file at all (ErrNoFiles), or none
// written at or before the target time (ErrTooEarly), so that a replica
// walship continues beside an old v0.3 backup still restores the times
// before walship's history. A TXID target with only a v0.3 backup is an
// error: v0.3 has no TXIDs.
func Litestream03For(ctx context.Context, c storage.Client, target Target, planErr error) (*litestream03.Backup, error) {
	if !errors.Is(planErr, ErrNoFiles) && !errors.Is(planErr, ErrTooEarly) {
		return nil, nil
	}
	b, err := litestream03.Find(ctx, c)
	if err != nil || b == nil {
		return nil, err
	}
	if target.TXID != 0 {
		return nil, fmt.Errorf("replica %s holds a backup that Litestream v0.3 wrote (%s), which has no TXIDs: restore it with -timestamp, or without a target for its latest state", c, litestream03.Dir)
	}
	// Between the v0.3 backup's last object and walship's first file,
	// nothing shows what the database held: a time there is no restore
	// point of either.
	if _, last := b.Span(); errors.Is(planErr, ErrTooEarly) && target.Timestamp.After(last) {
		return nil, fmt.Errorf("%w; its Litestream v0.3 backup (%s) ends at %s, before that time, and nothing shows what the database held in between: restore -timestamp %s for the last state the v0.3 backup holds, or a time walship's history holds",
			planErr, litestream03.Dir, last.UTC().Format(time.RFC3339Nano), last.UTC().Format(time.RFC3339Nano))
	}
	return b, nil
}

// RestoreLitestream03 restores the Litestream v0.3 backup b of c to
// outPath: the latest state, or the one at opts.Target.Timestamp (its TXID
// must be zero). The output is held and written as Apply holds and writes
// it (a lock, a temporary file of its own beside it, SQLite's check, the
// rename; -force's replacement); each WAL index is read into a temporary
// file beside the output, removed once applied. See
// litestream03.Backup.Restore for what is checked.
func RestoreLitestream03(ctx context.Context, c storage.Client, b *litestream03.Backup, outPath string, opts Options) (*Result, error) {
	start := time.Now()
	if opts.Target.TXID != 0 {
		return nil, fmt.Errorf("replica %s holds a backup that Litestream v0.3 wrote, which has no TXIDs: restore it with -timestamp, or without a target for its latest state", c)
	}
	src, ok := c.(litestream03.Source)
	if !ok {
		return nil, fmt.Errorf("replica %s: walship cannot read a Litestream v0.3 backup from a %s replica", c, c.Type())
	}
	if err := CheckOutput(outPath, opts.Force); err != nil {
		return nil, err
	}
	if _, err := checkPragma(opts.IntegrityCheck); err != nil {
		return nil, err
	}
	var res *litestream03.Result
	err := writeOutput(ctx, outPath, opts, func(f *os.File) error {
		// Named as the output's own temporary files, so that a restore
		// killed part way leaves nothing the next one does not remove.
		scratch := func() (*os.File, error) {
			f, err := os.CreateTemp(filepath.Dir(outPath), filepath.Base(outPath)+".tmp-*-wal")
			if err != nil {
				return nil, fmt.Errorf("create a temporary file beside %s: %w", outPath, diskHint(err))
			}
			return f, nil
		}
		var err error
		if res, err = b.Restore(ctx, src, opts.Target.Timestamp, f, scratch); err != nil {
			return fmt.Errorf("%w; the restore was abandoned and no output was written", diskHint(err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Result{
		Path:         outPath,
		Files:        res.Objects,
		Bytes:        res.Bytes,
		Pages:        res.Pages,
		PageSize:     res.PageSize,
		Duration:     time.Since(start),
		Litestream03: res,
	}, nil
}
