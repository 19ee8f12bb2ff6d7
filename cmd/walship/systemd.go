package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/sdnotify"
)

// statusEvery is how often the STATUS= line systemd shows is refreshed (and
// READY=1 looked for) when no watchdog asks for more.
const statusEvery = time.Second

// dbState is what the systemd status line and the watchdog read of one
// database: only what the engine exposes to any caller.
type dbState struct {
	path     string
	phase    walship.Phase
	beats    uint64
	txid     ltx.TXID
	replicas []replicaState
}

type replicaState struct {
	name string
	txid ltx.TXID
	err  error
}

func stateOf(db *walship.DB) dbState {
	s := dbState{path: db.Path(), phase: db.Phase(), beats: db.Beats(), txid: db.Pos().TXID}
	for _, r := range db.Replicas() {
		s.replicas = append(s.replicas, replicaState{name: r.Name, txid: r.Pos().TXID, err: r.Err()})
	}
	return s
}

// started reports whether every database is past its start: replicating,
// waiting for its file or for a problem to clear, or stopped. systemd gets
// READY=1 then rather than when every one replicates, since a database
// whose file does not exist yet may wait for ever, and a start that never
// ends fails the unit.
func started(states []dbState) bool {
	for _, s := range states {
		if s.phase == walship.PhaseStarting {
			return false
		}
	}
	return true
}

// statusLine summarises the databases in one line: how many are in each
// phase, how many replicas hold the newest state, the newest TXID, and the
// first error or stalled loop.
func statusLine(states []dbState, stalled []string) string {
	counts := map[walship.Phase]int{}
	var newest ltx.TXID
	replicas, inSync := 0, 0
	var problem string
	for _, s := range states {
		counts[s.phase]++
		newest = max(newest, s.txid)
		for _, r := range s.replicas {
			replicas++
			switch {
			case r.err != nil:
				if problem == "" {
					problem = fmt.Sprintf("replica %s of %s: %v", r.name, s.path, r.err)
				}
			case r.txid >= s.txid:
				inSync++
			}
		}
	}
	var phases []string
	for _, p := range []walship.Phase{walship.PhaseReplicating, walship.PhaseStarting, walship.PhaseWaiting, walship.PhaseStopped} {
		if counts[p] > 0 {
			phases = append(phases, fmt.Sprintf("%d %s", counts[p], p))
		}
	}
	line := fmt.Sprintf("%d %s (%s); %d of %d %s in sync; newest TXID %s",
		len(states), plural(len(states), "database", "databases"), strings.Join(phases, ", "),
		inSync, replicas, plural(replicas, "replica", "replicas"), newest)
	if len(stalled) > 0 {
		line += "; monitor loop stalled: " + strings.Join(stalled, ", ")
	}
	if problem != "" {
		const most = 300 // systemctl status shows one line
		if len(problem) > most {
			problem = problem[:most] + "…"
		}
		line += "; " + problem
	}
	return line
}

// watchdog tells a live engine from a stuck one: every database that
// replicates must have gone round its monitor loop since the last check
// (each check probes it, so an idle loop goes round too).
type watchdog struct {
	beats map[string]uint64 // at the last check, of the databases then replicating
}

// check returns the databases whose loop has not gone round since the last
// check, and records where each is now.
func (w *watchdog) check(states []dbState) (stalled []string) {
	seen := make(map[string]uint64, len(states))
	for _, s := range states {
		if s.phase != walship.PhaseReplicating {
			continue // opening or waiting has no loop to watch yet
		}
		if last, ok := w.beats[s.path]; ok && last == s.beats {
			stalled = append(stalled, s.path)
		}
		seen[s.path] = s.beats
	}
	w.beats = seen
	return stalled
}

// superviseSystemd keeps systemd informed (Type=notify) until ctx ends:
// READY=1 once every database has started, STATUS= as it changes, and,
// when the unit sets WatchdogSec, WATCHDOG=1 at half that interval while
// every replicating database's monitor loop goes round. When ctx ends it
// sends STOPPING=1 and returns. Without $NOTIFY_SOCKET it returns at once.
func superviseSystemd(ctx context.Context, log *slog.Logger, dbs func() []*walship.DB) {
	n, err := sdnotify.New()
	if err != nil {
		log.Warn("not notifying systemd", "error", err)
		return
	}
	if n == nil {
		return
	}
	defer n.Close()
	interval, err := sdnotify.WatchdogInterval()
	if err != nil {
		log.Warn("systemd's watchdog is not pinged", "error", err)
	}
	probe := func() {
		for _, db := range dbs() {
			db.Probe()
		}
	}
	notifyLoop(ctx, log, n, interval, func() []dbState { return collect(dbs()) }, probe)
}

// notifyLoop is superviseSystemd's loop, with the databases' states read
// by collect and their monitor loops probed by probe.
func notifyLoop(ctx context.Context, log *slog.Logger, n *sdnotify.Notifier, interval time.Duration, collect func() []dbState, probe func()) {
	var ping <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		ping = t.C
	}
	every := statusEvery
	if interval > 0 {
		every = min(every, interval/2)
	}
	refresh := time.NewTicker(every)
	defer refresh.Stop()

	send := func(states ...string) {
		if err := n.Send(states...); err != nil {
			log.Warn("cannot notify systemd", "error", err)
		}
	}
	var wd watchdog
	var stalled []string
	ready, lastStatus := false, ""
	probe()
	for {
		select {
		case <-ctx.Done():
			send(sdnotify.Stopping, sdnotify.Status("stopping: capturing the last changes and flushing the replicas"))
			return
		case <-ping:
			now := wd.check(collect())
			for _, path := range now {
				if !slices.Contains(stalled, path) {
					log.Error("the database's monitor loop has not gone round for half of systemd's WatchdogSec; walship stops pinging the watchdog, so systemd restarts it if the loop stays stuck",
						"db", path, "watchdog", interval.String())
				}
			}
			for _, path := range stalled {
				if !slices.Contains(now, path) {
					log.Info("the database's monitor loop goes round again; pinging systemd's watchdog again", "db", path)
				}
			}
			stalled = now
			if len(stalled) == 0 {
				send(sdnotify.Watchdog)
			}
			probe()
		case <-refresh.C:
		}
		states := collect()
		var msgs []string
		if status := statusLine(states, stalled); status != lastStatus {
			msgs, lastStatus = append(msgs, sdnotify.Status(status)), status
		}
		if !ready && started(states) {
			msgs, ready = append(msgs, sdnotify.Ready), true
		}
		send(msgs...)
	}
}

func collect(dbs []*walship.DB) []dbState {
	states := make([]dbState, len(dbs))
	for i, db := range dbs {
		states[i] = stateOf(db)
	}
	return states
}
