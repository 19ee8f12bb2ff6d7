// Package heartbeat tells a dead-man switch (healthchecks.io, Cronitor, ...)
// that replication works: after each interval in which every replica stayed
// in sync, it sends a GET to the configured URL. When replication stops, or
// the process does, the pings stop and the switch alerts.
//
// The URL usually holds a secret (the check's ID or a token): it is never
// logged, not even in an error.
package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/metrics"
)

// DefaultInterval is heartbeat-interval's default, Litestream's.
const DefaultInterval = 5 * time.Minute

// requestTimeout bounds one ping: a switch that does not answer must not
// delay the next.
const requestTimeout = 30 * time.Second

// Run pings url after each interval during which every replica was in
// sync (see InSync), until ctx ends.
func Run(ctx context.Context, pingURL string, interval time.Duration, status metrics.StatusFunc, log *slog.Logger) {
	client := &http.Client{Timeout: requestTimeout}
	before := status(ctx, time.Now())
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		after, why := settle(ctx, before, status)
		if why != "" {
			log.Warn("no heartbeat sent: a replica was not in sync during the interval", "reason", why, "interval", interval.String())
		} else if err := ping(ctx, client, pingURL); err != nil {
			log.Error("heartbeat failed", "error", err)
		}
		before = after
	}
}

// settleFor is how long, at the end of an interval, a replica still
// uploading the last sync's file is waited for: under steady writes some
// file is nearly always on its way.
const settleFor = 10 * time.Second

// settle reads the status until replication is in sync since before, or
// settleFor passes, and returns the last reading and why it is not in sync.
func settle(ctx context.Context, before []walship.DBStatus, status metrics.StatusFunc) ([]walship.DBStatus, string) {
	deadline := time.Now().Add(settleFor)
	for {
		after := status(ctx, time.Now())
		why := InSync(before, after)
		if why == "" || time.Now().After(deadline) || ctx.Err() != nil {
			return after, why
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// InSync returns why replication was not in sync between two readings of
// the status, or "" if it was: at the second, every replica holds every
// captured TXID; between them, no upload failed.
func InSync(before, after []walship.DBStatus) string {
	failures := map[[2]string]uint64{}
	for _, db := range before {
		for _, r := range db.Replicas {
			failures[[2]string{db.Path, r.Name}] = r.Failures
		}
	}
	for _, db := range after {
		if db.Error != "" {
			return fmt.Sprintf("database %s cannot be synced", db.Path)
		}
		for _, r := range db.Replicas {
			switch {
			case r.Lag > 0 || r.TXID < db.TXID:
				return fmt.Sprintf("replica %s of %s lags by %s", r.Name, db.Path, r.Lag.Round(time.Millisecond))
			case r.Stopped != "":
				return fmt.Sprintf("replica %s of %s is written no more", r.Name, db.Path)
			case r.Failures != failures[[2]string{db.Path, r.Name}]:
				return fmt.Sprintf("an upload to replica %s of %s failed", r.Name, db.Path)
			}
		}
	}
	return ""
}

// ping sends one GET. Its error says what failed without the URL.
func ping(ctx context.Context, client *http.Client, pingURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pingURL, nil)
	if err != nil {
		return errors.New("heartbeat-url is not a valid URL")
	}
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the same error, without the URL
		}
		return fmt.Errorf("GET to the host %s: %w", req.URL.Host, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("GET to the host %s: %s", req.URL.Host, resp.Status)
	}
	return nil
}
