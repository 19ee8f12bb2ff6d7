package walship

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/litestream"
	"github.com/walship/walship/internal/pagesum"
	"github.com/walship/walship/internal/ship"
)

// Taking over a replica Litestream 0.5 wrote. Litestream's files carry no
// database checksums (ltx.HeaderFlagNoChecksum), so the replica's newest
// position says nothing of the state it ends with, and walship's history,
// whose every file names the state it applies to, cannot go on from it as
// it is. walship reads that state from the replica's files once (as much
// as one restore downloads), keeps the checksum of each of its pages as the
// staged state's, and continues Litestream's TXIDs from it: a delta or the
// pages that differ, whose pre-apply checksum is that state's, so that a
// restore proves every walship file again from the first one on.

// errLitestreamRunning is returned (wrapped) by Open when a Litestream
// process still replicates the database whose replica walship would take
// over.
var errLitestreamRunning = errors.New("a Litestream process still replicates the database")

// checkLitestream refuses to take over a replica whose newest files
// Litestream wrote while a Litestream process on this host has the
// database open: it is, in all likelihood, still writing to that replica.
func (db *DB) checkLitestream() error {
	unproven := false
	for _, r := range db.replicas {
		unproven = unproven || r.up.Unproven()
	}
	if !unproven {
		return nil
	}
	var names []string
	for _, p := range litestream.Holding(db.path) {
		if p.Unreadable {
			db.log.Warn("a Litestream process runs whose open files walship may not read: if it replicates this database, stop it now, since two replicators writing one replica overwrite each other's files", "process", p.Name, "pid", p.PID)
			continue
		}
		names = append(names, fmt.Sprintf("%s (pid %d)", p.Name, p.PID))
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s has it open, and the replica's newest files are Litestream's; walship writes nothing to a replica Litestream may still be writing to, since two replicators writing one replica overwrite each other's files. "+
		"Stop Litestream, then start walship again: it continues the replica's history where Litestream left it", errLitestreamRunning, strings.Join(names, ", "))
}

// continueLitestream makes pos, the replicas' newest position, whose file
// carries no database checksum (Litestream's), a position with the
// checksum of its state, read from the replica's files, and records the
// checksum of every page of that state in the staging directory, so that
// the database's history goes on from it with a delta. If the state cannot
// be read, pos is returned as it is: the history then goes on with a full
// copy of the database, which needs no knowledge of the state before it.
func (db *DB) continueLitestream(ctx context.Context, pos ltx.Pos) (ltx.Pos, error) {
	var from *Replica
	for _, r := range db.replicas {
		if r.up.Unproven() && r.up.Pos() == pos {
			from = r
			break
		}
	}
	if from == nil {
		return pos, nil
	}
	db.log.Info("the replica's newest files carry no database checksums (Litestream wrote them): reading the state they end with, so that walship goes on with their history, with checksums", "replica", from.Name, "txid", pos.TXID.String())
	st, err := from.up.ReadNewestState(ctx)
	switch {
	case ctx.Err() != nil:
		return pos, ctx.Err()
	case errors.Is(err, ship.ErrStillWritten):
		return pos, fmt.Errorf("%w: %w", errLitestreamRunning, err)
	case err != nil:
		db.log.Warn("cannot read the state the replica's newest files end with; walship goes on with their history with a full copy of the database instead", "replica", from.Name, "error", err)
		return pos, nil
	}
	proven := ltx.NewPos(st.TXID, st.Checksum)
	if err := db.staging.SaveChecksums(st.TXID, nil, pagesum.FromSums(st.PageSize, st.Sums)); err != nil {
		db.log.Warn("cannot record the page checksums of the replica's newest state; walship goes on with a full copy of the database", "error", err)
	}
	for _, r := range db.replicas {
		r.up.Proved(proven)
	}
	db.log.Info("read the state the replica's newest files end with; walship's history goes on from it", "replica", from.Name, "txid", st.TXID.String(), "checksum", st.Checksum.String(), "pages", len(st.Sums))
	return proven, nil
}

// noteLitestreamCompatible says, for each litestream-compatible replica
// whose newest file carries database checksums (written before the key
// was set), from which TXID on Litestream can restore it.
func (db *DB) noteLitestreamCompatible() {
	for _, r := range db.replicas {
		if hdr := r.up.Header(); r.LitestreamCompatible && hdr != nil && !hdr.NoChecksum() {
			db.log.Info("litestream-compatible: Litestream 0.5 restores this replica's states from the next file walship uploads on; "+
				"the TXIDs up to its newest carry database checksums, which Litestream's restore refuses: restore those with walship",
				"replica", r.Name, "txid", r.up.Pos().TXID.String())
		}
	}
}
