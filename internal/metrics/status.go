package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/walship/walship"
)

// statusCollector reads the engine's status at each scrape: the gauges
// are then as fresh as the scrape, and cost nothing between scrapes.
type statusCollector struct {
	status StatusFunc
}

var (
	leaseHeld     = prometheus.NewDesc("walship_lease_held", "With lease-ttl: 1 while this node holds the lease on the database's primary role, by its own clock, else 0.", dbLabels, nil)
	standbyLag    = prometheus.NewDesc("walship_standby_lag_seconds", "On a standby: how far behind the primary its copy was at its last commit.", dbLabels, nil)
	promotionTime = prometheus.NewDesc("walship_promotion_seconds", "On a promoted standby: from the lease's expiry, as it saw it, to its copy becoming the live database.", dbLabels, nil)
	failoverTime  = prometheus.NewDesc("walship_failover_seconds", "On a promoted standby, once its database accepted a write: from the lease's expiry, as it saw it, to the first commit captured on the promoted database.", dbLabels, nil)
	lostTXIDs     = prometheus.NewDesc("walship_failover_lost_txids", "On a promoted standby: TXIDs the previous primary had captured at its last lease renewal that never reached the replica (lost for certain, a lower bound; 0 after a release).", dbLabels, nil)
	lossBound     = prometheus.NewDesc("walship_failover_loss_bound_seconds", "On a promoted standby: the previous primary's sync interval, after a crash the span of its last commits that may have been lost besides (0 after a release: nothing lost).", dbLabels, nil)
	promotedTXID  = prometheus.NewDesc("walship_promoted_txid", "On a promoted standby: the replica's newest TXID, from which it went on.", dbLabels, nil)
	dbTXID        = prometheus.NewDesc("walship_db_txid", "Newest TXID captured (staged) from the database.", dbLabels, nil)
	walBytes      = prometheus.NewDesc("walship_db_wal_bytes", "Size of the database's WAL file.", dbLabels, nil)
	dbFailing     = prometheus.NewDesc("walship_db_failing", "1 while the database cannot be opened or synced (nothing of it is captured), else 0.", dbLabels, nil)
	dbStopped     = prometheus.NewDesc("walship_db_stopped", "1 when the database's replication stopped on a failure (its error is in /status) while the others go on, else 0.", dbLabels, nil)
	dbPaused      = prometheus.NewDesc("walship_db_paused", "1 while the database's replication is paused (it resumes on request), else 0.", dbLabels, nil)
	stagingBytes  = prometheus.NewDesc("walship_db_staging_bytes", "Bytes of LTX files in the database's staging directory, waiting for a replica or a compaction.", dbLabels, nil)
	replicaTXID   = prometheus.NewDesc("walship_replica_txid", "Newest TXID the replica holds.", replicaLabels, nil)
	replicaLag    = prometheus.NewDesc("walship_replica_lag_seconds", "Age of the oldest captured transaction the replica does not hold yet; 0 when it holds every one.", replicaLabels, nil)
	lastSnapshot  = prometheus.NewDesc("walship_replica_last_snapshot_timestamp_seconds", "When the replica's newest snapshot was taken (Unix time); absent while it holds none.", replicaLabels, nil)
	failing       = prometheus.NewDesc("walship_replica_failing", "1 while the replica's last upload failed or it is written no more, else 0.", replicaLabels, nil)
)

// scrapeTimeout bounds the status read of one scrape (it lists each
// staging directory).
const scrapeTimeout = 10 * time.Second

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dbTXID, dbFailing, dbStopped, dbPaused, leaseHeld, standbyLag, promotionTime, failoverTime, lostTXIDs, lossBound, promotedTXID, walBytes, stagingBytes, replicaTXID, replicaLag, lastSnapshot, failing} {
		ch <- d
	}
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, db := range c.status(ctx, time.Now()) {
		gauge(dbTXID, float64(db.TXID), db.Path)
		if db.Phase != walship.StateStandby {
			// A standby's copy has neither: its figures would be zeros
			// that look like a primary's.
			gauge(walBytes, float64(db.WALBytes), db.Path)
			gauge(stagingBytes, float64(db.StagingBytes), db.Path)
		}
		gauge(dbFailing, flag(db.Error != ""), db.Path)
		gauge(dbStopped, flag(db.Phase == walship.PhaseStopped.String() && db.Error != ""), db.Path)
		gauge(dbPaused, flag(db.Phase == walship.StatePaused), db.Path)
		if l := db.Lease; l != nil {
			gauge(leaseHeld, flag(l.Held), db.Path)
			if l.Standby != nil {
				gauge(standbyLag, l.Standby.Lag.Seconds(), db.Path)
			}
			if p := l.Promotion; p != nil {
				gauge(promotionTime, p.Promotion.Seconds(), db.Path)
				if !p.FirstWrite.IsZero() {
					gauge(failoverTime, p.Failover.Seconds(), db.Path)
				}
				gauge(lostTXIDs, float64(p.Unshipped), db.Path)
				gauge(lossBound, p.LossBound.Seconds(), db.Path)
				gauge(promotedTXID, float64(p.TXID), db.Path)
			}
		}
		for _, r := range db.Replicas { // names are distinct (walship.NewDB)
			gauge(replicaTXID, float64(r.TXID), db.Path, r.Name)
			gauge(replicaLag, r.Lag.Seconds(), db.Path, r.Name)
			if !r.LastSnapshot.IsZero() {
				gauge(lastSnapshot, float64(r.LastSnapshot.UnixMilli())/1000, db.Path, r.Name)
			}
			gauge(failing, flag(r.Error != "" || r.Stopped != ""), db.Path, r.Name)
		}
	}
}

// flag is a boolean as a gauge's value.
func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
