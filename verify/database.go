package verify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/staging"
	"github.com/walship/walship/internal/tail"
)

// busyTimeout is how long the read-only connection waits for SQLite's own
// locks (a WAL recovery, say) before the check gives up.
const busyTimeout = 5 * time.Second

// Live is a live database as ReadDatabase read it.
type Live struct {
	Path     string       `json:"path"`
	PageSize uint32       `json:"page_size"`
	Pages    uint32       `json:"pages"`
	Checksum ltx.Checksum `json:"checksum"` // the database checksum LTX files carry
	// Staged is the newest state the replicator staged, from the position
	// file of the staging directory; nil when there is none.
	Staged *Staged `json:"staged,omitempty"`
	// Uncaptured is true when the database has commits the replicator
	// has not captured yet: normal while it runs, and no problem.
	Uncaptured bool     `json:"uncaptured"`
	Notes      []string `json:"notes,omitempty"`
	// StagedBefore is the newest TXID staged when the replicas' listing
	// began (StagedTXID), zero if unknown: a replica that holds it is not
	// behind, though the replicator staged more while it was read.
	StagedBefore ltx.TXID `json:"-"`
}

// StagedTXID returns the newest TXID staged in stagingDir, zero if none: read
// it before the replicas, so that what the replicator stages while they are
// read is not taken for a replica that fell behind (Live.StagedBefore).
func StagedTXID(stagingDir string) ltx.TXID {
	if stagingDir == "" {
		return 0
	}
	pos, _, err := staging.New(stagingDir, slog.New(slog.DiscardHandler)).ReadPosition()
	if err != nil {
		return 0
	}
	return pos.TXID
}

// Staged is the newest state staged for a database.
type Staged struct {
	Dir      string       `json:"dir"`
	TXID     ltx.TXID     `json:"txid"`
	Checksum ltx.Checksum `json:"checksum"`
}

// DatabaseCheck is how a replica compares with the live database.
type DatabaseCheck struct {
	Path     string       `json:"path"`
	Checksum ltx.Checksum `json:"checksum"`
	// Status is "in sync", "behind", "ahead", "diverged", "differs" or
	// "not compared".
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Statuses of a DatabaseCheck.
const (
	StatusInSync   = "in sync"
	StatusBehind   = string(KindBehind)
	StatusAhead    = string(KindAhead)
	StatusDiverged = string(KindDiverged)
	StatusDiffers  = string(KindDiffers)
	// StatusNotCompared: the replica carries no checksums (Litestream's
	// files) and no staged position says which TXID the database is at.
	StatusNotCompared = "not compared"
)

// Database reads the live database at dbPath (see ReadDatabase) and compares
// each replica's report with it, adding what it finds to the reports.
func Database(ctx context.Context, dbPath, stagingDir string, reports ...*Report) (*Live, error) {
	live, err := ReadDatabase(ctx, dbPath, stagingDir)
	if err != nil {
		return nil, err
	}
	for _, r := range reports {
		live.Compare(r)
	}
	return live, nil
}

// ReadDatabase reads the current state of the database at dbPath without
// writing to it or blocking its application: it opens it read-only and
// holds a read transaction while it computes the database checksum from
// the database file and its WAL (internal/tail's reader, as the replicator
// reads it). stagingDir is the replicator's staging directory ("" for none):
// its position file says which TXID, and which WAL point, the newest staged
// state is.
func ReadDatabase(ctx context.Context, dbPath, stagingDir string) (*Live, error) {
	abs, err := filepath.Abs(dbPath)
	if err != nil {
		return nil, fmt.Errorf("database path %q: %w", dbPath, err)
	}
	live := &Live{Path: abs}
	var at *staging.WALPoint
	if stagingDir != "" {
		pos, point, err := staging.New(stagingDir, slog.New(slog.DiscardHandler)).ReadPosition()
		switch {
		case err == nil:
			live.Staged = &Staged{Dir: stagingDir, TXID: pos.TXID, Checksum: pos.PostApplyChecksum}
			at = point
		case errors.Is(err, fs.ErrNotExist):
			live.Notes = append(live.Notes, fmt.Sprintf("no staged position in %s: the database was never replicated from here, or its staging directory is elsewhere (meta-path)", stagingDir))
		default:
			return nil, fmt.Errorf("read the position file of the staging directory %s: %w", stagingDir, err)
		}
	}
	err = tail.ReadOnly(ctx, abs, busyTimeout, func(v *tail.View) error {
		st, err := v.Sums(nil)
		if err != nil {
			return err
		}
		live.PageSize, live.Pages, live.Checksum = st.PageSize(), st.Commit(), st.Total()
		return live.capturedUpTo(v, at)
	})
	if err != nil {
		return nil, fmt.Errorf("read database %s: %w", abs, err)
	}
	return live, nil
}

// capturedUpTo works out whether the database has commits past the staged
// state, from the WAL point where that state was captured.
func (l *Live) capturedUpTo(v *tail.View, at *staging.WALPoint) error {
	l.Uncaptured = false
	if l.Staged == nil || l.Checksum == l.Staged.Checksum {
		return nil
	}
	salt1, salt2, end, ok := v.Generation()
	if at == nil || !ok || at.Salt1 != salt1 || at.Salt2 != salt2 || at.End > end {
		// The log restarted since: the WAL no longer shows what came after.
		l.Uncaptured = true
		l.Notes = append(l.Notes, fmt.Sprintf("the database is past the newest staged state (TXID %s): commits since it were not captured yet (is `walship replicate` running?), or the database was replaced or restored", l.Staged.TXID))
		return nil
	}
	then := l.Checksum
	if at.End < end {
		past, err := v.Until(at.End)
		if err != nil {
			return err
		}
		st, err := past.Sums(nil)
		if err != nil {
			return err
		}
		then = st.Total()
	}
	if then != l.Staged.Checksum {
		l.Notes = append(l.Notes, fmt.Sprintf("the staging directory %s says TXID %s (checksum %s) was captured at WAL offset %d, but the database there has checksum %s: it is not this database's staging directory, or the database was replaced or restored since",
			l.Staged.Dir, l.Staged.TXID, l.Staged.Checksum, at.End, then))
		return nil
	}
	l.Uncaptured = true
	l.Notes = append(l.Notes, fmt.Sprintf("the database has %d bytes of WAL committed after the newest staged state (TXID %s) that walship has not captured yet: it captures them at its next sync", end-at.End, l.Staged.TXID))
	return nil
}

// Compare compares the replica's newest state, in r, with the database, and
// adds the result (and any problem) to r.
func (l *Live) Compare(r *Report) {
	dc := &DatabaseCheck{Path: l.Path, Checksum: l.Checksum}
	r.Database = dc
	r.Notes = append(r.Notes, l.Notes...)
	newest := r.Newest
	if newest == nil {
		dc.Status, dc.Message = StatusBehind, "the replica holds nothing of the database"
		return // the empty replica is a problem already
	}
	staged := l.Staged
	switch {
	case newest.Checksum != 0 && newest.Checksum == l.Checksum:
		dc.Status = StatusInSync
		dc.Message = fmt.Sprintf("the replica's newest state, TXID %s, is the database's", newest.TXID)
	case staged == nil && newest.Checksum == 0:
		dc.Status = StatusNotCompared
		dc.Message = "the replica's newest files carry no checksums, and no staged position gives the database's TXID: there is nothing to compare"
	case staged == nil:
		l.compareUnstaged(r, dc)
	case newest.TXID < staged.TXID && l.StagedBefore != 0 && newest.TXID >= l.StagedBefore:
		dc.Status = StatusInSync
		dc.Message = fmt.Sprintf("the replica holds TXID %s, the newest staged when verify began; the replicator staged up to %s while the replica was read", newest.TXID, staged.TXID)
	case newest.TXID < staged.TXID:
		n := staged.TXID - newest.TXID
		dc.Status = StatusBehind
		dc.Message = fmt.Sprintf("the replica's newest TXID is %s, %d behind the newest TXID staged for the database (%s)", newest.TXID, n, staged.TXID)
		lacking := "the newest TXID"
		if n > 1 {
			lacking = fmt.Sprintf("the %d newest TXIDs", n)
		}
		r.add(Problem{Kind: KindBehind, Object: "replica",
			Message: fmt.Sprintf("the replica lacks %s staged for the database (its newest is %s, the database's %s): uploads may still be in flight",
				lacking, newest.TXID, staged.TXID),
			Fix: "if `walship replicate` runs, verify again in a moment; a replica that stays behind is unreachable or failing (see the replicator's log), or nothing replicates the database: run `walship replicate` on it"})
	case newest.TXID > staged.TXID:
		dc.Status = StatusAhead
		dc.Message = fmt.Sprintf("the replica holds TXIDs up to %s, beyond the newest TXID staged for the database (%s)", newest.TXID, staged.TXID)
		r.add(Problem{Kind: KindAhead, Object: "replica",
			Message: fmt.Sprintf("the replica holds TXIDs up to %s, beyond %s, the newest this database staged (in %s): another writer replicates to it, or that staging directory is an old one",
				newest.TXID, staged.TXID, staged.Dir),
			Fix: "make sure one walship alone replicates this database to this replica (walship does not write to a replica ahead of its database). " +
				"If the replica's history is the one to keep, restore the database from it; if the database's is, replicate it to a new, empty replica"})
	case newest.Checksum == 0:
		dc.Status = StatusInSync
		dc.Message = fmt.Sprintf("the replica's newest TXID, %s, is the newest staged for the database (compared by TXID only: its files carry no checksums)", newest.TXID)
	case newest.Checksum != staged.Checksum:
		dc.Status = StatusDiverged
		dc.Message = fmt.Sprintf("the replica and the database's staging directory hold different states for TXID %s", newest.TXID)
		r.add(Problem{Kind: KindDiverged, Object: "replica",
			Message: fmt.Sprintf("TXID %s has checksum %s in the replica but %s in the database's staging directory %s: one TXID, two histories", newest.TXID, newest.Checksum, staged.Checksum, staged.Dir),
			Fix: "another database or writer wrote this replica, or the staging directory was reset: make sure one walship alone replicates this database here, " +
				"and replicate it to a new, empty replica to start a history both agree on"})
	default:
		dc.Status = StatusInSync
		dc.Message = fmt.Sprintf("the replica holds the newest staged state, TXID %s", newest.TXID)
	}
}

// compareUnstaged compares the replica with a database that has no staged
// position: the database's checksum is all there is to go by.
func (l *Live) compareUnstaged(r *Report, dc *DatabaseCheck) {
	newest := r.Newest
	if txid, ok := r.txidOf(l.Checksum); ok {
		dc.Status = StatusAhead
		dc.Message = fmt.Sprintf("the database is at the state of TXID %s, but the replica holds TXIDs up to %s", txid, newest.TXID)
		r.add(Problem{Kind: KindAhead, Object: "replica",
			Message: fmt.Sprintf("the replica holds TXIDs up to %s, beyond the database's state, which is that of TXID %s: another writer replicates to it, or the database was restored to an older state", newest.TXID, txid),
			Fix:     "make sure one walship alone replicates this database to this replica; if the database was restored on purpose, replicate it to a new, empty replica"})
		return
	}
	dc.Status = StatusDiffers
	dc.Message = fmt.Sprintf("the database's state (checksum %s) is not the replica's newest (TXID %s)", l.Checksum, newest.TXID)
	r.add(Problem{Kind: KindDiffers, Object: "replica",
		Message: fmt.Sprintf("the database's state (checksum %s) is not in the replica, whose newest is TXID %s (checksum %s), and no staged position says whether the replica is behind or holds another history",
			l.Checksum, newest.TXID, newest.Checksum),
		Fix: "run `walship replicate` on the database, then verify again: a replica that still differs holds another database's history"})
}

// txidOf returns the TXID after which the replica's files say the database
// has checksum c.
func (r *Report) txidOf(c ltx.Checksum) (ltx.TXID, bool) {
	var found ltx.TXID
	for txid, sum := range r.states {
		if sum == c && txid > found {
			found = txid
		}
	}
	return found, found != 0
}

// CompareReplicas compares replicas of one database with one another: a TXID
// both hold, from the newer of their newest snapshots on, must have one
// state (before it, one may hold the history of a database that was taken
// over). Each disagreement is a problem of both reports. Replicas upload
// independently, so one may be behind another.
func CompareReplicas(reports ...*Report) {
	for i, a := range reports {
		for _, b := range reports[i+1:] {
			var differ []ltx.TXID
			from := max(a.chainStart, b.chainStart)
			for txid, sum := range a.states {
				if other, ok := b.states[txid]; ok && other != sum && txid >= from {
					differ = append(differ, txid)
				}
			}
			if len(differ) == 0 {
				continue
			}
			slices.Sort(differ)
			a.add(divergedFrom(a, b, differ))
			b.add(divergedFrom(b, a, differ))
		}
	}
}

func divergedFrom(r, other *Report, differ []ltx.TXID) Problem {
	t := differ[0]
	msg := fmt.Sprintf("TXID %s has checksum %s here but %s in replica %s", t, r.states[t], other.states[t], other.Replica)
	if n := len(differ); n > 1 {
		msg += fmt.Sprintf(" (%d TXIDs differ, up to %s)", n, differ[n-1])
	}
	return Problem{Kind: KindDiverged, Object: "replica", Message: msg + ": the replicas hold two histories",
		Fix: "one of them was written by another database or writer: run `walship verify DB_PATH` to see which agrees with the database, " +
			"make sure one walship alone replicates the database to each, and replicate it to a new, empty replica in place of the other"}
}
