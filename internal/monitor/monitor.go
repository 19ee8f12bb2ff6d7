// Package monitor serves a running replicator's state over HTTP, on the
// listener of the config's addr: (or replicate -addr):
//
//   - /metrics: Prometheus metrics (package internal/metrics);
//   - /healthz: 200 while every replica's lag is under the health-max-lag
//     setting, else 503 with a JSON body naming the lagging database and
//     replica; for a liveness or readiness probe, or a load balancer;
//   - /status: every database's and replica's state as JSON (Report),
//     which `walship status` reads.
//
// Nothing it serves holds a credential: replicas are named by their names,
// and their errors by their redacted URLs.
package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/metrics"
)

// DefaultMaxLag is health-max-lag's default: past a minute without a
// commit reaching a replica, something is wrong (a sync interval is
// seconds, an upload of a day's snapshot rarely a minute).
const DefaultMaxLag = time.Minute

// Report is the JSON document of /status.
type Report struct {
	// Source says where the state was read: "process" for a running
	// replicator's, "replicas" for what walship status read from the
	// replicas themselves when no process answered.
	Source string             `json:"source"`
	Time   time.Time          `json:"time"`
	DBs    []walship.DBStatus `json:"dbs"`
}

// Handler returns the handler of /metrics, /healthz and /status.
func Handler(m *metrics.Metrics, status metrics.StatusFunc, maxLag time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, req *http.Request) {
		if lagging, ok := Lagging(status(req.Context(), time.Now()), maxLag); ok {
			writeJSON(w, http.StatusServiceUnavailable, lagging)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, req *http.Request) {
		now := time.Now()
		writeJSON(w, http.StatusOK, Report{Source: "process", Time: now.UTC(), DBs: status(req.Context(), now)})
	})
	return mux
}

// Unhealthy is /healthz's body when a replica lags.
type Unhealthy struct {
	Status     string  `json:"status"` // "lagging", or "failing" for a database that cannot be synced
	DB         string  `json:"db"`
	Replica    string  `json:"replica,omitempty"`
	LagSeconds float64 `json:"lag_seconds"`
	MaxLag     string  `json:"max_lag"`
	Error      string  `json:"error,omitempty"` // the replica's last upload error
}

// Lagging returns the replica that lags the most, if one lags by maxLag or
// more. A database that has failed to open or sync for maxLag or more
// lags as much, with no replica named: nothing of it is captured.
func Lagging(dbs []walship.DBStatus, maxLag time.Duration) (Unhealthy, bool) {
	var worst Unhealthy
	found := false
	for _, db := range dbs {
		if db.Error != "" {
			if d := time.Since(db.FailingSince); d >= maxLag && (!found || d.Seconds() > worst.LagSeconds) {
				worst = Unhealthy{Status: "failing", DB: db.Path, LagSeconds: d.Seconds(), MaxLag: maxLag.String(), Error: db.Error}
				found = true
			}
		}
		for _, r := range db.Replicas {
			if r.Lag >= maxLag && (!found || r.Lag.Seconds() > worst.LagSeconds) {
				worst = Unhealthy{Status: "lagging", DB: db.Path, Replica: r.Name, LagSeconds: r.Lag.Seconds(), MaxLag: maxLag.String(), Error: r.Error}
				found = true
			}
		}
	}
	return worst, found
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// Address returns the address to listen on for addr as an operator wrote
// it: without a host (":9090"), loopback, so that the metrics are not
// served to the network unless asked for by name ("0.0.0.0:9090").
func Address(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("addr %q: want HOST:PORT or :PORT (e.g. :9090 for loopback, 0.0.0.0:9090 for every interface): %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Serve serves h on addr (see Address) until ctx ends. It returns once
// the listener is open, or with the error that kept it from opening; the
// address it listens on is the one returned (the port chosen, for ":0").
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (string, error) {
	addr, err := Address(addr)
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("serve metrics: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("the metrics listener stopped", "addr", ln.Addr().String(), "error", err)
		}
	}()
	return ln.Addr().String(), nil
}
