package walship

import (
	"context"

	"github.com/walship/walship/restore/litestream03"
)

// noteLitestream03 logs, once per start, for each replica that holds no
// LTX file yet, that a backup Litestream v0.3 wrote there stays as it is:
// walship's layout (ltx/, or the level directories on S3) never meets v0.3's
// generations/, so walship's history starts beside it, and nothing of
// walship's (uploads, compaction, retention) deletes any of it.
func (db *DB) noteLitestream03(ctx context.Context) {
	for _, r := range db.replicas {
		if !r.up.Known() || r.up.Pos().TXID != 0 {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, startupProbe)
		b, err := litestream03.Find(lctx, r.Client)
		cancel()
		if err != nil {
			db.log.Debug("could not look for a Litestream v0.3 backup in the replica", "replica", r.Name, "error", err)
		} else if b != nil {
			db.log.Info("the replica holds a backup that Litestream v0.3 wrote; walship starts its own history beside it and leaves the v0.3 backup as it is (walship restore reads it for the times before walship's history)",
				"replica", r.Name, "litestream_v03", b.Summary())
		}
	}
}
