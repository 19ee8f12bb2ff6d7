package monitor_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/metrics"
	"github.com/walship/walship/internal/monitor"
)

func TestHealthz(t *testing.T) {
	var lag atomic.Int64
	status := func(context.Context, time.Time) []walship.DBStatus {
		return []walship.DBStatus{{Path: "/data/app.db", TXID: 5, Replicas: []walship.ReplicaStatus{
			{Name: "a", TXID: 5},
			{Name: "b", TXID: 4, Lag: time.Duration(lag.Load()), Error: "replica b: connection refused"},
		}}}
	}
	srv := httptest.NewServer(monitor.Handler(metrics.New(status), status, time.Minute))
	defer srv.Close()
	get := func(path string, into any) int {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return resp.StatusCode
	}

	var body monitor.Unhealthy
	lag.Store(int64(59 * time.Second))
	if code := get("/healthz", &body); code != http.StatusOK {
		t.Fatalf("lag under health-max-lag: %d %+v", code, body)
	}
	lag.Store(int64(2 * time.Minute))
	if code := get("/healthz", &body); code != http.StatusServiceUnavailable || body.DB != "/data/app.db" || body.Replica != "b" || body.LagSeconds != 120 {
		t.Fatalf("lag past health-max-lag: %d %+v", code, body)
	}

	var rep monitor.Report
	if code := get("/status", &rep); code != http.StatusOK || rep.Source != "process" || len(rep.DBs) != 1 || rep.DBs[0].Replicas[1].Lag != 2*time.Minute {
		t.Fatalf("/status: %d %+v", code, rep)
	}
}

func TestAddress(t *testing.T) {
	for in, want := range map[string]string{
		":9090":         "127.0.0.1:9090",
		"0.0.0.0:9090":  "0.0.0.0:9090",
		"[::1]:9090":    "[::1]:9090",
		"metrics:12345": "metrics:12345",
	} {
		if got, err := monitor.Address(in); err != nil || got != want {
			t.Errorf("Address(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := monitor.Address("9090"); err == nil {
		t.Error("a port without a colon is accepted")
	}
}

// A database that cannot be synced captures nothing, so no replica lags:
// once it has failed for health-max-lag, it is what /healthz names.
func TestLaggingDatabaseFailing(t *testing.T) {
	dbs := []walship.DBStatus{{Path: "/a.db", Error: "disk I/O error", FailingSince: time.Now().Add(-2 * time.Minute),
		Replicas: []walship.ReplicaStatus{{Name: "s3"}}}}
	got, ok := monitor.Lagging(dbs, time.Minute)
	if !ok || got.Status != "failing" || got.DB != "/a.db" || got.Replica != "" || got.Error != "disk I/O error" {
		t.Fatalf("Lagging = %+v, %v", got, ok)
	}
	dbs[0].FailingSince = time.Now()
	if got, ok := monitor.Lagging(dbs, time.Minute); ok {
		t.Fatalf("a failure younger than health-max-lag: %+v", got)
	}
}
