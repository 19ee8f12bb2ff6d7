// Package levels keeps a replica's history small and quick to restore: it
// merges the files of each level into the next one on a schedule
// (compaction), and decides which files no retained restore point needs
// (retention). A level's merge reads the staging directory and writes to it;
// the uploaders ship the result.
//
// Level 0 holds one file per sync; levels 1 to 8 hold merges, each covering
// the files of the level below since the previous merge; level 9 holds
// snapshots (storage.SnapshotLevel).
package levels

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// Staged is the staging directory as compaction sees it: its files, and a
// merge of some of them.
type Staged interface {
	storage.Reader
	WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error)
	Merge(ctx context.Context, inputs []*ltx.FileInfo, w io.Writer) error
}

// Compactor merges staged files into the compaction levels. It is safe for
// concurrent use.
type Compactor struct {
	staged Staged
	levels int // number of compaction levels: 1..levels
	log    *slog.Logger

	mu        sync.Mutex
	compacted [storage.MaxLevel + 1]ltx.TXID // newest TXID merged into each level
}

// NewCompactor returns a compactor of n levels over the staging directory.
func NewCompactor(staged Staged, n int, log *slog.Logger) *Compactor {
	return &Compactor{staged: staged, levels: n, log: log}
}

// Init learns how far each level has been merged: from the staged files, and
// from held, the newest TXID a replica holds at a level.
func (c *Compactor) Init(ctx context.Context, held func(level int) ltx.TXID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for level := 1; level <= storage.MaxLevel; level++ {
		files, err := c.staged.LTXFiles(ctx, level)
		if err != nil {
			return fmt.Errorf("list staged level %d files: %w", level, err)
		}
		if n := len(files); n > 0 {
			c.compacted[level] = files[n-1].MaxTXID
		}
		c.compacted[level] = max(c.compacted[level], held(level))
	}
	return nil
}

// Merged returns the newest TXID merged into a level (for the snapshot
// level, the newest snapshot staged or replicated).
func (c *Compactor) Merged(level int) ltx.TXID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.compacted[level]
}

// Consumed returns the newest TXID of a level that the next level merged:
// its files up to there are no longer needed locally. The files of the top
// compaction level, and snapshots, are consumed by being uploaded alone.
func (c *Compactor) Consumed(level int) ltx.TXID {
	if level < c.levels {
		return c.Merged(level + 1)
	}
	return ltx.TXID(1<<63 - 1)
}

// Dropped records staged files removed before they were merged: the next
// merge of each level starts after them.
func (c *Compactor) Dropped(files []*ltx.FileInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range files {
		if next := f.Level + 1; next < storage.SnapshotLevel {
			c.compacted[next] = max(c.compacted[next], f.MaxTXID)
		}
	}
}

// Compact merges the staged files of the level below that level does not
// cover yet, up to committed (the newest staged TXID), into one file of that
// level, and returns it (nil when there was nothing new). Every input is
// verified first — its checksums, and that the inputs form one chain:
// contiguous TXIDs, each pre-apply checksum equal to the previous
// post-apply checksum — and a problem is an error naming the files, with
// nothing written. The merge streams: it holds a few pages per input,
// whatever the files' sizes.
func (c *Compactor) Compact(ctx context.Context, level int, committed ltx.TXID) (*ltx.FileInfo, error) {
	if level < 1 || level > c.levels {
		return nil, fmt.Errorf("level %d is not a compaction level", level)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if committed <= c.compacted[level] {
		return nil, nil // nothing new since the last merge: no listing
	}
	src, err := c.staged.LTXFiles(ctx, level-1)
	if err != nil {
		return nil, fmt.Errorf("compact level %d: %w", level, err)
	}
	var inputs []*ltx.FileInfo
	for _, f := range src {
		if f.MinTXID > c.compacted[level] && f.MaxTXID <= committed {
			inputs = append(inputs, f)
		}
	}
	// A level-0 file that starts at TXID 1 is a snapshot of the whole
	// database, already shipped to the snapshot level: merging it would
	// copy the whole database into every level.
	if len(inputs) > 0 && level == 1 && inputs[0].MinTXID == 1 {
		c.compacted[level] = inputs[0].MaxTXID
		inputs = inputs[1:]
	}
	if len(inputs) == 0 {
		return nil, nil
	}
	// A full copy at another page size (the database was replaced) cannot
	// be merged with the files before it: merge up to it, and start the
	// next file of the level from it.
	if inputs, err = SamePageSize(ctx, c.staged, inputs); err != nil {
		return nil, fmt.Errorf("compact level %d: %w", level, err)
	}
	last, err := VerifyChain(ctx, c.staged, inputs)
	var broken *ChainError
	switch {
	case errors.As(err, &broken) && broken.Index > 0:
		// Merge what chains; the next merge starts at the break.
		inputs = inputs[:broken.Index]
		if last, err = VerifyChain(ctx, c.staged, inputs); err != nil {
			return nil, fmt.Errorf("compact level %d: %w", level, err)
		}
	case broken != nil:
		// The first input itself is damaged: no merge can hold it.
		// Leave it out, and let the caller take a snapshot, which the
		// history after it will continue.
		c.compacted[level] = broken.File().MaxTXID
		return nil, &BreakError{Level: level, File: broken.File(), Corrupt: true, Err: broken}
	case err != nil:
		return nil, fmt.Errorf("compact level %d: %w", level, err)
	}

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(c.staged.Merge(ctx, inputs, pw)) }()
	minTXID, maxTXID := inputs[0].MinTXID, inputs[len(inputs)-1].MaxTXID
	info, err := c.staged.WriteLTXFile(ctx, level, minTXID, maxTXID, pr, time.UnixMilli(last.Timestamp))
	pr.CloseWithError(errors.New("compaction output closed"))
	if err != nil {
		return nil, fmt.Errorf("compact level %d from %s to %s: %w", level,
			storage.Describe(level-1, minTXID, inputs[0].MaxTXID), storage.Describe(level-1, inputs[len(inputs)-1].MinTXID, maxTXID), err)
	}
	c.compacted[level] = maxTXID
	c.log.Debug("compacted", "file", storage.Describe(level, minTXID, maxTXID), "inputs", len(inputs), "size", info.Size)
	if broken != nil {
		return info, &BreakError{Level: level, File: broken.File(), Corrupt: broken.Corrupt, Err: broken}
	}
	return info, nil
}

// A BreakError is a compaction that found the staged history broken at
// File: damaged, or not continuing the file before it (two processes wrote
// one history, or a file was lost). Compaction goes on past it; what
// restores across it is a snapshot taken after it, which the caller must
// see to.
type BreakError struct {
	Level   int
	File    *ltx.FileInfo
	Corrupt bool // File itself is damaged, not only out of place
	Err     error
}

// SnapshotPast returns the first TXID a snapshot must reach for a restore
// from it not to cross the break: past a damaged file, or at its first
// TXID for a sound file that does not continue the one before.
func (e *BreakError) SnapshotPast() ltx.TXID {
	if e.Corrupt {
		return e.File.MaxTXID
	}
	return e.File.MinTXID
}

func (e *BreakError) Error() string {
	return fmt.Sprintf("compact level %d: the staged history is broken at %s: %v", e.Level, storage.Describe(e.File.Level, e.File.MinTXID, e.File.MaxTXID), e.Err)
}

func (e *BreakError) Unwrap() error { return e.Err }

// SamePageSize returns the leading files that share the first one's page
// size.
func SamePageSize(ctx context.Context, c storage.Reader, files []*ltx.FileInfo) ([]*ltx.FileInfo, error) {
	var pageSize uint32
	for i, f := range files {
		hdr, _, err := storage.ReadHeaderTrailer(ctx, c, f)
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

// A ChainError is a list of staged files that is not one sound chain:
// Files[Index] is corrupt, or does not follow or apply to the file before
// it.
type ChainError struct {
	Files   []*ltx.FileInfo
	Index   int
	Corrupt bool // Files[Index] itself is damaged, not only out of place
	Err     error
}

func (e *ChainError) Error() string { return e.Err.Error() }
func (e *ChainError) Unwrap() error { return e.Err }

// File returns the file at fault.
func (e *ChainError) File() *ltx.FileInfo { return e.Files[e.Index] }

// VerifyChain checks that files form one chain and that each is intact, and
// returns the last one's header. A file that fails is a *ChainError; an
// error reading a file is returned as it is.
func VerifyChain(ctx context.Context, c storage.Reader, files []*ltx.FileInfo) (ltx.Header, error) {
	var prevTrailer ltx.Trailer
	var hdr ltx.Header
	for i, f := range files {
		name := storage.Describe(f.Level, f.MinTXID, f.MaxTXID)
		broken := func(corrupt bool, format string, args ...any) error {
			return &ChainError{Files: files, Index: i, Corrupt: corrupt, Err: fmt.Errorf(format, args...)}
		}
		rc, err := c.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, 0, 0)
		if err != nil {
			return hdr, err
		}
		dec := ltx.NewDecoder(rc)
		dec.SetRetainPageIndex(false)
		err = dec.Verify()
		rc.Close()
		if err != nil {
			if ctx.Err() != nil {
				return hdr, ctx.Err()
			}
			var pathErr *fs.PathError
			if errors.As(err, &pathErr) {
				return hdr, fmt.Errorf("read %s: %w", name, err) // the disk, not the file
			}
			return hdr, broken(true, "%s is corrupt: %w", name, err)
		}
		hdr = dec.Header()
		if hdr.MinTXID != f.MinTXID || hdr.MaxTXID != f.MaxTXID {
			return hdr, broken(true, "%s holds TXIDs %s-%s", name, hdr.MinTXID, hdr.MaxTXID)
		}
		if i > 0 {
			prev := files[i-1]
			prevName := storage.Describe(prev.Level, prev.MinTXID, prev.MaxTXID)
			if f.MinTXID != prev.MaxTXID+1 {
				return hdr, broken(false, "%s does not follow %s: TXIDs are missing or repeated", name, prevName)
			}
			if !hdr.NoChecksum() && hdr.PreApplyChecksum != prevTrailer.PostApplyChecksum {
				return hdr, broken(false, "%s does not apply to the state after %s: pre-apply checksum %s, expected %s", name, prevName, hdr.PreApplyChecksum, prevTrailer.PostApplyChecksum)
			}
		}
		prevTrailer = dec.Trailer()
	}
	return hdr, nil
}
