package ship

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
)

// Repair makes the replica upload a snapshot of the newest state it holds,
// or a later one: its files no longer reach that state, for the reason why.
// The snapshot is uploaded even if the replica holds one of that TXID
// already (a damaged one).
//
// A replica heals itself this way: when its files no longer reach the
// newest state it holds (an operator or a lifecycle rule deleted them, a
// file was cut short, a verification found one damaged), the latest state
// and every later one restore again once the snapshot is uploaded. What no
// repair gives back is the history before it that depended on the lost
// files: the log says which files those were.
func (r *Replica) Repair(why string) {
	r.mu.Lock()
	// A repair asked for while another is being uploaded must not be
	// lost with it: it raises the target, and the generation tells
	// uploadRepair that its snapshot may not be the one asked for.
	r.repair = max(r.repair, r.pos.TXID, 1)
	r.repairGen++
	if r.repairWhy == "" {
		r.repairWhy = why
	}
	r.mu.Unlock()
	r.Wake()
}

// Repairing reports whether a repair snapshot is on its way.
func (r *Replica) Repairing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.repair != 0
}

// uploadRepair uploads the snapshot a repair waits for, once it is staged
// and the replica's level-0 chain has reached it; until then it asks the
// engine for one.
func (r *Replica) uploadRepair(ctx context.Context) error {
	r.mu.Lock()
	want, gen, why, pos := r.repair, r.repairGen, r.repairWhy, r.pos.TXID
	r.mu.Unlock()
	if want == 0 {
		return nil
	}
	snaps, err := r.src.Staging.LTXFiles(ctx, storage.SnapshotLevel)
	if err != nil {
		return fmt.Errorf("list staged snapshots: %w", err)
	}
	var snap *ltx.FileInfo
	for _, f := range snaps {
		if f.MaxTXID >= want && f.MaxTXID <= pos {
			snap = f
		}
	}
	if snap == nil {
		r.src.RequestSnapshot("repair of replica " + r.name + ": " + why)
		return nil
	}
	hdr, trailer, err := storage.ReadHeaderTrailer(ctx, r.src.Staging, snap)
	if err != nil {
		return err
	}
	if err := r.put(ctx, snap, hdr, trailer); err != nil {
		return err
	}
	r.mu.Lock()
	done := r.repairGen == gen
	if done {
		r.repair, r.repairWhy = 0, ""
	}
	r.mu.Unlock()
	if !done {
		r.Wake() // asked for again meanwhile: another pass uploads that one
		return nil
	}
	r.log.Info("replica repaired: uploaded a snapshot; the latest state and every later one restore again", "snapshot", storage.Describe(snap.Level, snap.MinTXID, snap.MaxTXID))
	return nil
}

// checkRestorable returns why a restore of TXID txid cannot be planned
// from the files of index (their names: nothing is read) without reading
// a file of suspect, or nil if it can.
func checkRestorable(name string, index *[storage.MaxLevel + 1][]*ltx.FileInfo, txid ltx.TXID, suspect ...*ltx.FileInfo) error {
	if txid == 0 {
		return nil
	}
	var files []*ltx.FileInfo
	for _, fs := range index {
		files = append(files, fs...)
	}
	plan, err := restore.NewListing(name, files).Plan(restore.Target{TXID: txid})
	if err != nil {
		return err
	}
	for _, f := range plan.Files {
		for _, s := range suspect {
			if byTXIDs(f, s) == 0 && f.Level == s.Level {
				return fmt.Errorf("a restore reads %s, whose size is not what was written", storage.Describe(f.Level, f.MinTXID, f.MaxTXID))
			}
		}
	}
	return nil
}

// Audit lists the replica's destination and compares it with what the
// replica wrote there. A file gone, or of another size than written, is
// logged as an error, once; when what is left no longer reaches the newest
// state, the replica repairs itself (see Repair). Audit reports whether it
// found anything wrong.
//
// It lists only when the replica wrote something since the last audit:
// an idle database costs no request.
func (r *Replica) Audit(ctx context.Context) (bool, error) {
	r.mu.Lock()
	due := r.wrote && r.known && r.lost == nil
	r.mu.Unlock()
	if !due {
		return false, nil
	}
	// Retention deletes files and then drops them from the index: not in
	// the middle of an audit, or its deletions would read as losses.
	r.maint.Lock()
	defer r.maint.Unlock()
	r.mu.Lock()
	r.wrote = false
	before := r.index // each level's slice is cloned below: addToIndex changes them in place
	for level := range before {
		before[level] = slices.Clone(before[level])
	}
	r.mu.Unlock()

	var listed [storage.MaxLevel + 1][]*ltx.FileInfo
	for level := range listed {
		if len(before[level]) == 0 && level != 0 && level != storage.SnapshotLevel {
			continue // a level the replica holds nothing at: nothing to lose
		}
		fs, err := r.client.LTXFiles(ctx, level)
		if err != nil {
			r.mu.Lock()
			r.wrote = true // audit again next time
			r.mu.Unlock()
			return false, fmt.Errorf("replica %s: audit: %w", r.name, err)
		}
		listed[level] = fs
	}

	var missing, altered []*ltx.FileInfo
	r.mu.Lock()
	for level, fs := range before {
		for _, f := range fs {
			if find(r.index[level], f) != f {
				continue // written again since the listing began
			}
			g := find(listed[level], f)
			switch {
			case g == nil:
				missing = append(missing, f)
			case f.Size > 0 && g.Size > 0 && g.Size != f.Size:
				altered = append(altered, g)
			}
		}
	}
	// The listing is the truth, except for files written since it began.
	for level := range r.index {
		for _, f := range r.index[level] {
			if find(before[level], f) != f {
				listed[level] = upsert(listed[level], f)
			}
		}
	}
	r.index = listed
	var lost error
	if len(missing) > 0 || len(altered) > 0 {
		lost = checkRestorable(r.client.String(), &r.index, r.pos.TXID, altered...)
	}
	r.mu.Unlock()

	if len(missing) == 0 && len(altered) == 0 {
		return false, nil
	}
	args := []any{"missing", len(missing), "altered", len(altered), "files", sample(append(missing, altered...))}
	if lost == nil {
		r.log.Error("files of the replica were deleted or changed by something other than walship; what is left still restores the latest state", args...)
		return true, nil
	}
	why := "its files were deleted or changed by something other than walship"
	if upTo, ok := emptied(&before, missing); ok {
		why = fmt.Sprintf("the replica was emptied: every file it held up to TXID %s was deleted by something other than walship", upTo)
	}
	r.log.Error("the replica's files no longer restore its latest state; walship uploads a new snapshot, and restore points that needed the lost files may be gone", append(args, "reason", why, "restore_error", lost.Error())...)
	r.Repair(why)
	return true, nil
}

// upsert puts f into fs (sorted by TXIDs) in place of the file with its
// TXIDs, if any.
func upsert(fs []*ltx.FileInfo, f *ltx.FileInfo) []*ltx.FileInfo {
	i, ok := slices.BinarySearchFunc(fs, f, byTXIDs)
	if ok {
		fs[i] = f
		return fs
	}
	return slices.Insert(fs, i, f)
}

// find returns the file of fs (sorted by TXIDs) with f's TXIDs, or nil.
func find(fs []*ltx.FileInfo, f *ltx.FileInfo) *ltx.FileInfo {
	i, ok := slices.BinarySearchFunc(fs, f, byTXIDs)
	if !ok {
		return nil
	}
	return fs[i]
}

// emptied reports whether missing holds every file of index up to the
// newest TXID missing, and that TXID: the replica was emptied while it was
// being written to.
func emptied(index *[storage.MaxLevel + 1][]*ltx.FileInfo, missing []*ltx.FileInfo) (ltx.TXID, bool) {
	var upTo ltx.TXID
	for _, f := range missing {
		upTo = max(upTo, f.MaxTXID)
	}
	n := 0
	for _, fs := range index {
		for _, f := range fs {
			if f.MaxTXID <= upTo {
				n++
			}
		}
	}
	return upTo, n == len(missing)
}

// sample names up to five files, for a log line.
func sample(files []*ltx.FileInfo) string {
	var names []string
	for i, f := range files {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(files)-i))
			break
		}
		names = append(names, storage.Describe(f.Level, f.MinTXID, f.MaxTXID))
	}
	return strings.Join(names, ", ")
}
