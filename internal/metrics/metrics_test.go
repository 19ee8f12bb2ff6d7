package metrics_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

// Two replicas of one type without names are both named by the type: the
// scrape still succeeds, the second under name#2.
func TestScrapeSameNames(t *testing.T) {
	status := func(context.Context, time.Time) []walship.DBStatus {
		return []walship.DBStatus{{Path: "/a.db", Replicas: []walship.ReplicaStatus{{Name: "s3", TXID: 1}, {Name: "s3", TXID: 2}}}}
	}
	srv := httptest.NewServer(metrics.New(status).Handler())
	defer srv.Close()
	got, err := testutil.Scrape(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := got.Value("walship_replica_txid", "replica", "s3#2"); !ok || v != 2 {
		t.Errorf("the second s3 replica: %v %v", v, ok)
	}
}
