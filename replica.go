package walship

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// Replica ships a database's staged LTX files to one destination. Each replica
// progresses on its own: a slow or failing one holds back neither the others
// nor the database.
type Replica struct {
	Name   string
	Client storage.Client

	db  *DB
	log *slog.Logger

	mu         sync.Mutex
	pos        ltx.Pos     // newest file the replica holds
	lastHeader *ltx.Header // header of that file
	err        error       // last upload error, nil once it recovers
	known      bool        // pos and index were read from the destination
	wakeC      chan struct{}
	// index lists the replica's files by level, sorted by MinTXID. It is
	// read once at start and then kept up to date by the replica's own
	// writes and deletes, so retention needs no listing.
	index [storage.MaxLevel + 1][]*ltx.FileInfo
}

// NewReplica returns a replica named name that writes through client.
func NewReplica(name string, client storage.Client) *Replica {
	if name == "" {
		name = client.Type()
	}
	return &Replica{Name: name, Client: client, wakeC: make(chan struct{}, 1), log: slog.Default()}
}

// Pos returns the newest position the replica holds.
func (r *Replica) Pos() ltx.Pos {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// Err returns the error of the last failed upload, or nil.
func (r *Replica) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *Replica) wake() {
	select {
	case r.wakeC <- struct{}{}:
	default:
	}
}

// loadPosOnce lists the replica and learns its newest file. On failure the
// error is kept as the replica's, so the staging cap treats it as failing.
func (r *Replica) loadPosOnce(ctx context.Context) error {
	index, err := listAll(ctx, r.Client)
	var pos ltx.Pos
	var hdr *ltx.Header
	if err == nil {
		pos, hdr, err = newestPos(ctx, r.Client, &index)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.err = fmt.Errorf("read the replica's position: %w", err)
		return err
	}
	r.pos, r.lastHeader, r.err, r.index, r.known = pos, hdr, nil, index, true
	return nil
}

// loadPos retries loadPosOnce while the destination is unreachable, until
// ctx ends.
func (r *Replica) loadPos(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := r.loadPosOnce(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := backoff(attempt)
		r.log.Error("cannot read the replica's position; retrying", "error", err, "retry_in", d.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

// errForeignHistory marks a replica that holds a history this database did
// not write.
var errForeignHistory = errors.New("the replica's history is not this database's")

// Known reports whether the replica's position has been read.
func (r *Replica) Known() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.known
}

func listAll(ctx context.Context, c storage.Client) (index [storage.MaxLevel + 1][]*ltx.FileInfo, err error) {
	for level := range index {
		if index[level], err = c.LTXFiles(ctx, level); err != nil {
			return index, err // it names the replica
		}
	}
	return index, nil
}

// newestPos returns the position of the newest file of an index and that
// file's header; a zero Pos for an empty replica.
func newestPos(ctx context.Context, c storage.Client, index *[storage.MaxLevel + 1][]*ltx.FileInfo) (ltx.Pos, *ltx.Header, error) {
	var newest *ltx.FileInfo
	for _, files := range index {
		if n := len(files); n > 0 && (newest == nil || files[n-1].MaxTXID > newest.MaxTXID) {
			newest = files[n-1]
		}
	}
	if newest == nil {
		return ltx.Pos{}, nil, nil
	}
	hdr, trailer, err := ReadHeaderTrailer(ctx, c, newest)
	if err != nil {
		return ltx.Pos{}, nil, err
	}
	return ltx.NewPos(newest.MaxTXID, trailer.PostApplyChecksum), &hdr, nil
}

// ReplicaPos returns the position of the newest file in a replica and that
// file's header; a zero Pos for an empty replica.
func ReplicaPos(ctx context.Context, c storage.Client) (ltx.Pos, *ltx.Header, error) {
	index, err := listAll(ctx, c)
	if err != nil {
		return ltx.Pos{}, nil, err
	}
	return newestPos(ctx, c, &index)
}

// holds reports whether the replica has the staged file f, or has moved past
// it (a replica's level-0 position can jump over files by a snapshot).
func (r *Replica) holds(f *ltx.FileInfo) bool {
	if f.Level == 0 {
		return r.Pos().TXID >= f.MaxTXID
	}
	return r.levelMax(f.Level) >= f.MaxTXID
}

// levelMax returns the newest TXID the replica holds at a level.
func (r *Replica) levelMax(level int) ltx.TXID {
	r.mu.Lock()
	defer r.mu.Unlock()
	if fs := r.index[level]; len(fs) > 0 {
		return fs[len(fs)-1].MaxTXID
	}
	return 0
}

// ReadHeaderTrailer reads the header and trailer of one file with two ranged
// reads.
func ReadHeaderTrailer(ctx context.Context, c storage.Client, f *ltx.FileInfo) (ltx.Header, ltx.Trailer, error) {
	var hdr ltx.Header
	var trailer ltx.Trailer
	name := storage.Describe(f.Level, f.MinTXID, f.MaxTXID)
	if f.Size < ltx.HeaderSize+ltx.TrailerSize {
		return hdr, trailer, fmt.Errorf("replica %s: %s is truncated (%d bytes)", c, name, f.Size)
	}
	b, err := readRange(ctx, c, f, 0, ltx.HeaderSize)
	if err != nil {
		return hdr, trailer, err
	}
	if err := hdr.UnmarshalBinary(b); err != nil {
		return hdr, trailer, fmt.Errorf("replica %s: %s: bad header: %w", c, name, err)
	}
	if b, err = readRange(ctx, c, f, f.Size-ltx.TrailerSize, ltx.TrailerSize); err != nil {
		return hdr, trailer, err
	}
	if err := trailer.UnmarshalBinary(b); err != nil {
		return hdr, trailer, fmt.Errorf("replica %s: %s: bad trailer: %w", c, name, err)
	}
	if hdr.MinTXID != f.MinTXID || hdr.MaxTXID != f.MaxTXID {
		return hdr, trailer, fmt.Errorf("replica %s: %s has TXIDs %s-%s in its header", c, name, hdr.MinTXID, hdr.MaxTXID)
	}
	return hdr, trailer, nil
}

func readRange(ctx context.Context, c storage.Client, f *ltx.FileInfo, off, n int64) ([]byte, error) {
	rc, err := c.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("replica %s: read %s: %w", c, storage.Describe(f.Level, f.MinTXID, f.MaxTXID), err)
	}
	return b, nil
}

// run uploads staged files until ctx ends, backing off while the destination
// fails.
func (r *Replica) run(ctx context.Context) {
	attempt := 0
	for {
		err := r.upload(ctx)
		if errors.Is(err, errForeignHistory) {
			r.log.Error("replica stopped", "error", err)
			return
		}
		var wait <-chan time.Time
		if err != nil && ctx.Err() == nil {
			d := backoff(attempt)
			attempt++
			r.log.Error("replication to the replica failed; the database is unaffected and staged files are kept until it recovers", "error", err, "retry_in", d.String())
			wait = time.After(d)
		} else {
			attempt = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wakeC:
		case <-wait:
		}
	}
}

// upload ships every staged file newer than the replica's position, in order.
func (r *Replica) upload(ctx context.Context) error {
	err := r.uploadOnce(ctx)
	r.mu.Lock()
	prev := r.err
	r.err = err
	r.mu.Unlock()
	if err == nil && prev != nil {
		r.log.Info("replica recovered", "txid", r.Pos().TXID.String())
	}
	return err
}

func (r *Replica) uploadOnce(ctx context.Context) error {
	if !r.Known() {
		// Unreachable when the database opened: learn where it is first.
		if err := r.loadPosOnce(ctx); err != nil {
			return err
		}
		if pos, local := r.Pos(), r.db.Pos(); pos.TXID > local.TXID {
			// Shipping anything would give one of its TXIDs a second
			// content.
			r.mu.Lock()
			r.known = false
			r.mu.Unlock()
			return fmt.Errorf("replica %s holds TXIDs up to %s, beyond this database's history (%s): another process may be replicating to the same destination, or the staging directory %s was restored from an old copy; walship does not write to it until it is restarted with a destination of its own: %w",
				r.Client, pos.TXID, local.TXID, r.db.opts.MetaPath, errForeignHistory)
		}
		r.log.Info("replica reachable; catching up", "txid", r.Pos().TXID.String())
	}
	// Read the engine's position before listing: every file up to it is
	// then in the listing (a file is staged before the position moves).
	committed := r.db.Pos().TXID
	staging := r.db.staging
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
		hdr, trailer, err := ReadHeaderTrailer(ctx, staging, f)
		if err != nil {
			return err
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
			if err := r.putMerged(ctx, batch); err != nil {
				return err
			}
			i += len(batch)
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
			return fmt.Errorf("replica %s is at TXID %s and the staged history that would bring it to %s was dropped; a snapshot is on its way", r.Name, pos.TXID, committed)
		}
	}
	for level := 1; level < storage.SnapshotLevel; level++ {
		if err := r.uploadLevel(ctx, level); err != nil {
			return err
		}
	}
	if err := r.uploadLevel(ctx, storage.SnapshotLevel); err != nil {
		return err
	}
	return r.db.pruneStaging(ctx)
}

// uploadLevel ships the staged files of a compaction level, or the staged
// snapshots, that the replica does not hold yet.
func (r *Replica) uploadLevel(ctx context.Context, level int) error {
	files, err := r.db.staging.LTXFiles(ctx, level)
	if err != nil {
		return fmt.Errorf("list staged level %d files: %w", level, err)
	}
	for _, f := range files {
		// A compacted file or snapshot goes only to a replica whose
		// level-0 chain has reached its end, so that it never stands in
		// for restore points the replica has not received.
		if f.MaxTXID <= r.levelMax(level) || f.MaxTXID > r.Pos().TXID {
			continue
		}
		hdr, trailer, err := ReadHeaderTrailer(ctx, r.db.staging, f)
		if err != nil {
			return err
		}
		if err := r.put(ctx, f, hdr, trailer); err != nil {
			return err
		}
	}
	return nil
}

// put uploads one staged level-0 file; a file that starts at TXID 1 is a
// snapshot and is written to the snapshot level as well.
func (r *Replica) put(ctx context.Context, f *ltx.FileInfo, hdr ltx.Header, trailer ltx.Trailer) error {
	levels := []int{f.Level}
	if f.Level == 0 && hdr.IsSnapshot() {
		levels = append(levels, storage.SnapshotLevel)
	}
	for _, level := range levels {
		rc, err := r.db.staging.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, 0, 0)
		if err != nil {
			return err
		}
		_, err = r.Client.WriteLTXFile(ctx, level, f.MinTXID, f.MaxTXID, rc, time.UnixMilli(hdr.Timestamp))
		rc.Close()
		if err != nil {
			return err
		}
	}
	r.mu.Lock()
	if (f.Level == 0 || f.Level == storage.SnapshotLevel) && f.MaxTXID > r.pos.TXID {
		r.pos = ltx.NewPos(f.MaxTXID, trailer.PostApplyChecksum)
		r.lastHeader = &hdr
	}
	for _, level := range levels {
		r.addToIndex(&ltx.FileInfo{Level: level, MinTXID: f.MinTXID, MaxTXID: f.MaxTXID, Size: f.Size, CreatedAt: time.UnixMilli(hdr.Timestamp).UTC()})
	}
	r.mu.Unlock()
	r.log.Debug("uploaded", "file", storage.Describe(f.Level, f.MinTXID, f.MaxTXID))
	return nil
}

// mergeTempPattern names the temporary files of merged uploads in the
// staging directory; Open removes any a crash left.
const mergeTempPattern = ".merge-*.tmp"

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
		return files[:1] // a snapshot: it goes to the snapshot level too
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
	batch, err := samePageSize(ctx, r.db.staging, files[:n])
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
	if _, err := verifyChain(ctx, r.db.staging, batch); err != nil {
		return fail(err)
	}
	tmp, err := os.CreateTemp(r.db.opts.MetaPath, mergeTempPattern)
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	bw := bufio.NewWriterSize(tmp, 256<<10)
	if err := r.db.merge(ctx, batch, bw); err != nil {
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
	if _, err := r.Client.WriteLTXFile(ctx, 0, first.MinTXID, last.MaxTXID, io.NewSectionReader(tmp, 0, size), time.UnixMilli(hdr.Timestamp)); err != nil {
		return err
	}
	r.mu.Lock()
	if last.MaxTXID > r.pos.TXID {
		r.pos = ltx.NewPos(last.MaxTXID, trailer.PostApplyChecksum)
		r.lastHeader = &hdr
	}
	r.addToIndex(&ltx.FileInfo{Level: 0, MinTXID: first.MinTXID, MaxTXID: last.MaxTXID, Size: size, CreatedAt: time.UnixMilli(hdr.Timestamp).UTC()})
	r.mu.Unlock()
	r.log.Debug("uploaded merged", "file", storage.Describe(0, first.MinTXID, last.MaxTXID), "inputs", len(batch))
	return nil
}

// uploadSnapshot ships the newest staged snapshot that reaches at least TXID
// atLeast. If there is none it asks the engine for one and reports false.
func (r *Replica) uploadSnapshot(ctx context.Context, atLeast ltx.TXID) (bool, error) {
	snaps, err := r.db.staging.LTXFiles(ctx, storage.SnapshotLevel)
	if err != nil {
		return false, fmt.Errorf("list staged snapshots: %w", err)
	}
	if n := len(snaps); n == 0 || snaps[n-1].MaxTXID < atLeast {
		// A snapshot means reading the whole database: ask for one only
		// when the replica can take it.
		if r.Err() != nil {
			if _, err := r.Client.LTXFiles(ctx, storage.SnapshotLevel); err != nil {
				return false, fmt.Errorf("replica %s: %w", r.Client, err)
			}
		}
		r.db.requestSnapshot(fmt.Sprintf("replica %s is at TXID %s and the staged files start after it", r.Name, r.Pos().TXID))
		return false, nil
	}
	snap := snaps[len(snaps)-1]
	hdr, trailer, err := ReadHeaderTrailer(ctx, r.db.staging, snap)
	if err != nil {
		return false, err
	}
	r.log.Warn("the replica's history has a gap; shipping a snapshot to continue from", "snapshot", storage.Describe(snap.Level, snap.MinTXID, snap.MaxTXID), "replica_txid", r.Pos().TXID.String())
	return true, r.put(ctx, snap, hdr, trailer)
}

// addToIndex records a file the replica now holds. r.mu must be held.
func (r *Replica) addToIndex(f *ltx.FileInfo) {
	fs := r.index[f.Level]
	i, found := slices.BinarySearchFunc(fs, f, func(a, b *ltx.FileInfo) int {
		return cmp.Or(cmp.Compare(a.MinTXID, b.MinTXID), cmp.Compare(a.MaxTXID, b.MaxTXID))
	})
	if found {
		fs[i] = f
	} else {
		r.index[f.Level] = slices.Insert(fs, i, f)
	}
}

// enforceRetention deletes the replica's files that no restore point inside
// the policy needs. It decides from the index, so it lists nothing, and when
// nothing expired it sends no request at all.
func (r *Replica) enforceRetention(ctx context.Context, policy RetentionPolicy, now time.Time) error {
	r.mu.Lock()
	expired := policy.Expired(&r.index, now)
	r.mu.Unlock()
	if len(expired) == 0 {
		return nil
	}
	if err := r.Client.DeleteLTXFiles(ctx, expired); err != nil {
		return fmt.Errorf("replica %s: retention: %w", r.Name, err)
	}
	gone := make(map[*ltx.FileInfo]bool, len(expired))
	for _, f := range expired {
		gone[f] = true
	}
	r.mu.Lock()
	for level := range r.index {
		r.index[level] = slices.DeleteFunc(r.index[level], func(f *ltx.FileInfo) bool { return gone[f] })
	}
	r.mu.Unlock()
	r.log.Debug("retention", "deleted", len(expired))
	return nil
}

// backoff returns the wait before retry number attempt: exponential from
// 100ms to 30s, with jitter.
func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 9)
	d = min(d, 30*time.Second)
	return d/2 + rand.N(d/2+1)
}
