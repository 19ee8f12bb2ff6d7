// Package owner keeps one writer per replica. The first walship to write a
// replica records who it is in a small object at the replica's path, with
// the backend's conditional-write primitive so that of two writers starting
// at the same instant exactly one wins; a later writer that is not the
// owner refuses to write, and says whose replica it is and how to take it
// over.
//
// Who a writer is: a random identity of the database, kept in its staging
// directory, and a random identity of the process, new at every start, so
// that a second process that claims the replica (a takeover, or a copy of
// the server with its staging directory) is noticed by the first at its
// next check.
package owner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/walship/walship/storage"
)

// RecordName is the owner record's name at the replica's path.
const RecordName = "walship-owner.json"

// ErrNotOwner is returned (wrapped) when the replica belongs to another
// database, or another process has claimed it since.
var ErrNotOwner = errors.New("this database does not own the replica")

// ErrUnproven is returned (wrapped) by Claim when the replica's record
// names another identity for this very database file on this host, and
// the caller did not say that the database is the replica's (see
// Request.Adopt). It wraps ErrNotOwner.
var ErrUnproven = fmt.Errorf("%w: its record names this database's file with another identity", ErrNotOwner)

// ErrNoRecord is returned (wrapped) by Check when the owner record is gone
// (deleted by hand, or by a lifecycle rule of the store): the caller claims
// the replica again, which is safe, as a create is conditional.
var ErrNoRecord = errors.New("the replica has no owner record")

// Record is who owns a replica: the owner record's content.
type Record struct {
	Database string    `json:"database"` // the database's identity, kept in its staging directory
	Run      string    `json:"run"`      // the identity of the process, new at every start
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Path     string    `json:"path"`    // the database file
	Started  time.Time `json:"started"` // when the process started
	Since    time.Time `json:"since"`   // when the database became the owner
	// TakenOverFrom describes the previous owner when this one took the
	// replica over on purpose.
	TakenOverFrom string `json:"taken_over_from,omitempty"`
	// HistoryFrom is the TXID at which the owner's history starts when it
	// took the replica over: a multiple of EpochSize past every TXID the
	// replica held, and past any earlier owner's HistoryFrom. Kept in the
	// record, so that an owner that stops before its first snapshot
	// reaches the replica starts there again.
	HistoryFrom uint64 `json:"history_from,omitempty"`
}

// EpochSize is the TXID distance between the history of a database that
// took a replica over and the history it found there: the old owner, if it
// still runs, would need four billion commits to reach the new history's
// TXIDs before it notices that it lost the replica.
const EpochSize = 1 << 32

// nextEpoch returns the first multiple of EpochSize above txid.
func nextEpoch(txid uint64) uint64 { return (txid/EpochSize + 1) * EpochSize }

// String describes the owner for messages.
func (r *Record) String() string {
	return fmt.Sprintf("database %s on host %s (walship process %d started %s)", r.Path, r.Host, r.PID, r.Started.UTC().Format(time.RFC3339))
}

// sameDatabase reports whether other is this record's database: the same
// identity, or the same file on the same host, which is how an owner whose
// staging directory was deleted (and with it its identity) is recognised.
func (r *Record) sameDatabase(other *Record) bool {
	return r.Database == other.Database || (r.Host == other.Host && r.Path == other.Path)
}

// Claimed is the outcome of a successful Claim.
type Claimed struct {
	Version string // the record's version, for the next conditional write
	// TookOver is set when the replica belonged to another database and
	// this claim took it over.
	TookOver bool
	// HistoryFrom is the record's HistoryFrom: where this database's
	// history starts in the replica, since a takeover (this one or an
	// earlier one); zero without one.
	HistoryFrom uint64
	Previous    *Record // the record found, nil when there was none
}

// A Request is what a database asks of Claim.
type Request struct {
	Me Record
	// Takeover replaces the record of another database.
	Takeover bool
	// Adopt replaces the record of another database whose file on this
	// host is this one (the staging directory, and with it the
	// identity, was lost): the caller has made sure that the database is
	// the replica's, its content the replica's newest state.
	Adopt bool
	// Newest is the newest TXID the replica holds.
	Newest uint64
}

// Claim makes req.Me the owner of the replica behind c: it creates the
// record if there is none, and rewrites it with this process if it names
// this database. A record of another database is replaced only with
// req.Takeover (with a HistoryFrom past req.Newest), or, when that
// database's file on this host is this one, with req.Adopt; otherwise the
// error wraps ErrNotOwner (ErrUnproven in the second case) and says whose
// replica it is. Claim never writes anything but the record.
func Claim(ctx context.Context, c storage.Client, req Request, now time.Time) (Claimed, error) {
	me := req.Me
	for attempt := 0; ; attempt++ {
		found, version, err := Read(ctx, c)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return Claimed{}, err
		}
		rec := me
		rec.Since = now
		tookOver := false
		switch {
		case found == nil:
		case found.Run == me.Run && found.Database == me.Database:
			return Claimed{Version: version, HistoryFrom: found.HistoryFrom, Previous: found}, nil
		case found.Database == me.Database,
			found.Host == me.Host && found.Path == me.Path && req.Adopt:
			rec.Since, rec.TakenOverFrom, rec.HistoryFrom = found.Since, found.TakenOverFrom, found.HistoryFrom
		case req.Takeover:
			rec.TakenOverFrom = found.String()
			rec.HistoryFrom = max(nextEpoch(req.Newest), nextEpoch(found.HistoryFrom))
			tookOver = true
		case found.Host == me.Host && found.Path == me.Path:
			return Claimed{}, fmt.Errorf("replica %s belongs to %s, its owner since %s, with another identity than this one's (kept in the staging directory, which may have been deleted): "+
				"walship takes it as this database's only if the database's content is the replica's newest state, and it is not; walship writes nothing to it. "+
				"If this is the database that replica belongs to, restart with `walship replicate -takeover`, which starts a new history in the replica; otherwise give this database a replica path of its own: %w",
				c, found, found.Since.UTC().Format(time.RFC3339), ErrUnproven)
		default:
			return Claimed{}, fmt.Errorf("replica %s belongs to %s, its owner since %s; walship writes nothing to it. "+
				"If this database replaced that one on purpose (it moved to this server), restart with `walship replicate -takeover`, which starts a new history in the replica; "+
				"otherwise give this database a replica path of its own: %w",
				c, found, found.Since.UTC().Format(time.RFC3339), ErrNotOwner)
		}
		data, err := json.Marshal(rec)
		if err != nil {
			return Claimed{}, err
		}
		v, err := c.WriteRecord(ctx, RecordName, data, version)
		if errors.Is(err, storage.ErrConflict) && attempt < 5 {
			// Another writer changed it, or is changing it: decide again
			// on what it wrote.
			select {
			case <-ctx.Done():
				return Claimed{}, ctx.Err()
			case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return Claimed{}, fmt.Errorf("claim the replica: %w", err)
		}
		return Claimed{Version: v, TookOver: tookOver, HistoryFrom: rec.HistoryFrom, Previous: found}, nil
	}
}

// Check returns an error wrapping ErrNotOwner unless the record still
// names my database and my process.
func Check(ctx context.Context, c storage.Client, me Record) error {
	found, _, err := Read(ctx, c)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("replica %s: its owner record %s was deleted: %w", c, RecordName, ErrNoRecord)
	}
	if err != nil {
		return err
	}
	if found.Database == me.Database && found.Run == me.Run {
		return nil
	}
	how := "another process of this database claimed it (a second walship on a copy of this server or of its staging directory?)"
	if !found.sameDatabase(&me) {
		how = "it was taken over"
	}
	return fmt.Errorf("replica %s now belongs to %s, since %s: %s; walship stops writing to it: %w",
		c, found, found.Since.UTC().Format(time.RFC3339), how, ErrNotOwner)
}

// Read returns the replica's owner record and its version; an error
// wrapping storage.ErrNotFound when it has none.
func Read(ctx context.Context, c storage.Client) (*Record, string, error) {
	data, version, err := c.ReadRecord(ctx, RecordName)
	if err != nil {
		return nil, "", err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil || rec.Database == "" {
		return nil, "", fmt.Errorf("replica %s: its owner record %s is not one walship wrote; walship writes nothing to a replica whose owner it cannot tell: delete that object if the replica is this database's", c, RecordName)
	}
	return &rec, version, nil
}

// MayStillRun reports whether the claim replaced the record of this same
// database written by another run that may still be writing: a database
// restored from the replica (restore on first boot, a rolling deploy)
// while the original still runs, or a copy of the server with its staging
// directory. Both number their commits from the same TXIDs, and the other
// notices the claim only at its next check (before a write, once its last
// reading is older than its recheck interval), so the claimant holds its
// first write back until then. A run of the same file on this host is
// proved gone by the staging directory's lock this process holds; one of
// another file on this host, when its process no longer exists.
func (c Claimed) MayStillRun(me Record) bool {
	p := c.Previous
	switch {
	case p == nil || p.Database != me.Database || p.Run == me.Run || c.TookOver:
		return false
	case p.Host != me.Host:
		return true
	case p.Path == me.Path:
		return false
	}
	return processExists(p.PID)
}
