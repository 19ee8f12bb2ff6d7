package heartbeat

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
)

func status(lag time.Duration, failures uint64) []walship.DBStatus {
	held := ltx.TXID(5)
	if lag > 0 {
		held = 4
	}
	return []walship.DBStatus{{Path: "/a.db", TXID: 5, Replicas: []walship.ReplicaStatus{{Name: "r", TXID: held, Lag: lag, Failures: failures}}}}
}

func TestInSync(t *testing.T) {
	if why := InSync(status(0, 1), status(0, 1)); why != "" {
		t.Errorf("in sync: %q", why)
	}
	if why := InSync(status(0, 1), status(time.Second, 1)); !strings.Contains(why, "lags") {
		t.Errorf("lagging: %q", why)
	}
	if why := InSync(status(0, 1), status(0, 2)); !strings.Contains(why, "failed") {
		t.Errorf("an upload failed in between: %q", why)
	}
	failing := status(0, 1)
	failing[0].Error = "disk I/O error"
	if why := InSync(status(0, 1), failing); !strings.Contains(why, "cannot be synced") {
		t.Errorf("the database cannot be synced: %q", why)
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestRun: pings arrive while every replica is in sync, and none while one
// lags.
func TestRun(t *testing.T) {
	var pings atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/ping/SECRET" {
			pings.Add(1)
		}
	}))
	defer srv.Close()
	var lag atomic.Int64
	st := func(context.Context, time.Time) []walship.DBStatus { return status(time.Duration(lag.Load()), 0) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, srv.URL+"/ping/SECRET", 20*time.Millisecond, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() { cancel(); <-done }()

	waitFor(t, func() bool { return pings.Load() >= 2 }, "pings while in sync")
	lag.Store(int64(time.Hour))
	time.Sleep(100 * time.Millisecond) // a ping in flight may still arrive
	stalled := pings.Load()
	time.Sleep(300 * time.Millisecond)
	if n := pings.Load(); n != stalled {
		t.Fatalf("%d pings while a replica lagged", n-stalled)
	}
	lag.Store(0)
	waitFor(t, func() bool { return pings.Load() >= stalled+2 }, "pings once back in sync")
}

// A failed ping says which host did not answer, never the URL's secret.
func TestPingErrorHidesURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/ping/SECRET?token=SECRET"
	client := &http.Client{Timeout: 5 * time.Second}
	err := ping(context.Background(), client, url)
	if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "404") {
		t.Errorf("a 404: %v", err)
	}
	srv.Close() // now nothing listens there
	err = ping(context.Background(), client, url)
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("an unreachable host: %v", err)
	}
}
