package ship

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/event"
	"github.com/walship/walship/internal/levels"
	"github.com/walship/walship/internal/owner"
	"github.com/walship/walship/storage"
)

// Upload ships every staged file newer than the replica's position, in
// order, and keeps the outcome as the replica's error.
func (r *Replica) Upload(ctx context.Context) error {
	err := r.uploadOnce(ctx)
	failed := err != nil && !errors.Is(err, errSnapshotPending) && ctx.Err() == nil
	r.mu.Lock()
	prev := r.err
	r.err = err
	if failed {
		r.failures++
	}
	r.mu.Unlock()
	if failed {
		r.emit(event.Event{Kind: event.UploadError, ErrKind: errKind(err)})
	}
	if err == nil && prev != nil {
		r.log.Info("replica recovered", "txid", r.Pos().TXID.String())
	}
	return err
}

func (r *Replica) uploadOnce(ctx context.Context) error {
	staging := r.src.Staging
	if !r.Known() {
		// Unreachable when the database opened: learn where it is first.
		if err := r.LoadPos(ctx); err != nil {
			return err
		}
		if pos, local := r.Pos(), r.src.Pos(); pos.TXID > local.TXID {
			// Shipping anything would give one of its TXIDs a second
			// content.
			r.mu.Lock()
			r.known = false
			r.mu.Unlock()
			return fmt.Errorf("replica %s holds TXIDs up to %s, beyond this database's history (%s): another process may be replicating to the same destination, or the staging directory %s was restored from an old copy; walship does not write to it until it is restarted with a destination of its own: %w",
				r.client, pos.TXID, local.TXID, staging.Path(), errForeignHistory)
		}
		r.log.Info("replica reachable; catching up", "txid", r.Pos().TXID.String())
		r.CheckRestorable()
	}
	// Read the engine's position before listing: every file up to it is
	// then in the listing (a file is staged before the position moves).
	committed := r.src.Pos().TXID
	files, err := staging.LTXFiles(ctx, 0)
	if err != nil {
		return fmt.Errorf("list staged files: %w", err)
	}
	for i := 0; i < len(files); {
		f := files[i]
		if f.MaxTXID > committed {
			break // being written, or left by a failed write: not part of the history
		}
		pos := r.Pos()
		if f.MaxTXID <= pos.TXID {
			i++
			continue
		}
		if f.MaxTXID <= r.damagedThrough {
			// Found damaged by a merge: only a snapshot goes past it.
			ok, err := r.uploadSnapshot(ctx, r.damagedThrough)
			if err != nil || !ok {
				return err
			}
			continue
		}
		hdr, trailer, err := storage.ReadHeaderTrailer(ctx, staging, f)
		if err != nil {
			return err
		}
		if hdr.IsSnapshot() && f.MinTXID != pos.TXID+1 {
			// A full copy that starts a history apart from the
			// replica's (the database took the replica over): it goes
			// to the snapshot level, and the level-0 chain continues
			// from it, so that the new history's first restore points
			// do not wait for a later snapshot.
			if err := r.putTo(ctx, f, hdr, trailer, storage.SnapshotLevel); err != nil {
				return err
			}
			i++
			continue
		}
		if f.MinTXID != pos.TXID+1 || (!hdr.IsSnapshot() && hdr.PreApplyChecksum != pos.PostApplyChecksum) {
			// The staged history does not reach back to the replica's
			// position (it is empty, or it was away while staging was
			// pruned): ship a snapshot, then continue after it.
			ok, err := r.uploadSnapshot(ctx, f.MinTXID-1)
			if err != nil || !ok {
				return err
			}
			continue // f again, against the new position
		}
		if batch := r.backlog(ctx, files[i:], committed); len(batch) > 1 {
			err := r.putMerged(ctx, batch)
			if err == nil {
				i += len(batch)
				continue
			}
			var broken *levels.ChainError
			if !errors.As(err, &broken) {
				return err
			}
			// Ship what chains before the break, verified; then go past
			// a damaged file with a snapshot. A file that is sound but
			// does not chain is found by the check above, as any is.
			if n := broken.Index; n >= 2 {
				if err := r.putMerged(ctx, batch[:n]); err != nil {
					return err
				}
				i += n
			} else if n == 1 {
				if err := r.put(ctx, f, hdr, trailer); err != nil {
					return err
				}
				i++
			}
			if broken.Corrupt {
				r.log.Error("a staged file is damaged; the replica goes past it with a snapshot", "error", err)
				r.damagedThrough = max(r.damagedThrough, broken.File().MaxTXID)
			}
			continue
		}
		if err := r.put(ctx, f, hdr, trailer); err != nil {
			return err
		}
		i++
	}
	if pos := r.Pos(); pos.TXID < committed {
		// Nothing staged continues the replica up to the engine's position
		// (the staged history was dropped while it was away).
		ok, err := r.uploadSnapshot(ctx, committed)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("replica %s is at TXID %s and the staged history that would bring it to %s was dropped: %w", r.name, pos.TXID, committed, errSnapshotPending)
		}
	}
	if err := r.uploadRepair(ctx); err != nil {
		return err
	}
	for level := 1; level < storage.SnapshotLevel; level++ {
		if err := r.uploadLevel(ctx, level); err != nil {
			return err
		}
	}
	if err := r.uploadLevel(ctx, storage.SnapshotLevel); err != nil {
		return err
	}
	return r.src.Uploaded(ctx)
}

// uploadLevel ships the staged files of a compaction level, or the staged
// snapshots, that the replica does not hold yet.
func (r *Replica) uploadLevel(ctx context.Context, level int) error {
	files, err := r.src.Staging.LTXFiles(ctx, level)
	if err != nil {
		return fmt.Errorf("list staged level %d files: %w", level, err)
	}
	for _, f := range files {
		// A compacted file or snapshot goes only to a replica whose
		// level-0 chain has reached its end, so that it never stands in
		// for restore points the replica has not received.
		if f.MaxTXID <= r.LevelMax(level) || f.MaxTXID > r.Pos().TXID {
			continue
		}
		hdr, trailer, err := storage.ReadHeaderTrailer(ctx, r.src.Staging, f)
		if err != nil {
			return err
		}
		if err := r.put(ctx, f, hdr, trailer); err != nil {
			return err
		}
	}
	return nil
}

// put uploads one staged file. A level-0 file that starts at TXID 1 is a
// snapshot, the first of a history: it goes to the snapshot level only, and
// the level-0 chain continues from it, so that the whole database is
// uploaded (and, for an encrypted replica, sealed) once rather than twice.
// Litestream 0.5 takes its position from level 0 alone, so a replica kept
// for it receives the file at both levels.
func (r *Replica) put(ctx context.Context, f *ltx.FileInfo, hdr ltx.Header, trailer ltx.Trailer) error {
	if f.Level == 0 && hdr.IsSnapshot() {
		r.mu.Lock()
		compatible := r.compatible
		r.mu.Unlock()
		if compatible {
			return r.putTo(ctx, f, hdr, trailer, 0, storage.SnapshotLevel)
		}
		return r.putTo(ctx, f, hdr, trailer, storage.SnapshotLevel)
	}
	return r.putTo(ctx, f, hdr, trailer, f.Level)
}

// putTo uploads one staged file to the given levels of the replica.
func (r *Replica) putTo(ctx context.Context, f *ltx.FileInfo, hdr ltx.Header, trailer ltx.Trailer, levels ...int) error {
	wctx, done, err := r.ensureOwner(ctx)
	if err != nil {
		return err
	}
	defer done()
	open := func() (io.ReadCloser, error) {
		return r.src.Staging.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, 0, 0)
	}
	size, err := r.write(wctx, levels, f.MinTXID, f.MaxTXID, open, f.Size, trailer.PostApplyChecksum, time.UnixMilli(hdr.Timestamp))
	if err != nil {
		return err
	}
	r.mu.Lock()
	if (f.Level == 0 || f.Level == storage.SnapshotLevel) && f.MaxTXID > r.pos.TXID {
		r.pos = ltx.NewPos(f.MaxTXID, trailer.PostApplyChecksum)
		r.lastHeader = &hdr
	}
	for _, level := range levels {
		r.addToIndex(&ltx.FileInfo{Level: level, MinTXID: f.MinTXID, MaxTXID: f.MaxTXID, Size: size, CreatedAt: time.UnixMilli(hdr.Timestamp).UTC()})
	}
	r.mu.Unlock()
	r.log.Debug("uploaded", "file", storage.Describe(f.Level, f.MinTXID, f.MaxTXID))
	return nil
}

// Limits of one merged upload. A replica merges only when mergeMinFiles or
// more files wait: one slow request should not cost restore points.
const (
	mergeMinFiles = 4
	mergeMaxFiles = 1000
	mergeMaxBytes = 16 << 20
)

// backlog returns the leading staged level-0 files, from files[0] (which
// continues the replica), that can go as one merged file: when the replica
// falls behind (sync-interval 0 and a destination with tens of milliseconds
// per request, say), one request then ships every commit since the last
// one, rather than the backlog growing a request at a time. A snapshot, a
// change of page size or a file that does not chain ends the batch.
func (r *Replica) backlog(ctx context.Context, files []*ltx.FileInfo, committed ltx.TXID) []*ltx.FileInfo {
	if files[0].MinTXID == 1 {
		return files[:1] // a snapshot: it goes to the snapshot level
	}
	n, size := 1, files[0].Size
	for n < len(files) && n < mergeMaxFiles {
		f := files[n]
		if f.MaxTXID > committed || f.MinTXID != files[n-1].MaxTXID+1 || size+f.Size > mergeMaxBytes {
			break
		}
		n, size = n+1, size+f.Size
	}
	if n < mergeMinFiles {
		return files[:1]
	}
	batch, err := levels.SamePageSize(ctx, r.src.Staging, files[:n])
	if err != nil || len(batch) < mergeMinFiles {
		return files[:1]
	}
	return batch
}

// putMerged uploads the staged level-0 files batch, which continue the
// replica, as one level-0 file. The inputs are verified first, and the merged
// file after: a corrupt staged file fails the upload rather than being
// merged. The merged file is written to a temporary file of the staging
// directory, not memory: after an outage every replica of a process may be
// catching up at once.
func (r *Replica) putMerged(ctx context.Context, batch []*ltx.FileInfo) error {
	fail := func(err error) error { return fmt.Errorf("merge staged files for upload: %w", err) }
	if _, err := levels.VerifyChain(ctx, r.src.Staging, batch); err != nil {
		return fail(err)
	}
	tmp, err := r.src.Staging.CreateTemp()
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	bw := bufio.NewWriterSize(tmp, 256<<10)
	if err := r.src.Staging.Merge(ctx, batch, bw); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return fail(err)
	}
	dec := ltx.NewDecoder(io.NewSectionReader(tmp, 0, size))
	if err := dec.Verify(); err != nil {
		return fail(err)
	}
	hdr, trailer := dec.Header(), dec.Trailer()
	first, last := batch[0], batch[len(batch)-1]
	wctx, done, err := r.ensureOwner(ctx)
	if err != nil {
		return err
	}
	defer done()
	open := func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(tmp, 0, size)), nil }
	stored, err := r.write(wctx, []int{0}, first.MinTXID, last.MaxTXID, open, size, trailer.PostApplyChecksum, time.UnixMilli(hdr.Timestamp))
	if err != nil {
		return err
	}
	r.mu.Lock()
	if last.MaxTXID > r.pos.TXID {
		r.pos = ltx.NewPos(last.MaxTXID, trailer.PostApplyChecksum)
		r.lastHeader = &hdr
	}
	r.addToIndex(&ltx.FileInfo{Level: 0, MinTXID: first.MinTXID, MaxTXID: last.MaxTXID, Size: stored, CreatedAt: time.UnixMilli(hdr.Timestamp).UTC()})
	r.mu.Unlock()
	r.log.Debug("uploaded merged", "file", storage.Describe(0, first.MinTXID, last.MaxTXID), "inputs", len(batch))
	return nil
}

// uploadSnapshot ships the newest staged snapshot that reaches at least TXID
// atLeast. If there is none it asks for one and reports false.
func (r *Replica) uploadSnapshot(ctx context.Context, atLeast ltx.TXID) (bool, error) {
	snaps, err := r.src.Staging.LTXFiles(ctx, storage.SnapshotLevel)
	if err != nil {
		return false, fmt.Errorf("list staged snapshots: %w", err)
	}
	if n := len(snaps); n == 0 || snaps[n-1].MaxTXID < atLeast {
		// A snapshot means reading the whole database: ask for one only
		// when the replica can take it.
		if r.Err() != nil {
			if _, err := r.client.LTXFiles(ctx, storage.SnapshotLevel); err != nil {
				return false, fmt.Errorf("replica %s: %w", r.client, err)
			}
		}
		r.src.RequestSnapshot(fmt.Sprintf("replica %s is at TXID %s and the staged files start after it", r.name, r.Pos().TXID))
		return false, nil
	}
	snap := snaps[len(snaps)-1]
	hdr, trailer, err := storage.ReadHeaderTrailer(ctx, r.src.Staging, snap)
	if err != nil {
		return false, err
	}
	r.log.Warn("the replica's history has a gap; shipping a snapshot to continue from", "snapshot", storage.Describe(snap.Level, snap.MinTXID, snap.MaxTXID), "replica_txid", r.Pos().TXID.String())
	return true, r.put(ctx, snap, hdr, trailer)
}

// write stores the LTX file that open reads (size bytes, post its
// post-apply checksum) at each of levels of the replica, and returns the
// size stored. A replica that Litestream must be able to restore
// (SetLitestreamCompatible) receives the file without database checksums
// (storage.ToLitestream), converted once into a temporary file of the
// staging directory, from which the destination can retry each upload from
// its start as it does for a staged file.
func (r *Replica) write(ctx context.Context, levels []int, minTXID, maxTXID ltx.TXID, open func() (io.ReadCloser, error), size int64, post ltx.Checksum, createdAt time.Time) (int64, error) {
	r.mu.Lock()
	compatible := r.compatible
	r.mu.Unlock()
	if compatible {
		name := storage.Describe(levels[0], minTXID, maxTXID)
		src, err := open()
		if err != nil {
			return 0, err
		}
		defer src.Close()
		tmp, err := r.src.Staging.CreateTemp()
		if err != nil {
			return 0, fmt.Errorf("copy %s for Litestream: %w", name, err)
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		bw := bufio.NewWriterSize(tmp, 256<<10)
		if _, err := storage.ToLitestream(bw, src, post, r.src.Staging.Path()); err != nil {
			return 0, fmt.Errorf("copy staged %s for Litestream: %w", name, err)
		}
		if err := bw.Flush(); err != nil {
			return 0, fmt.Errorf("copy %s for Litestream: %w", name, err)
		}
		if size, err = tmp.Seek(0, io.SeekCurrent); err != nil {
			return 0, err
		}
		open = func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(tmp, 0, size)), nil }
	}
	for _, level := range levels {
		src, err := open()
		if err != nil {
			return 0, err
		}
		begun := time.Now()
		_, err = r.client.WriteLTXFile(ctx, level, minTXID, maxTXID, src, createdAt)
		src.Close()
		if err != nil {
			return 0, err
		}
		e := event.Since(event.Upload, begun)
		e.Bytes, e.Files = size, 1
		r.emit(e)
	}
	return size, nil
}

// errKind sorts an upload error into one of event's few kinds, so that a
// metric of errors by kind stays small whatever the errors say.
func errKind(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, errForeignHistory) || errors.Is(err, owner.ErrNotOwner):
		return event.ErrStopped
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return event.ErrTimeout
	case errors.As(err, &netErr):
		return event.ErrNetwork
	}
	return event.ErrOther
}
