package staging

import (
	"context"
	"fmt"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// walk is the outcome of walking the staged level-0 files from a position.
type walk struct {
	end        ltx.Pos
	at         *WALPoint
	unchained  []*ltx.FileInfo // files from the first that does not continue end
	unreadable bool            // the first of unchained could not be read
}

// walk extends pos by the staged level-0 files that chain onto it, in
// order, and reports the files from the first that does not.
func (d *Dir) walk(ctx context.Context, pos ltx.Pos, at *WALPoint) (walk, error) {
	files, err := d.LTXFiles(ctx, 0)
	if err != nil {
		return walk{}, fmt.Errorf("list staged files in %s: %w", d.path, err)
	}
	for i, f := range files {
		hdr, trailer, err := storage.ReadHeaderTrailer(ctx, d, f)
		if err != nil {
			return walk{end: pos, at: at, unchained: files[i:], unreadable: true}, nil
		}
		if f.MaxTXID <= pos.TXID {
			if f.MaxTXID == pos.TXID && trailer.PostApplyChecksum == pos.PostApplyChecksum {
				at = PointOf(&hdr)
			}
			continue
		}
		chains := f.MinTXID == pos.TXID+1 &&
			(hdr.PreApplyChecksum == pos.PostApplyChecksum || (pos.TXID == 0 && hdr.IsSnapshot()))
		if !chains {
			return walk{end: pos, at: at, unchained: files[i:]}, nil
		}
		pos, at = ltx.NewPos(f.MaxTXID, trailer.PostApplyChecksum), PointOf(&hdr)
	}
	return walk{end: pos, at: at}, nil
}

// localBase is where the local history begins: the state before the oldest
// staged level-0 file, or, when nothing is staged, the position file's.
func (d *Dir) localBase(ctx context.Context) (ltx.Pos, error) {
	files, err := d.LTXFiles(ctx, 0)
	if err != nil {
		return ltx.Pos{}, fmt.Errorf("list staged files in %s: %w", d.path, err)
	}
	if len(files) > 0 {
		hdr, _, err := storage.ReadHeaderTrailer(ctx, d, files[0])
		if err != nil || hdr.IsSnapshot() {
			return ltx.Pos{TXID: files[0].MinTXID - 1}, nil
		}
		return ltx.NewPos(files[0].MinTXID-1, hdr.PreApplyChecksum), nil
	}
	if p, _, err := d.ReadPosition(); err == nil {
		return p, nil
	}
	return ltx.Pos{}, nil
}

// Whole reports whether the directory holds the whole history any replica
// can have: the staged files chain from base, the newest position of the
// replicas that answered (nil when none did: then from the oldest staged
// file), up to the position file's TXID. Every file is staged before it is
// uploaded, so then no replica can hold a TXID beyond it.
func (d *Dir) Whole(ctx context.Context, base *ltx.Pos) (bool, error) {
	var pos ltx.Pos
	if base != nil {
		pos = *base
	} else {
		var err error
		if pos, err = d.localBase(ctx); err != nil {
			return false, err
		}
	}
	w, err := d.walk(ctx, pos, nil)
	if err != nil {
		return false, err
	}
	if len(w.unchained) > 0 {
		return false, nil
	}
	recorded, _, err := d.ReadPosition()
	if err != nil {
		return false, nil // no record of how far the history went
	}
	return w.end.TXID >= recorded.TXID && w.end.TXID > 0, nil
}

// Resolve returns the newest position that continues every replica's, and
// where in the WAL its state was captured (nil if unknown): base, the
// newest position of the replicas that answered and the header of their
// newest file, extended by the staged files that chain onto it. With no
// replica answering (base nil), the local history is the base, which Whole
// said is whole.
//
// Staged files that do not chain were never published and are removed, and
// so are compacted files and snapshots staged beyond the position: they
// belong to a history that was discarded, and shipping one would give a
// TXID two contents.
func (d *Dir) Resolve(ctx context.Context, base *ltx.Pos, baseHeader *ltx.Header) (ltx.Pos, *WALPoint, error) {
	var pos ltx.Pos
	var at *WALPoint
	if base != nil {
		pos, at = *base, PointOf(baseHeader)
	} else {
		var err error
		if pos, err = d.localBase(ctx); err != nil {
			return ltx.Pos{}, nil, err
		}
	}
	w, err := d.walk(ctx, pos, at)
	if err != nil {
		return ltx.Pos{}, nil, err
	}
	pos, at = w.end, w.at
	if rest := w.unchained; len(rest) > 0 {
		if w.unreadable {
			d.log.Warn("discarding an unreadable staged file", "file", storage.Describe(0, rest[0].MinTXID, rest[0].MaxTXID))
		} else {
			d.log.Warn("discarding staged files that do not continue the replica's history",
				"first", storage.Describe(0, rest[0].MinTXID, rest[0].MaxTXID), "replica_txid", pos.TXID.String())
		}
		if err := d.DeleteLTXFiles(ctx, rest); err != nil {
			return ltx.Pos{}, nil, err
		}
	}
	for level := 1; level <= storage.MaxLevel; level++ {
		staged, err := d.LTXFiles(ctx, level)
		if err != nil {
			return ltx.Pos{}, nil, fmt.Errorf("list staged files in %s: %w", d.path, err)
		}
		var beyond []*ltx.FileInfo
		for _, f := range staged {
			if f.MaxTXID > pos.TXID {
				beyond = append(beyond, f)
			}
		}
		if err := d.DeleteLTXFiles(ctx, beyond); err != nil {
			return ltx.Pos{}, nil, err
		}
	}
	if p, recorded, err := d.ReadPosition(); err == nil && p == pos {
		at = recorded
	}
	return pos, at, nil
}
