package metrics_test

import (
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/event"
	"github.com/walship/walship/internal/metrics"
	"github.com/walship/walship/internal/testutil"
)

// TestScrape: what the status says and what the events counted come out
// under Prometheus's names, and parse with Prometheus's own parser.
func TestScrape(t *testing.T) {
	snap := time.Unix(1700000000, 0)
	status := func(context.Context, time.Time) []walship.DBStatus {
		return []walship.DBStatus{{Path: "/data/app.db", TXID: 12, WALBytes: 4096, StagingBytes: 300, Replicas: []walship.ReplicaStatus{
			{Name: "s3", TXID: 12, LastSnapshot: snap},
			{Name: "backup", TXID: 9, Lag: 90 * time.Second, Error: "replica s3://bucket/x: connection refused", Failures: 3},
		}}}
	}
	m := metrics.New(status)
	m.Track("/data/app.db", "s3", "backup")
	for _, e := range []walship.Event{
		{Kind: event.Sync, DB: "/data/app.db", Duration: 3 * time.Millisecond},
		{Kind: event.Checkpoint, DB: "/data/app.db", Duration: time.Millisecond},
		{Kind: event.Upload, DB: "/data/app.db", Replica: "s3", Duration: 20 * time.Millisecond, Bytes: 1000, Files: 1},
		{Kind: event.Upload, DB: "/data/app.db", Replica: "s3", Duration: 20 * time.Millisecond, Bytes: 500, Files: 1},
		{Kind: event.UploadError, DB: "/data/app.db", Replica: "backup", ErrKind: event.ErrNetwork},
		{Kind: event.Retention, DB: "/data/app.db", Replica: "s3", Files: 4},
		{Kind: event.Verify, DB: "/data/app.db", Replica: "s3", Result: event.VerifyWhole},
	} {
		m.Observe(e)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	got, err := testutil.Scrape(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	db := []string{"db", "/data/app.db"}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"walship_db_txid", db, 12},
		{"walship_db_failing", db, 0},
		{"walship_db_wal_bytes", db, 4096},
		{"walship_db_staging_bytes", db, 300},
		{"walship_replica_txid", []string{"replica", "backup"}, 9},
		{"walship_replica_lag_seconds", []string{"replica", "backup"}, 90},
		{"walship_replica_lag_seconds", []string{"replica", "s3"}, 0},
		{"walship_replica_failing", []string{"replica", "backup"}, 1},
		{"walship_replica_last_snapshot_timestamp_seconds", []string{"replica", "s3"}, 1700000000},
		{"walship_replica_uploaded_bytes_total", []string{"replica", "s3"}, 1500},
		{"walship_replica_uploaded_files_total", []string{"replica", "s3"}, 2},
		{"walship_replica_upload_errors_total", []string{"replica", "backup", "kind", "network"}, 1},
		{"walship_replica_upload_errors_total", []string{"replica", "backup", "kind", "timeout"}, 0},
		{"walship_replica_retention_deleted_files_total", []string{"replica", "s3"}, 4},
		{"walship_replica_verifications_total", []string{"replica", "s3", "result", "whole"}, 1},
		{"walship_sync_duration_seconds", db, 1},
		{"walship_checkpoint_duration_seconds", db, 1},
		{"walship_upload_duration_seconds", []string{"replica", "s3"}, 2},
	} {
		if v, ok := got.Value(c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %v (present: %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if _, ok := got.Value("walship_replica_last_snapshot_timestamp_seconds", "replica", "backup"); ok {
		t.Error("a replica without a snapshot has a snapshot time")
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no %s: the standard collectors are missing", name)
		}
	}
	for name, fam := range got {
		for _, metric := range fam.Metric {
			for _, l := range metric.Label {
				if strings.Contains(l.GetValue(), "://") {
					t.Errorf("%s has a URL in label %s: %q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestHistogramAsPrometheus: a duration histogram, kept as plain counts and
// built at scrape time, has the buckets, count and sum that Prometheus's
// own histogram has for the same observations, bounds and +Inf included.
func TestHistogramAsPrometheus(t *testing.T) {
	m := metrics.New(func(context.Context, time.Time) []walship.DBStatus { return nil })
	first := walship.Event{Kind: event.Upload, DB: "/a.db", Replica: "s3", Duration: 0}
	m.Observe(first)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	got, err := testutil.Scrape(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var bounds []float64
	for _, b := range got["walship_upload_duration_seconds"].GetMetric()[0].GetHistogram().GetBucket() {
		if !math.IsInf(b.GetUpperBound(), 1) { // the text format's own
			bounds = append(bounds, b.GetUpperBound())
		}
	}
	if len(bounds) < 5 {
		t.Fatalf("upload histogram buckets %v: want the 1ms..minutes range", bounds)
	}
	want := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "want", Buckets: bounds})
	want.Observe(0)
	durations := []time.Duration{time.Microsecond, time.Millisecond, 3 * time.Millisecond, 4 * time.Millisecond, time.Second, time.Hour}
	for _, b := range bounds {
		durations = append(durations, time.Duration(b*float64(time.Second)), time.Duration(b*float64(time.Second))+time.Nanosecond)
	}
	for _, d := range durations {
		e := first
		e.Duration = d
		m.Observe(e)
		want.Observe(d.Seconds())
	}
	if got, err = testutil.Scrape(srv.URL); err != nil {
		t.Fatal(err)
	}
	var w dto.Metric
	if err := want.Write(&w); err != nil {
		t.Fatal(err)
	}
	h := got["walship_upload_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != w.Histogram.GetSampleCount() || math.Abs(h.GetSampleSum()-w.Histogram.GetSampleSum()) > 1e-9 {
		t.Errorf("count %d sum %v, want %d %v", h.GetSampleCount(), h.GetSampleSum(), w.Histogram.GetSampleCount(), w.Histogram.GetSampleSum())
	}
	if len(h.GetBucket()) != len(w.Histogram.GetBucket())+1 {
		t.Fatalf("%d buckets, want %d and +Inf", len(h.GetBucket()), len(w.Histogram.GetBucket()))
	}
	for i, b := range h.GetBucket()[:len(bounds)] {
		if wb := w.Histogram.GetBucket()[i]; b.GetUpperBound() != wb.GetUpperBound() || b.GetCumulativeCount() != wb.GetCumulativeCount() {
			t.Errorf("bucket le=%v: %d, want le=%v: %d", b.GetUpperBound(), b.GetCumulativeCount(), wb.GetUpperBound(), wb.GetCumulativeCount())
		}
	}
}

// TestMemoryPerDatabase: the series of a database with one replica, every
// kind of event counted, hold little memory between scrapes (issue 15: the
// metrics add nothing measurable to the idle figures). client_golang's
// vectors held about 11 KB a database; the bound is 2 KB.
func TestMemoryPerDatabase(t *testing.T) {
	const n = 1000
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("/data/tenants/db%04d.db", i)
	}
	heap := func() uint64 {
		// Twice: what finalizers of earlier tests' servers free goes
		// with the second.
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	m := metrics.New(func(context.Context, time.Time) []walship.DBStatus { return nil })
	for _, db := range paths {
		m.Track(db, "s3")
		for _, e := range []walship.Event{
			{Kind: event.Sync, Duration: time.Millisecond},
			{Kind: event.Checkpoint, Duration: time.Millisecond},
			{Kind: event.Compaction, Duration: time.Millisecond},
			{Kind: event.Snapshot, Duration: time.Second},
			{Kind: event.Upload, Replica: "s3", Duration: time.Second, Bytes: 4096, Files: 1},
			{Kind: event.UploadError, Replica: "s3", ErrKind: event.ErrNetwork},
			{Kind: event.Retention, Replica: "s3", Files: 2},
			{Kind: event.Verify, Replica: "s3", Result: event.VerifyWhole},
		} {
			e.DB = db
			m.Observe(e)
		}
	}
	held := int64(heap()) - int64(before)
	runtime.KeepAlive(m)
	t.Logf("%d bytes for %d databases: %d a database", held, n, held/n)
	if held > 2<<10*n {
		t.Errorf("the metrics of %d databases hold %d bytes, %d a database: want at most 2 KB a database", n, held, held/n)
	}
}

// TestObserveWhileScraped: the engine counts from a goroutine per database
// while Prometheus scrapes; every event is counted once (run with -race).
func TestObserveWhileScraped(t *testing.T) {
	m := metrics.New(func(context.Context, time.Time) []walship.DBStatus { return nil })
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	const dbs, events = 4, 500
	var wg sync.WaitGroup
	for i := range dbs {
		wg.Go(func() {
			db := fmt.Sprintf("/db%d.db", i)
			m.Track(db, "s3")
			for range events {
				m.Observe(walship.Event{Kind: event.Sync, DB: db, Duration: time.Millisecond})
				m.Observe(walship.Event{Kind: event.Upload, DB: db, Replica: "s3", Duration: time.Millisecond, Bytes: 10, Files: 1})
			}
		})
	}
	scrapes := make(chan error)
	go func() {
		defer close(scrapes)
		for range 5 {
			_, err := testutil.Scrape(srv.URL)
			scrapes <- err
		}
	}()
	for err := range scrapes {
		if err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	got, err := testutil.Scrape(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"walship_sync_duration_seconds", "walship_upload_duration_seconds", "walship_replica_uploaded_files_total"} {
		if n := got.Sum(name); n != dbs*events {
			t.Errorf("%s: %v in all, want %d", name, n, dbs*events)
		}
	}
	if n := got.Sum("walship_replica_uploaded_bytes_total"); n != 10*dbs*events {
		t.Errorf("uploaded bytes: %v, want %d", n, 10*dbs*events)
	}
}
