// Package restore rebuilds a database from a replica: it plans the shortest
// contiguous chain of LTX files that reaches the target (a TXID, a time, or the
// latest state), applies it to a temporary file while verifying every checksum,
// and only then renames the result into place. A restore either produces the
// exact database that was replicated or fails and leaves nothing behind.
// Backups that Litestream v0.3 wrote are read by package litestream03, and
// written to the output as every restore is (RestoreLitestream03).
package restore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// ErrNoFiles is returned when the replica holds no LTX file at all.
var ErrNoFiles = errors.New("the replica holds no backup")

// ErrTooEarly is wrapped by the error of a plan to a time before the
// replica's oldest file.
var ErrTooEarly = errors.New("no backup was written at or before the time")

// tooEarly is the error of a plan to a time before the replica's oldest
// file.
type tooEarly struct{ t time.Time }

func (e tooEarly) Error() string {
	return "no backup was written at or before " + e.t.UTC().Format(time.RFC3339)
}

func (e tooEarly) Is(target error) bool { return target == ErrTooEarly }

// Target says what state to restore: the zero value means the latest.
type Target struct {
	TXID      ltx.TXID  // restore exactly this TXID
	Timestamp time.Time // restore the newest state written at or before this time
}

func (t Target) String() string {
	switch {
	case t.TXID != 0:
		return "TXID " + t.TXID.String()
	case !t.Timestamp.IsZero():
		return "time " + t.Timestamp.UTC().Format(time.RFC3339Nano)
	default:
		return "the latest state"
	}
}

// eligible reports whether f may be part of a restore to t.
func (t Target) eligible(f *ltx.FileInfo) bool {
	if t.TXID != 0 && f.MaxTXID > t.TXID {
		return false
	}
	if !t.Timestamp.IsZero() && f.CreatedAt.After(t.Timestamp) {
		return false
	}
	return true
}

// Plan lists the files to apply, in order.
type Plan struct {
	Files []*ltx.FileInfo
}

// TXID returns the TXID the plan restores.
func (p *Plan) TXID() ltx.TXID {
	if len(p.Files) == 0 {
		return 0
	}
	return p.Files[len(p.Files)-1].MaxTXID
}

// Size returns the total size of the plan's files.
func (p *Plan) Size() int64 {
	var n int64
	for _, f := range p.Files {
		n += f.Size
	}
	return n
}

// CalcPlan lists the replica once and plans a restore to target from that
// listing (see Listing.Plan).
func CalcPlan(ctx context.Context, c storage.Client, target Target) (*Plan, error) {
	l, err := List(ctx, c)
	if err != nil {
		return nil, err
	}
	return l.Plan(target)
}

// Plan finds the newest snapshot at or before the target, then repeatedly
// takes, from any level, the file that continues the chain and reaches
// furthest, until the target is reached. A hole in the chain is an error that
// names the missing TXID range. It does no I/O.
func (l *Listing) Plan(target Target) (*Plan, error) {
	if l.n == 0 {
		return nil, fmt.Errorf("replica %s: %w", l.replica, ErrNoFiles)
	}
	if target.TXID > l.newest {
		return nil, fmt.Errorf("replica %s: TXID %s is not in the backup: the newest TXID is %s", l.replica, target.TXID, l.newest)
	}

	plan := &Plan{}
	var cur ltx.TXID
	// Start from the newest eligible snapshot.
	for _, f := range l.levels[storage.SnapshotLevel] {
		if f.MinTXID == 1 && target.eligible(f) && f.MaxTXID > cur {
			plan.Files, cur = []*ltx.FileInfo{f}, f.MaxTXID
		}
	}
	for target.TXID == 0 || cur < target.TXID {
		best := l.next(cur, target)
		if best == nil {
			break
		}
		plan.Files = append(plan.Files, best)
		cur = best.MaxTXID
	}

	// Did the chain stop short of where it should reach?
	want := target.TXID
	if want == 0 {
		for _, files := range l.levels {
			for _, f := range files {
				if target.eligible(f) {
					want = max(want, f.MaxTXID)
				}
			}
		}
	}
	if cur >= want && len(plan.Files) > 0 {
		return plan, nil
	}
	return nil, l.planError(target, plan, cur, want)
}

// hole finds, below level, a level whose files stop at or after cur and
// before txid and start again after txid: a hole around txid, which
// retention (deleting the oldest files first) does not leave. It returns
// the level and the TXIDs missing there.
func (l *Listing) hole(below int, cur, txid ltx.TXID) (level int, from, to ltx.TXID, ok bool) {
	for level = 0; level < below; level++ {
		var before, after *ltx.FileInfo
		for _, f := range l.levels[level] {
			if f.MaxTXID >= cur && f.MaxTXID < txid && (before == nil || f.MaxTXID > before.MaxTXID) {
				before = f
			}
			if f.MinTXID > txid && (after == nil || f.MinTXID < after.MinTXID) {
				after = f
			}
		}
		if before != nil && after != nil {
			return level, before.MaxTXID + 1, after.MinTXID - 1, true
		}
	}
	return 0, 0, 0, false
}

// planError says why a plan that reached only cur cannot reach want.
func (l *Listing) planError(target Target, plan *Plan, cur, want ltx.TXID) error {
	c := l.replica
	if len(plan.Files) == 0 {
		anyEligible := false
		for _, files := range l.levels {
			for _, f := range files {
				anyEligible = anyEligible || target.eligible(f)
			}
		}
		if !anyEligible && !target.Timestamp.IsZero() {
			return fmt.Errorf("replica %s: %w", c, tooEarly{target.Timestamp})
		}
		return fmt.Errorf("replica %s: cannot restore %s: there is no snapshot to start from (no file at level %d, and none at another level starts at TXID 1)", c, target, storage.SnapshotLevel)
	}
	// A TXID inside a compacted file cannot be reached exactly.
	for _, files := range l.levels {
		for _, f := range files {
			if target.TXID != 0 && f.MinTXID <= cur+1 && f.MaxTXID > target.TXID {
				if level, from, to, ok := l.hole(f.Level, cur, target.TXID); ok {
					// Not what compaction and retention leave: the
					// lower level's file is what went missing.
					return fmt.Errorf("replica %s: cannot restore exactly TXID %s: level %d is missing TXIDs %s-%s, its files were deleted or never written (%s holds them, but merged with others); restore TXID %s or %s instead",
						c, target.TXID, level, from, to, storage.Describe(f.Level, f.MinTXID, f.MaxTXID), cur, f.MaxTXID)
				}
				return fmt.Errorf("replica %s: cannot restore exactly TXID %s: it lies inside %s, which merges several TXIDs; restore TXID %s or %s instead",
					c, target.TXID, storage.Describe(f.Level, f.MinTXID, f.MaxTXID), cur, f.MaxTXID)
			}
		}
	}
	next := want + 1
	for _, files := range l.levels {
		for _, f := range files {
			if f.MinTXID > cur && f.MinTXID < next {
				next = f.MinTXID
			}
		}
	}
	return fmt.Errorf("replica %s: cannot restore %s: missing TXIDs %s-%s (no file at any level starts at %s)",
		c, target, cur+1, max(next-1, cur+1), cur+1)
}
