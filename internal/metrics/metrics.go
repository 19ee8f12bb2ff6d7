// Package metrics exposes the replicator's state to Prometheus, with the
// official client library: counters and histograms fed by the engine's
// events (internal/event), and gauges read from the engine's status at each
// scrape, so nothing is computed while nobody looks.
//
// Every metric is prefixed walship_ and labelled by db (the database's path)
// and, for a replica's, replica (its name from the config, or its type):
// never a URL, which may hold a credential.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/event"
)

// StatusFunc returns the state of every database as of now.
type StatusFunc func(ctx context.Context, now time.Time) []walship.DBStatus

// Metrics is the replicator's Prometheus registry.
type Metrics struct {
	reg       *prometheus.Registry
	durations map[event.Kind]*prometheus.HistogramVec
	upBytes   *prometheus.CounterVec
	upFiles   *prometheus.CounterVec
	upErrors  *prometheus.CounterVec
	deleted   *prometheus.CounterVec
	verified  *prometheus.CounterVec
}

var (
	dbLabels      = []string{"db"}
	replicaLabels = []string{"db", "replica"}
)

// The buckets of every duration: from a sync of one small transaction
// (a millisecond) to a snapshot of a large database or an upload over a
// slow link (minutes).
var buckets = prometheus.ExponentialBuckets(0.001, 4, 10) // 1ms .. ~4.4min

// New returns the registry: the engine's metrics, those status reads at
// each scrape, and the standard process and Go runtime collectors.
func New(status StatusFunc) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), durations: map[event.Kind]*prometheus.HistogramVec{}}
	for kind, what := range map[event.Kind]string{
		event.Sync:       "capture of the committed transactions into a staged file, with the checkpoint it may run",
		event.Checkpoint: "WAL checkpoint",
		event.Compaction: "compaction that wrote a file",
		event.Snapshot:   "snapshot staged on the snapshot interval",
		event.Upload:     "upload of one file to a replica",
	} {
		labels := dbLabels
		if kind == event.Upload {
			labels = replicaLabels
		}
		m.durations[kind] = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "walship_" + string(kind) + "_duration_seconds", Help: "Duration of each " + what + ".", Buckets: buckets,
		}, labels)
		m.reg.MustRegister(m.durations[kind])
	}
	m.upBytes = m.counter("walship_replica_uploaded_bytes_total", "Bytes written to the replica.", replicaLabels)
	m.upFiles = m.counter("walship_replica_uploaded_files_total", "LTX files written to the replica.", replicaLabels)
	m.upErrors = m.counter("walship_replica_upload_errors_total", "Upload passes that failed, by kind: timeout, network, stopped (the replica is written no more) or other.", append(replicaLabels, "kind"))
	m.deleted = m.counter("walship_replica_retention_deleted_files_total", "Files retention deleted from the replica.", replicaLabels)
	m.verified = m.counter("walship_replica_verifications_total", "Verifications of the whole replica (validation-interval), by result: whole, damaged or failed (the check could not be made).", append(replicaLabels, "result"))
	m.reg.MustRegister(statusCollector{status: status},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	return m
}

func (m *Metrics) counter(name, help string, labels []string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	m.reg.MustRegister(c)
	return c
}

// Track makes the counters of a database's replicas exist at zero before
// anything happens, so that rate() and increase() see their first
// increment.
func (m *Metrics) Track(db string, replicas ...string) {
	for _, r := range replicas {
		m.upBytes.WithLabelValues(db, r)
		m.upFiles.WithLabelValues(db, r)
		m.deleted.WithLabelValues(db, r)
		for _, kind := range []string{event.ErrTimeout, event.ErrNetwork, event.ErrStopped, event.ErrOther} {
			m.upErrors.WithLabelValues(db, r, kind)
		}
		for _, result := range []string{event.VerifyWhole, event.VerifyDamaged, event.VerifyFailed} {
			m.verified.WithLabelValues(db, r, result)
		}
	}
}

// Observe records one of the engine's events: pass it as
// walship.Options.Events.
func (m *Metrics) Observe(e walship.Event) {
	if h, ok := m.durations[e.Kind]; ok {
		labels := []string{e.DB}
		if e.Kind == event.Upload {
			labels = append(labels, e.Replica)
		}
		h.WithLabelValues(labels...).Observe(e.Duration.Seconds())
	}
	switch e.Kind {
	case event.Upload:
		m.upBytes.WithLabelValues(e.DB, e.Replica).Add(float64(e.Bytes))
		m.upFiles.WithLabelValues(e.DB, e.Replica).Add(float64(e.Files))
	case event.UploadError:
		m.upErrors.WithLabelValues(e.DB, e.Replica, e.ErrKind).Inc()
	case event.Retention:
		m.deleted.WithLabelValues(e.DB, e.Replica).Add(float64(e.Files))
	case event.Verify:
		m.verified.WithLabelValues(e.DB, e.Replica, e.Result).Inc()
	}
}

// Handler serves the metrics in Prometheus's exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
