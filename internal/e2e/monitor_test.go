package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walship/walship/internal/monitor"
	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/internal/testutil"
)

// TestMonitoring, through the real binary with S3 (MinIO behind a proxy
// that can take it down): the metrics parse with Prometheus's own parser;
// while S3 is down the lag gauge rises, /healthz answers 503 naming the
// replica, status shows its error and no heartbeat is sent; once S3 is
// back the lag returns to 0, /healthz to 200, and heartbeats resume.
func TestMonitoring(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	proxy := testserver.NewFaultProxy(t, srv.Endpoint, 0)
	var pings atomic.Int64
	hb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/ping/SECRET" {
			pings.Add(1)
		}
	}))
	defer hb.Close()

	dir := t.TempDir()
	bin := Binary(t)
	dbPath := filepath.Join(dir, "app.db")
	addr := testserver.Addr(testserver.FreePort(t))
	cfgPath := filepath.Join(dir, "walship.yml")
	cfg := fmt.Sprintf(`addr: %s
health-max-lag: 2s
heartbeat-url: %s/ping/SECRET
heartbeat-interval: 1s
dbs:
  - path: %s
    sync-interval: 50ms
    replica:
      name: offsite
      url: s3://%s/app
      endpoint: %s
`, addr, hb.URL, dbPath, bucket, proxy.URL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"WALSHIP_ACCESS_KEY_ID=" + srv.AccessKey, "WALSHIP_SECRET_ACCESS_KEY=" + srv.SecretKey}
	base := "http://" + addr
	replica := []string{"replica", "offsite"}
	scrape := func() testutil.Metrics {
		m, err := testutil.Scrape(base + "/metrics")
		if err != nil {
			return nil // not listening yet
		}
		return m
	}
	metric := func(name string, labels ...string) float64 {
		v, ok := scrape().Value(name, labels...)
		if !ok {
			return -1
		}
		return v
	}
	healthz := func() (int, monitor.Unhealthy) {
		var body monitor.Unhealthy
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return 0, body
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}

	w := startWriter(t, dbPath)
	p := startWalship(t, bin, env, "replicate", "-config", cfgPath)
	waitFor(t, "the metrics to show the replica receiving changes", func() bool {
		return metric("walship_replica_txid", replica...) > 1 && metric("walship_replica_uploaded_files_total", replica...) > 0
	})
	if code, body := healthz(); code != http.StatusOK {
		t.Fatalf("/healthz while replicating: %d %+v", code, body)
	}
	waitFor(t, "a heartbeat while the replica is in sync", func() bool { return pings.Load() > 0 })

	proxy.SetDown(true)
	waitFor(t, "the lag to pass health-max-lag while S3 is down", func() bool {
		return metric("walship_replica_lag_seconds", replica...) >= 2
	})
	waitFor(t, "/healthz to answer 503", func() bool {
		code, body := healthz()
		return code == http.StatusServiceUnavailable && body.Replica == "offsite" && body.DB == dbPath
	})
	silent := pings.Load()
	var rep monitor.Report
	if err := json.Unmarshal([]byte(run(t, bin, env, "status", "-json", "-config", cfgPath)), &rep); err != nil || rep.Source != "process" ||
		len(rep.DBs) != 1 || rep.DBs[0].Replicas[0].Name != "offsite" || rep.DBs[0].Replicas[0].Lag < 2*time.Second {
		t.Fatalf("status -json does not show the down replica lagging: %v %+v", err, rep)
	}
	// The first failed upload pass ends once the S3 client's own retries
	// give up (ten attempts, at most 20s apart): the replica's error shows
	// from then on.
	var status string
	waitForUpTo(t, 5*time.Minute, "status to show the down replica's error", func() bool {
		status = run(t, bin, env, "status", "-config", cfgPath)
		return strings.Contains(status, "last error:")
	})
	if !strings.Contains(status, "the running walship at "+addr) || !strings.Contains(status, "replica offsite:") || strings.Contains(status, srv.SecretKey) {
		t.Fatalf("status of the down replica:\n%s", status)
	}
	if metric("walship_replica_failing", replica...) != 1 || scrape().Sum("walship_replica_upload_errors_total", replica...) < 1 {
		t.Error("the metrics do not count the failing uploads while S3 is down")
	}
	// Three heartbeat intervals, lagging throughout: no ping.
	waitFor(t, "the lag to grow by three heartbeat intervals", func() bool {
		return metric("walship_replica_lag_seconds", replica...) >= 5
	})
	if n := pings.Load(); n != silent {
		t.Fatalf("%d heartbeats while the replica lagged", n-silent)
	}

	proxy.SetDown(false)
	w.stop(t)
	waitFor(t, "the lag to return to 0 once S3 is back", func() bool {
		return metric("walship_replica_lag_seconds", replica...) == 0
	})
	waitFor(t, "/healthz to answer 200 again", func() bool { code, _ := healthz(); return code == http.StatusOK })
	waitFor(t, "heartbeats to resume", func() bool { return pings.Load() > silent })
	if metric("walship_db_txid", "db", dbPath) != metric("walship_replica_txid", replica...) {
		t.Error("the replica caught up but its TXID is not the database's")
	}
	p.terminate(t)
	if strings.Contains(p.output(), "SECRET") || strings.Contains(p.output(), srv.SecretKey) {
		t.Fatalf("walship logged a secret:\n%s", p.output())
	}
	if out := run(t, bin, env, "status", "-config", cfgPath); !strings.Contains(out, "read from the replicas") || !strings.Contains(out, "replica offsite: TXID") {
		t.Fatalf("status without a process:\n%s", out)
	}
}
