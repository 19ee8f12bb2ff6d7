package levels

import (
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// Policy says how long a replica keeps its history: which of its files
// retention deletes.
type Policy struct {
	// SnapshotRetention is how far back restore points are kept: every
	// point newer than this stays restorable.
	SnapshotRetention time.Duration
	// L0Retention is how long level-0 files (one per sync, so one per
	// restore point) are kept once a higher level covers them; older
	// restore points are those of the higher levels' files.
	L0Retention time.Duration
}

// Expired returns the files of a replica that no restore point inside the
// policy needs. files holds every file of the replica by level, each level
// sorted by MinTXID. The rules, which never break a restore chain:
//
//   - Snapshots newer than now-SnapshotRetention are kept, and so is the
//     newest one older than that: it is the base that restore points just
//     inside the window start from. Older snapshots expire.
//   - Files at levels 0-8 that end at or below that base snapshot's TXID
//     expire: every retained restore point starts from it or a later one.
//   - Level-0 files also expire once a file of a higher level covers their
//     TXID range and is itself older than L0Retention: since that file is as
//     old as the newest file it merged, the level-0 files it covers expire
//     together, and every level-0 file kept can be reached from the end of
//     a higher-level file.
//   - The newest file of each level is always kept.
func (p Policy) Expired(files *[storage.MaxLevel + 1][]*ltx.FileInfo, now time.Time) []*ltx.FileInfo {
	var expired []*ltx.FileInfo
	snaps := files[storage.SnapshotLevel]
	cutoff := now.Add(-p.SnapshotRetention)
	base := -1 // index of the oldest snapshot kept
	for i, s := range snaps {
		if s.MinTXID != 1 {
			continue
		}
		if base == -1 || s.CreatedAt.Before(cutoff) {
			base = i
		}
	}
	var baseTXID ltx.TXID
	if base >= 0 {
		baseTXID = snaps[base].MaxTXID
		for i, s := range snaps {
			if i != len(snaps)-1 && s.MaxTXID < baseTXID {
				expired = append(expired, s)
			}
		}
	}
	l0Cutoff := now.Add(-p.L0Retention)
	for level := 0; level < storage.SnapshotLevel; level++ {
		fs := files[level]
		for i, f := range fs {
			if i == len(fs)-1 {
				break // always keep the newest
			}
			if f.MaxTXID <= baseTXID {
				expired = append(expired, f)
				continue
			}
			if level == 0 && coveredBefore(files, f, l0Cutoff) {
				expired = append(expired, f)
			}
		}
	}
	return expired
}

// coveredBefore reports whether a file above level 0 (and below the snapshot
// level), written before cutoff, spans f's whole TXID range.
func coveredBefore(files *[storage.MaxLevel + 1][]*ltx.FileInfo, f *ltx.FileInfo, cutoff time.Time) bool {
	for level := 1; level < storage.SnapshotLevel; level++ {
		for _, g := range files[level] {
			if g.MinTXID <= f.MinTXID && g.MaxTXID >= f.MaxTXID && g.CreatedAt.Before(cutoff) {
				return true
			}
		}
	}
	return false
}
