package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The diskfull kind puts the staging directory, or in other trials the
// directory replica, on a small tmpfs and fills it up while walship
// replicates under load: completely, or all but a few kilobytes, so that
// writes fail part way. In a third of the trials walship is also killed
// and restarted while the disk is full. walship must keep running; once
// the space is freed, restores must be states of the history, and after
// walship catches up, the source exactly: no committed row lost.

var diskfullKind = &kind{
	name:   "diskfull",
	budget: 3 * time.Minute,
	summary: "the staging directory (half the trials) or the directory replica (the other half) is on a 32 MiB tmpfs, " +
		"filled while walship replicates under load (completely, or all but 4–64 KiB), for 0.1–0.6 s, in a third of the trials " +
		"with a SIGKILL and restart of walship while full; then the space is freed. walship must not exit; restores of the " +
		"latest state and an earlier restore point are checked, and every trial ends with the byte-for-byte comparison.",
	prepare:   (*suite).checkRoot,
	run:       runDiskfull,
	healBound: 30 * time.Second,
	healWhat:  "time from freeing the space to a restore of the latest state holding every commit made before",
}

func runDiskfull(t *trial) error {
	where := pick(t, "staging directory", "replica")
	mnt := t.path("tmpfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return err
	}
	if err := t.s.mounts.mount(mnt, "32m"); err != nil {
		return err
	}
	t.cleanup(func() {
		if err := t.s.mounts.unmount(mnt); err != nil {
			t.printf("%v", err)
		}
	})
	cfg := walshipConfig{
		db:           t.path("app.db"),
		syncInterval: pick(t, 0, 5*time.Millisecond, 20*time.Millisecond, 100*time.Millisecond),
		replica:      dirTarget(t.path("replica")),
	}
	if where == "replica" {
		cfg.replica = dirTarget(filepath.Join(mnt, "replica"))
	} else {
		cfg.metaPath = filepath.Join(mnt, "staging")
	}
	if t.rng.IntN(2) == 0 {
		cfg.levels = []time.Duration{200 * time.Millisecond, time.Second}
		cfg.snapshot = pick(t, 500*time.Millisecond, time.Second)
	}
	s, err := t.newSession(cfg, history{seed: t.rng.Uint64()})
	if err != nil {
		return err
	}
	if err := s.startApp(200 + t.rng.IntN(600)); err != nil {
		return err
	}
	if err := s.startReplicator(); err != nil {
		return err
	}
	if t.rng.IntN(3) > 0 {
		if err := s.awaitUpload(); err != nil {
			return err
		}
	}
	if err := t.sleep(t.duration(50*time.Millisecond, 250*time.Millisecond)); err != nil {
		return err
	}

	leave := pick(t, 0, 0, 4<<10+t.rng.Int64N(60<<10))
	t.stepf("fill the %s's disk, leaving %d bytes", where, leave)
	filler, err := fill(mnt, leave)
	if err != nil {
		return err
	}
	t.note(fmt.Sprintf("%s's disk filled", where))
	if err := t.sleep(t.duration(100*time.Millisecond, 600*time.Millisecond)); err != nil {
		return err
	}
	if t.rng.IntN(3) == 0 {
		t.note("SIGKILL and restart while the disk is full")
		if err := s.killReplicator(); err != nil {
			return fmt.Errorf("on a full disk: %w", err)
		}
		if err := s.startReplicator(); err != nil {
			return err
		}
		if err := t.sleep(t.duration(50*time.Millisecond, 300*time.Millisecond)); err != nil {
			return err
		}
	}
	if err := s.replicatorRunning(); err != nil {
		return fmt.Errorf("on a full disk: %w", err)
	}
	before, err := s.appCommit()
	if err != nil {
		return err
	}
	t.stepf("free the %s's disk (the application is at commit %d)", where, before)
	if err := os.Remove(filler); err != nil {
		return err
	}
	freed := time.Now()
	t.stats.label = where
	heal, latest, lm, err := s.awaitLatest("", freed, before, t.kind.healBound)
	if err != nil {
		return err
	}
	t.stats.heal, t.stats.healed = heal, true
	t.printf("restorable with every commit %s after the space was freed", heal.Round(time.Millisecond))
	if err := s.replicatorRunning(); err != nil {
		return fmt.Errorf("after the disk was full: %w", err)
	}
	if err := s.checkEarlier("", latest, lm); err != nil {
		return err
	}
	return s.checkFinal(true)
}
