package main

import (
	"context"
	"fmt"
	"time"

	"github.com/walship/walship/internal/testserver"
)

// The proxy kind is the kill kind against MinIO on 127.0.0.1 behind the
// fault proxy of internal/testserver: a share of requests (2–20%) answered
// 503 or 500, reset before or halfway through the answer, or stalled, and
// in a third of the trials the server down altogether for a moment.
// Restores read the replica through the proxy in a third of the trials (a
// restore that fails there is retried; one that succeeds must be exact),
// straight from MinIO in the others.

var proxyKind = &kind{
	name:   "proxy",
	budget: 4 * time.Minute,
	summary: "the kill trial (one SIGKILL, 100–500 commits/s) against MinIO on 127.0.0.1 behind a fault proxy: 2–20% of requests fail " +
		"(503 SlowDown, 500, connection reset before the request or halfway through the answer, a stall of up to 50, 200 or 500 ms), " +
		"and in a third of the trials the server is down for 0.1–0.8 s; restores go through the proxy in a third of the trials " +
		"(retried when they fail; one that succeeds must be exact), straight to MinIO otherwise.",
	parallel: 4, // it waits on retries more than it computes
	prepare:  (*suite).startMinIO,
	run:      runProxy,
	load:     [2]int{100, 500},
	configure: func(t *trial, cfg *walshipConfig) {
		// Fewer, larger files than the kill kind's: every file is a
		// request, and the point is how they fail, not how many there are.
		cfg.syncInterval = pick(t, 20*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond)
		cfg.levels = []time.Duration{250 * time.Millisecond, time.Second}
		cfg.snapshot = pick(t, time.Second, 2*time.Second)
	},
	healBound: time.Minute,
	healWhat:  killKind.healWhat,
}

// restoreAttemptsThroughFaults is how often a restore through the fault
// proxy is tried before the trial fails.
const restoreAttemptsThroughFaults = 8

func runProxy(t *trial) error {
	m := t.s.minio
	prefix := fmt.Sprintf("%s-%04d", t.kind.name, t.index)
	rate := pick(t, 0.02, 0.05, 0.1, 0.2)
	proxy, err := testserver.StartFaultProxy(m.Endpoint, rate, t.rng.Uint64())
	if err != nil {
		return err
	}
	t.cleanup(proxy.Close)
	proxy.SetMaxDelay(pick(t, 50*time.Millisecond, 200*time.Millisecond, 500*time.Millisecond))
	t.printf("fault proxy %s: %.0f%% of requests fail", proxy.URL, rate*100)
	if t.rng.IntN(3) == 0 {
		after, lasts := t.duration(0, 500*time.Millisecond), t.duration(100*time.Millisecond, 800*time.Millisecond)
		down := time.AfterFunc(after, func() { proxy.SetDown(true) })
		up := time.AfterFunc(after+lasts, func() { proxy.SetDown(false) })
		t.cleanup(func() { down.Stop(); up.Stop() })
		t.note("server down for a moment")
	}
	restoreURL := m.url(prefix, m.Endpoint)
	if t.rng.IntN(3) == 0 {
		restoreURL = m.url(prefix, proxy.URL)
		t.retries = restoreAttemptsThroughFaults
		t.note("restores through the fault proxy")
	}
	t.listURL = m.url(prefix, m.Endpoint) // what to restore is chosen from MinIO itself
	err = killTrial(t, m.target(prefix, proxy.URL), restoreURL, 1)
	t.printf("fault proxy: %s", proxy.Summary())
	for f := testserver.Fault(0); f < testserver.NumFaults; f++ {
		t.stats.notes["requests answered with a fault: "+f.String()] += int(proxy.Count(f))
	}
	t.stats.notes["requests through the proxy"] += int(proxy.Total())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.removePrefix(ctx, prefix); err != nil {
			t.printf("remove the replica from MinIO: %v", err)
		}
	}
	return err
}
