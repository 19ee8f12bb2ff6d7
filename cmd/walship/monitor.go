package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
	"github.com/walship/walship/internal/heartbeat"
	"github.com/walship/walship/internal/metrics"
	"github.com/walship/walship/internal/monitor"
)

// watchSettings say how replicate shows its state: the listener of
// metrics, /healthz and /status, and the heartbeat.
type watchSettings struct {
	addr           string // empty: nothing listens
	maxLag         time.Duration
	heartbeatURL   string // empty: no heartbeat
	heartbeatEvery time.Duration
}

// watchFromConfig returns the settings of cfg (nil for none) with their
// defaults; a non-empty addrFlag (replicate -addr) overrides addr:.
func watchFromConfig(cfg *config.Config, addrFlag string) watchSettings {
	w := watchSettings{addr: addrFlag, maxLag: monitor.DefaultMaxLag, heartbeatEvery: heartbeat.DefaultInterval}
	if cfg == nil {
		return w
	}
	if w.addr == "" {
		w.addr = cfg.Addr
	}
	if cfg.HealthMaxLag != nil {
		w.maxLag = *cfg.HealthMaxLag
	}
	if cfg.HeartbeatInterval != nil {
		w.heartbeatEvery = *cfg.HeartbeatInterval
	}
	w.heartbeatURL = cfg.HeartbeatURL
	return w
}

// startWatching starts serving metrics and sending heartbeats, as w says,
// until ctx ends. It must run before store.Run, so that the databases send
// their events from the start: it adds to store.Prepare.
func startWatching(ctx context.Context, log *slog.Logger, store *walship.Store, w watchSettings) error {
	if w.addr != "" {
		if err := serveMonitor(ctx, log, store, w); err != nil {
			return err
		}
	}
	if w.heartbeatURL != "" {
		// The URL is the check's secret: it is not logged.
		log.Info("sending a heartbeat after each interval in which every replica stays in sync", "interval", w.heartbeatEvery.String())
		go heartbeat.Run(ctx, w.heartbeatURL, w.heartbeatEvery, store.Status, log)
	}
	return nil
}

// serveMonitor serves metrics, /healthz and /status on w.addr until ctx
// ends. A standby calls it before it stands by, so that its lag and the
// lease's holder are served while it waits, and the same listener goes on
// once it is promoted: it adds to store.Prepare, which Run calls.
func serveMonitor(ctx context.Context, log *slog.Logger, store *walship.Store, w watchSettings) error {
	m := metrics.New(store.Status)
	prepare := store.Prepare
	store.Prepare = func(db *walship.DB) {
		if prepare != nil {
			prepare(db)
		}
		var names []string
		for _, r := range db.Replicas() {
			names = append(names, r.Name)
		}
		m.Track(db.Path(), names...)
		db.SetEvents(m.Observe)
	}
	addr, err := monitor.Serve(ctx, w.addr, monitor.Handler(m, store.Status, w.maxLag), log)
	if err != nil {
		return err
	}
	log.Info("serving Prometheus metrics on /metrics, the health check on /healthz and the state on /status", "addr", addr, "health_max_lag", w.maxLag.String())
	return nil
}
