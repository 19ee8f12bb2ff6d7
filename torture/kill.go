package main

import (
	"fmt"
	"os"
	"time"
)

// The kill kind: `walship replicate` (to a directory) is SIGKILLed and
// restarted while the application commits hundreds of transactions a
// second. Between the kill and the restart the application may truncate
// its WAL, VACUUM, or move to another page size, or the staging directory
// may be removed: what walship must notice when it comes back. Then, while
// the application still writes, the latest state is restored until it
// holds every commit made before the restart (the time that takes is the
// kind's time to heal), and a random earlier restore point is restored;
// both must be states of the history. Every -exact-every trials, and in
// the last, the application stops, walship catches up, and the restore
// must be the source byte for byte.

var killKind = &kind{
	name:   "kill",
	budget: 3 * time.Minute,
	summary: "`walship replicate` to a directory is SIGKILLed and restarted once or twice under load (200–1,000 commits/s); " +
		"between kill and restart, at random: nothing, the application's `wal_checkpoint(TRUNCATE)`, a `VACUUM`, " +
		"a page-size change (DELETE journal, `page_size`, `VACUUM`, WAL again), or the staging directory removed. " +
		"Then, under load, the latest state is restored until it holds every commit made before the restart, and a random earlier restore point is restored; both are checked.",
	run: func(t *trial) error {
		return killTrial(t, dirTarget(t.path("replica")), "", 1+t.rng.IntN(2))
	},
	load: [2]int{200, 1000},
	configure: func(t *trial, cfg *walshipConfig) {
		cfg.syncInterval = pick(t, 0, 5*time.Millisecond, 20*time.Millisecond, 100*time.Millisecond)
		if t.rng.IntN(2) == 0 { // compaction and snapshots within the trial
			cfg.levels = []time.Duration{200 * time.Millisecond, time.Second}
			cfg.snapshot = pick(t, 500*time.Millisecond, time.Second)
		}
	},
	healBound: 30 * time.Second,
	healWhat:  "time from the last restart of walship to the first restore of the latest state holding every commit made before it",
}

// perturbation is what happens to the database while walship is down.
type perturbation string

const (
	perturbNone       perturbation = "nothing"
	perturbCheckpoint perturbation = "wal_checkpoint(TRUNCATE)"
	perturbVacuum     perturbation = "VACUUM"
	perturbPageSize   perturbation = "page-size change"
	perturbStaging    perturbation = "staging directory removed"
)

var perturbations = []perturbation{perturbNone, perturbCheckpoint, perturbVacuum, perturbPageSize, perturbStaging}

// pageSizes are the page sizes a trial may move the database to.
var pageSizes = []int{1024, 2048, 4096, 8192, 16384, 32768, 65536}

// killTrial runs one kill trial against target, with kills SIGKILLs;
// restoreURL, if set, is where restores read the replica instead of
// target.url (the proxy kind restores through the fault proxy or straight
// from the server).
func killTrial(t *trial, target replicaTarget, restoreURL string, kills int) error {
	h := history{seed: t.rng.Uint64()}
	cfg := walshipConfig{db: t.path("app.db"), replica: target}
	t.kind.configure(t, &cfg)
	s, err := t.newSession(cfg, h)
	if err != nil {
		return err
	}
	if err := s.startApp(t.kind.rate(t)); err != nil {
		return err
	}
	if err := s.startReplicator(); err != nil {
		return err
	}
	pageSize := 4096
	var restarted time.Time
	var before int64 // the application's commits when walship restarted
	for range kills {
		if err := s.replicateAWhile(); err != nil {
			return err
		}
		if err := s.killReplicator(); err != nil {
			return err
		}
		p := pick(t, perturbations...)
		t.note("between kill and restart: " + string(p))
		if err := s.perturb(p, &pageSize); err != nil {
			return err
		}
		if err := t.sleep(t.duration(0, 100*time.Millisecond)); err != nil {
			return err
		}
		if before, err = s.appCommit(); err != nil {
			return err
		}
		restarted = time.Now()
		if err := s.startReplicator(); err != nil {
			return err
		}
		if p == perturbStaging {
			if err := s.awaitClaim(); err != nil {
				return err
			}
			if err := s.ensureReplicating(); err != nil {
				return err
			}
		}
	}
	t.stepf("restore the latest state until it holds commit %d, the application's when walship restarted", before)
	heal, latest, lm, err := s.awaitLatest(restoreURL, restarted, before, t.kind.healBound)
	if err != nil {
		return err
	}
	t.stats.heal, t.stats.healed = heal, true
	if err := s.ensureReplicating(); err != nil {
		return err
	}
	if err := s.checkEarlier(restoreURL, latest, lm); err != nil {
		return err
	}
	if !t.exactTrial() {
		return nil
	}
	if err := s.ensureReplicating(); err != nil {
		return err
	}
	return s.checkFinal(true)
}

// replicateAWhile lets the replicator run before it is killed: in two
// trials of three until it has uploaded something and then up to 300 ms
// more; otherwise 0–300 ms from its start, while it may still be starting.
func (s *session) replicateAWhile() error {
	if s.t.rng.IntN(3) > 0 {
		if err := s.awaitUpload(); err != nil {
			return err
		}
	}
	if err := s.t.sleep(s.t.duration(0, 300*time.Millisecond)); err != nil {
		return err
	}
	return s.ensureReplicating()
}

// perturb does p to the database while walship is down.
func (s *session) perturb(p perturbation, pageSize *int) error {
	s.t.stepf("while walship is down: %s", p)
	switch p {
	case perturbCheckpoint:
		_, err := s.app.do(s.t, "checkpoint")
		return err
	case perturbVacuum:
		_, err := s.app.do(s.t, "vacuum")
		return err
	case perturbPageSize:
		size := *pageSize
		for size == *pageSize {
			size = pick(s.t, pageSizes...)
		}
		s.t.printf("page size %d to %d", *pageSize, size)
		if _, err := s.app.do(s.t, fmt.Sprintf("pagesize %d", size)); err != nil {
			return err
		}
		*pageSize = size
	case perturbStaging:
		s.stagingRemoved = true
		return os.RemoveAll(s.stagingDir())
	}
	return nil
}
