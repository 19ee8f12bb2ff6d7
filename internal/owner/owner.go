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
}

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
	// was taken over: its new history must be clearly apart from the old.
	TookOver bool
	Previous *Record // the record found, nil when there was none
}

// Claim makes me the owner of the replica behind c: it creates the record
// if there is none, and rewrites it with my process if it names my
// database. A record of another database is replaced only when takeover is
// set; otherwise the error wraps ErrNotOwner and says whose replica it is.
// Claim never writes anything but the record.
func Claim(ctx context.Context, c storage.Client, me Record, takeover bool, now time.Time) (Claimed, error) {
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
			return Claimed{Version: version, Previous: found}, nil
		case found.sameDatabase(&me):
			rec.Since = found.Since
		case takeover:
			rec.TakenOverFrom = found.String()
			tookOver = true
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
		return Claimed{Version: v, TookOver: tookOver, Previous: found}, nil
	}
}

// Check returns an error wrapping ErrNotOwner unless the record still
// names my database and my process.
func Check(ctx context.Context, c storage.Client, me Record) error {
	found, _, err := Read(ctx, c)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("replica %s: its owner record %s was deleted while this process was writing to it; walship stops writing to it until it is restarted, which claims it again: %w", c, RecordName, ErrNotOwner)
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
