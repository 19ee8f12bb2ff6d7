package metrics

import (
	"slices"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/walship/walship/internal/event"
)

// counts holds what the events counted, as plain numbers in one small
// struct per database and per replica, and turns them into Prometheus
// metrics at each scrape.
//
// Not client_golang's CounterVec and HistogramVec: each child of those
// holds its label pairs as protobuf messages, a hash map entry, and (for a
// histogram) two sets of buckets with native-histogram state, about 0.5 KB
// a counter and 1.1 KB a histogram: 10 KB of live heap for a database with
// one replica, 1 MB for the 100 idle databases of `make bench`, held
// whether or not anyone scrapes. Here such a database holds 0.7 KB
// (TestMemoryPerDatabase).
type counts struct {
	mu  sync.Mutex
	dbs map[string]*dbCounts // by database path
}

// dbCounts are one database's counts.
type dbCounts struct {
	durations [len(dbKinds)]histogram
	replicas  []replicaCounts // a few: a slice is smaller than a map
}

// replicaCounts are one replica's counts.
type replicaCounts struct {
	name                  string
	upload                histogram
	bytes, files, deleted float64
	errors                [len(errKinds)]float64
	verified              [len(verifyResults)]float64
}

// histogram counts observations per bucket of buckets (not cumulative;
// the last is +Inf), with their sum.
type histogram struct {
	counts [len(buckets) + 1]uint64
	sum    float64
}

func (h *histogram) observe(v float64) {
	// The first bucket whose upper bound is v or more, as Prometheus's
	// own histogram chooses.
	h.counts[sort.SearchFloat64s(buckets[:], v)]++
	h.sum += v
}

func (h *histogram) count() uint64 {
	var n uint64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// metric returns h as a constant histogram, with cumulative buckets.
func (h *histogram) metric(d *prometheus.Desc, labels ...string) prometheus.Metric {
	cumulative := make(map[float64]uint64, len(buckets))
	var n uint64
	for i, le := range buckets {
		n += h.counts[i]
		cumulative[le] = n
	}
	return prometheus.MustNewConstHistogram(d, h.count(), h.sum, cumulative, labels...)
}

// The buckets of every duration: from a sync of one small transaction
// (a millisecond) to a snapshot of a large database or an upload over a
// slow link (minutes): 1ms, 4ms, ... ~4.4min.
var buckets = [...]float64{0.001, 0.004, 0.016, 0.064, 0.256, 1.024, 4.096, 16.384, 65.536, 262.144}

// The database's own durations, and the help of each.
var (
	dbKinds    = [...]event.Kind{event.Sync, event.Checkpoint, event.Compaction, event.Snapshot}
	dbKindHelp = [len(dbKinds)]string{
		"capture of the committed transactions into a staged file, with the checkpoint it may run",
		"WAL checkpoint",
		"compaction that wrote a file",
		"snapshot staged on the snapshot interval",
	}
	errKinds      = [...]string{event.ErrTimeout, event.ErrNetwork, event.ErrStopped, event.ErrOther}
	verifyResults = [...]string{event.VerifyWhole, event.VerifyDamaged, event.VerifyFailed}
)

var (
	dbDurations = func() (ds [len(dbKinds)]*prometheus.Desc) {
		for i, kind := range dbKinds {
			ds[i] = durationDesc(kind, "Duration of each "+dbKindHelp[i]+".", dbLabels)
		}
		return ds
	}()
	uploadDuration = durationDesc(event.Upload, "Duration of each upload of one file to a replica.", replicaLabels)
	upBytes        = prometheus.NewDesc("walship_replica_uploaded_bytes_total", "Bytes written to the replica.", replicaLabels, nil)
	upFiles        = prometheus.NewDesc("walship_replica_uploaded_files_total", "LTX files written to the replica.", replicaLabels, nil)
	upErrors       = prometheus.NewDesc("walship_replica_upload_errors_total", "Upload passes that failed, by kind: timeout, network, stopped (the replica is written no more) or other.", append(slices.Clone(replicaLabels), "kind"), nil)
	deleted        = prometheus.NewDesc("walship_replica_retention_deleted_files_total", "Files retention deleted from the replica.", replicaLabels, nil)
	verified       = prometheus.NewDesc("walship_replica_verifications_total", "Verifications of the whole replica (validation-interval), by result: whole, damaged or failed (the check could not be made).", append(slices.Clone(replicaLabels), "result"), nil)
)

func durationDesc(kind event.Kind, help string, labels []string) *prometheus.Desc {
	return prometheus.NewDesc("walship_"+string(kind)+"_duration_seconds", help, labels, nil)
}

// replica returns the counts of the replica of db, made at zero the first
// time; c.mu must be held, and the pointer is not kept past it (the next
// replica may move the slice).
func (c *counts) replica(db, name string) *replicaCounts {
	d := c.db(db)
	for i := range d.replicas {
		if d.replicas[i].name == name {
			return &d.replicas[i]
		}
	}
	d.replicas = append(d.replicas, replicaCounts{name: name})
	return &d.replicas[len(d.replicas)-1]
}

// db returns the counts of db, made at zero the first time; c.mu must be
// held.
func (c *counts) db(db string) *dbCounts {
	d := c.dbs[db]
	if d == nil {
		d = &dbCounts{}
		c.dbs[db] = d
	}
	return d
}

// track makes the counts of db and its replicas exist.
func (c *counts) track(db string, replicas ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.db(db)
	for _, r := range replicas {
		c.replica(db, r)
	}
}

// observe counts e.
func (c *counts) observe(e event.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(dbKinds[:], e.Kind); i >= 0 {
		c.db(e.DB).durations[i].observe(e.Duration.Seconds())
		return
	}
	switch e.Kind {
	case event.Upload:
		r := c.replica(e.DB, e.Replica)
		r.upload.observe(e.Duration.Seconds())
		r.bytes += float64(e.Bytes)
		r.files += float64(e.Files)
	case event.UploadError:
		// A kind the engine does not emit counts as other ("anything
		// else"): the set of series stays fixed.
		i := slices.Index(errKinds[:], e.ErrKind)
		if i < 0 {
			i = slices.Index(errKinds[:], event.ErrOther)
		}
		c.replica(e.DB, e.Replica).errors[i]++
	case event.Retention:
		c.replica(e.DB, e.Replica).deleted += float64(e.Files)
	case event.Verify:
		// The engine emits only the three results; another would be
		// no verification's outcome.
		if i := slices.Index(verifyResults[:], e.Result); i >= 0 {
			c.replica(e.DB, e.Replica).verified[i]++
		}
	}
}

func (c *counts) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range dbDurations {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{uploadDuration, upBytes, upFiles, upErrors, deleted, verified} {
		ch <- d
	}
}

// Collect sends every count. A replica's counters are sent from its first
// event or from Track, at zero, so that rate() and increase() see the
// first increment; a histogram from its first observation.
func (c *counts) Collect(ch chan<- prometheus.Metric) {
	for _, d := range c.snapshot() {
		for i := range d.durations {
			if h := &d.durations[i]; h.count() > 0 {
				ch <- h.metric(dbDurations[i], d.path)
			}
		}
		for j := range d.replicas {
			r := &d.replicas[j]
			counter := func(desc *prometheus.Desc, v float64, labels ...string) {
				ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, append([]string{d.path, r.name}, labels...)...)
			}
			if r.upload.count() > 0 {
				ch <- r.upload.metric(uploadDuration, d.path, r.name)
			}
			counter(upBytes, r.bytes)
			counter(upFiles, r.files)
			counter(deleted, r.deleted)
			for i, kind := range errKinds {
				counter(upErrors, r.errors[i], kind)
			}
			for i, result := range verifyResults {
				counter(verified, r.verified[i], result)
			}
		}
	}
}

// pathCounts are the counts of the database at path.
type pathCounts struct {
	path string
	dbCounts
}

// snapshot returns a copy of every count. The copy is a few hundred bytes a
// database, made under the lock; the metrics are built from it after: a
// scrape must not hold up the engine, which counts inline.
func (c *counts) snapshot() []pathCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]pathCounts, 0, len(c.dbs))
	for path, d := range c.dbs {
		out = append(out, pathCounts{path: path, dbCounts: dbCounts{durations: d.durations, replicas: slices.Clone(d.replicas)}})
	}
	return out
}
