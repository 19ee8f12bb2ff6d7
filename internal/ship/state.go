package ship

import (
	"context"
	"errors"
	"fmt"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore"
)

// ErrStillWritten is returned (wrapped) by ReadNewestState when the
// replica changed while it was read: another process writes to it.
var ErrStillWritten = errors.New("another process is writing to the replica")

// Unproven reports whether the replica's newest file says nothing of the
// state it ends with (a file Litestream wrote, which carries no database
// checksums): the history cannot go on from it with checksums until
// ReadNewestState has read that state.
func (r *Replica) Unproven() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.known && r.pos.TXID > 0 && r.pos.PostApplyChecksum == 0
}

// ReadNewestState reads the state the replica's newest file ends with from
// its files (restore.ReadState: as much as a restore of it downloads), for
// a replica whose newest file does not say it (Unproven), and makes its
// checksum the replica's position's, so that the database's history goes
// on from the replica's with checksums. It lists level 0 again afterwards:
// a replica that moved on meanwhile is being written by another process
// (a Litestream still running), and the error wraps ErrStillWritten.
func (r *Replica) ReadNewestState(ctx context.Context) (*restore.State, error) {
	r.mu.Lock()
	pos := r.pos
	var files []*ltx.FileInfo
	for _, fs := range r.index {
		files = append(files, fs...)
	}
	r.mu.Unlock()
	st, err := restore.ReadState(ctx, r.client, restore.NewListing(r.client.String(), files), restore.Target{TXID: pos.TXID})
	if err != nil {
		return nil, err
	}
	now, err := r.client.LTXFiles(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", r.name, err)
	}
	if n := len(now); n > 0 && now[n-1].MaxTXID > pos.TXID {
		return nil, fmt.Errorf("replica %s changed while walship read it: its newest TXID went from %s to %s, so %w (Litestream, still replicating this database?). "+
			"Stop it and start walship again: two replicators writing one replica overwrite each other's files", r.client, pos.TXID, now[n-1].MaxTXID, ErrStillWritten)
	}
	r.Proved(ltx.NewPos(st.TXID, st.Checksum))
	return st, nil
}

// Proved records that the state after the replica's newest file has the
// checksum pos says, if the replica is at pos's TXID and its newest file
// did not say (see Unproven).
func (r *Replica) Proved(pos ltx.Pos) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pos.TXID == pos.TXID && r.pos.PostApplyChecksum == 0 {
		r.pos.PostApplyChecksum = pos.PostApplyChecksum
	}
}
