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
)

// SetTakeover sets Options.Takeover, for a database made by FromConfig.
// It takes effect at Open.
func (db *DB) SetTakeover(on bool) { db.opts.Takeover = on }

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

// epochSize is the TXID distance between the history of a database that
// took a replica over and the history it found there: the old owner, if it
// still runs, would need four billion commits to reach the new history's
// TXIDs before it notices that it lost the replica.
const epochSize = 1 << 32

// claimReplicas claims every replica whose position was read (the others
// are claimed before their first write). A replica that belongs to another
// database is an error, so the database does not start. When a replica is
// taken over, it returns the TXID at which the database's new history
// starts: the next multiple of 2^32 past every TXID any replica holds.
func (db *DB) claimReplicas(ctx context.Context) (epoch ltx.TXID, err error) {
	tookOver := false
	var newest ltx.TXID
	for _, r := range db.replicas {
		if !r.up.Known() {
			continue
		}
		newest = max(newest, r.up.Pos().TXID)
		took, err := r.up.Claim(ctx)
		if errors.Is(err, owner.ErrNotOwner) {
			return 0, err
		}
		if err != nil {
			// Not answering now: the claim comes before its first write.
			db.log.Warn("cannot claim the replica yet; it is claimed before walship writes to it", "replica", r.Name, "error", err)
			continue
		}
		tookOver = tookOver || took
	}
	if !tookOver {
		return 0, nil
	}
	return (newest/epochSize + 1) * epochSize, nil
}
