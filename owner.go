package walship

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/owner"
	"github.com/walship/walship/internal/ship"
)

// SetTakeover sets Options.Takeover, for a database made by FromConfig.
// It takes effect at Open.
func (db *DB) SetTakeover(on bool) { db.opts.Takeover = on }

// SetStopsApplication sets Options.StopsApplication, before Run.
func (db *DB) SetStopsApplication(on bool) { db.opts.StopsApplication = on }

// processStart is when this process started, for the owner records that
// name it.
var processStart = time.Now().UTC()

// writer returns who this database's replicator is, for the replicas' owner
// records: the database's identity from its staging directory, and an
// identity of this run.
func (db *DB) writer() owner.Record {
	host, _ := os.Hostname()
	run := make([]byte, 8)
	rand.Read(run)
	return owner.Record{
		Database: db.staging.Identity(),
		Run:      hex.EncodeToString(run),
		Host:     host,
		PID:      os.Getpid(),
		Path:     db.path,
		Started:  processStart,
	}
}

// shipWriter is who writes the replicas, for their uploaders (a new run
// identity at each call; see writer).
func (db *DB) shipWriter() ship.Writer {
	return ship.Writer{Me: db.writer(), Takeover: db.opts.Takeover, Recheck: db.ownerRecheck}
}

// claimReplicas claims every replica whose position was read (the others
// are claimed before their first write). A replica that belongs to another
// database is an error, so the database does not start. It returns the
// TXID at which the database's history must start apart from what the
// replicas hold, when a takeover (this one, or one that stopped before its
// first snapshot reached any replica) says so, zero otherwise; and the
// replicas whose record names this database's file with another identity,
// which adoptReplicas claims once the database proved to be theirs.
func (db *DB) claimReplicas(ctx context.Context) (from ltx.TXID, unproven []*Replica, err error) {
	var newest ltx.TXID
	for _, r := range db.replicas {
		if !r.up.Known() {
			continue
		}
		newest = max(newest, r.up.Pos().TXID)
		c, err := r.up.Claim(ctx, false)
		switch {
		case errors.Is(err, owner.ErrUnproven):
			unproven = append(unproven, r)
			continue
		case errors.Is(err, owner.ErrNotOwner):
			return 0, nil, err
		case err != nil:
			// Not answering now: the claim comes before its first write.
			db.log.Warn("cannot claim the replica yet; it is claimed before walship writes to it", "replica", r.Name, "error", err)
			continue
		}
		from = max(from, ltx.TXID(c.HistoryFrom))
	}
	if from <= newest {
		from = 0 // no takeover, or this database's history is in a replica already
	}
	return from, unproven, nil
}

// adoptReplicas claims the replicas whose record names this database's
// file on this host with another identity (its staging directory was
// lost), now that the engine resumed: they are this database's if it
// resumed from their newest state, its content their checksum, without a
// copy. Otherwise the first one's refusal is the error.
func (db *DB) adoptReplicas(ctx context.Context, resumed ltx.Pos, unproven []*Replica) error {
	for _, r := range unproven {
		proven := resumed.TXID != 0 && db.cap.Pos() == resumed && r.up.Pos() == resumed
		if _, err := r.up.Claim(ctx, proven); err != nil {
			return err
		}
		db.log.Warn("claimed the replica again for this database, whose staging directory was lost: its content is the replica's newest state", "replica", r.Name, "txid", resumed.TXID.String())
	}
	return nil
}
