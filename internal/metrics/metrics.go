// Package metrics exposes the replicator's state to Prometheus, with the
// official client library: counters and histograms fed by the engine's
// events (internal/event), and gauges read from the engine's status at each
// scrape, so nothing is computed while nobody looks. The events' counts are
// held as plain numbers, a few hundred bytes a database, and become
// Prometheus metrics only when scraped (counts.go says why).
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
)

// StatusFunc returns the state of every database as of now.
type StatusFunc func(ctx context.Context, now time.Time) []walship.DBStatus

// Metrics is the replicator's Prometheus registry.
type Metrics struct {
	reg    *prometheus.Registry
	counts *counts
}

var (
	dbLabels      = []string{"db"}
	replicaLabels = []string{"db", "replica"}
)

// New returns the registry: the engine's metrics, those status reads at
// each scrape, and the standard process and Go runtime collectors.
func New(status StatusFunc) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), counts: &counts{dbs: map[string]*dbCounts{}}}
	m.reg.MustRegister(m.counts, statusCollector{status: status},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	return m
}

// Track makes the counters of a database's replicas exist at zero before
// anything happens, so that rate() and increase() see their first
// increment.
func (m *Metrics) Track(db string, replicas ...string) {
	m.counts.track(db, replicas...)
}

// Observe records one of the engine's events: pass it as
// walship.Options.Events.
func (m *Metrics) Observe(e walship.Event) {
	m.counts.observe(e)
}

// Handler serves the metrics in Prometheus's exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
