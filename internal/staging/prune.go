package staging

import (
	"context"
	"fmt"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// Prune removes the staged files no longer needed: those held reports every
// replica has, at or below the TXID consumed says the next level merged.
func (d *Dir) Prune(ctx context.Context, consumed func(level int) ltx.TXID, held func(*ltx.FileInfo) bool) error {
	var old []*ltx.FileInfo
	for level := 0; level <= storage.MaxLevel; level++ {
		files, err := d.LTXFiles(ctx, level)
		if err != nil {
			return err
		}
		upTo := consumed(level)
		for _, f := range files {
			if f.MaxTXID <= upTo && held(f) {
				old = append(old, f)
			}
		}
	}
	if len(old) == 0 {
		return nil
	}
	return d.DeleteLTXFiles(ctx, old)
}

// Trim drops the staged files droppable allows (never a snapshot: it is
// what a lagging replica restarts from) when the directory holds more than
// maxBytes, and returns what it dropped and the bytes it held.
func (d *Dir) Trim(ctx context.Context, maxBytes int64, droppable func(*ltx.FileInfo) bool) ([]*ltx.FileInfo, int64, error) {
	var total int64
	var drop []*ltx.FileInfo
	err := d.each(ctx, func(f *ltx.FileInfo) {
		total += f.Size
		if f.Level != storage.SnapshotLevel && droppable(f) {
			drop = append(drop, f)
		}
	})
	if err != nil {
		return nil, 0, err
	}
	if total <= maxBytes || len(drop) == 0 {
		return nil, total, nil
	}
	if err := d.DeleteLTXFiles(ctx, drop); err != nil {
		return nil, total, err
	}
	return drop, total, nil
}

// DropThrough deletes the staged files of every level that end at or
// before txid: after a takeover, the history before the new one's start.
func (d *Dir) DropThrough(ctx context.Context, txid ltx.TXID) error {
	for level := 0; level <= storage.MaxLevel; level++ {
		files, err := d.LTXFiles(ctx, level)
		if err != nil {
			return fmt.Errorf("list staged files in %s: %w", d.path, err)
		}
		var old []*ltx.FileInfo
		for _, f := range files {
			if f.MaxTXID <= txid {
				old = append(old, f)
			}
		}
		if err := d.DeleteLTXFiles(ctx, old); err != nil {
			return err
		}
	}
	return nil
}

// Bytes returns the size of the staged files, every level.
func (d *Dir) Bytes(ctx context.Context) (int64, error) {
	var total int64
	err := d.each(ctx, func(f *ltx.FileInfo) { total += f.Size })
	return total, err
}

// each calls fn with every staged file, level by level.
func (d *Dir) each(ctx context.Context, fn func(*ltx.FileInfo)) error {
	for level := 0; level <= storage.SnapshotLevel; level++ {
		files, err := d.LTXFiles(ctx, level)
		if err != nil {
			return err
		}
		for _, f := range files {
			fn(f)
		}
	}
	return nil
}
