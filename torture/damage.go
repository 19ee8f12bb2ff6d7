package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The damage kind damages the directory replica while walship replicates
// under load, with short intervals (the replica audited and verified every
// half second): one file deleted, a whole level, the whole replica, the
// newest snapshot with bytes flipped, a file truncated or corrupted. In
// half the trials a snapshot is taken every second, so the schedule alone
// repairs the replica soon; in the others every hour, so only walship's
// audit and verification can. The time to heal is how long until a
// restore of the latest state succeeds and holds every commit the
// application had made when the damage was done. A trial that does not
// heal within twice the longest of those intervals that can heal it
// (one second) plus slack fails; every restore that succeeds, healed or
// not, must be a state of the history.

// Intervals of the damage kind's replicator.
const (
	damageCheck     = 500 * time.Millisecond // audit-interval and validation-interval
	damageSnapshot  = time.Second            // snapshot: interval: in half the trials
	damageRareSnaps = time.Hour              // in the others
)

var damageKind = &kind{
	name:   "damage",
	budget: 3 * time.Minute,
	summary: fmt.Sprintf("while walship replicates under load (100–500 commits/s) to a directory, with `audit-interval` and "+
		"`validation-interval` of %s, levels of 250 ms and 1 s, and `snapshot: interval:` of %s in half the trials "+
		"(the schedule alone soon repairs the replica) or %s in the others (only the audit and the verification can), one damage: "+
		"a random file deleted, a whole level deleted, the whole replica directory deleted, bytes flipped in the newest snapshot, "+
		"or a random file truncated or corrupted (a damaged file is written anew and renamed into place, so the staged copy walship "+
		"hard-links from is left as it was). Restores of the latest state are then polled until one holds every commit made before "+
		"the damage; then the final byte-for-byte comparison.", shortDur(damageCheck), shortDur(damageSnapshot), shortDur(damageRareSnaps)),
	run:       runDamage,
	healBound: 2*damageSnapshot + 3*time.Second,
	healWhat:  "time from the damage to the first restore of the latest state that succeeds and holds every commit made before the damage",
}

// damage is one way to damage a replica.
type damage string

const (
	damageDeleteFile    damage = "delete a file"
	damageDeleteLevel   damage = "delete a level"
	damageDeleteReplica damage = "delete the whole replica"
	damageFlipSnapshot  damage = "flip bytes in the newest snapshot"
	damageTruncateFile  damage = "truncate a file"
	damageCorruptFile   damage = "flip bytes in a file"
	damageNothingToHarm damage = "nothing to damage"
)

// flipMax is the most bytes a corruption flips.
const flipMax = 16

var damages = []damage{damageDeleteFile, damageDeleteLevel, damageDeleteReplica, damageFlipSnapshot, damageTruncateFile, damageCorruptFile}

func runDamage(t *trial) error {
	replica := t.path("replica")
	cfg := walshipConfig{
		db:           t.path("app.db"),
		syncInterval: pick(t, 0, 10*time.Millisecond, 50*time.Millisecond),
		levels:       []time.Duration{250 * time.Millisecond, time.Second},
		snapshot:     pick(t, damageSnapshot, damageRareSnaps),
		validation:   damageCheck,
		audit:        damageCheck,
		replica:      dirTarget(replica),
	}
	s, err := t.newSession(cfg, history{seed: t.rng.Uint64()})
	if err != nil {
		return err
	}
	if err := s.startApp(100 + t.rng.IntN(400)); err != nil {
		return err
	}
	if err := s.startReplicator(); err != nil {
		return err
	}
	if err := s.awaitUpload(); err != nil {
		return err
	}
	if err := t.sleep(t.duration(300*time.Millisecond, time.Second)); err != nil {
		return err
	}
	if err := s.replicatorRunning(); err != nil {
		return err
	}
	before, err := s.appCommit()
	if err != nil {
		return err
	}
	d := pick(t, damages...)
	t.stepf("damage the replica: %s (the application is at commit %d)", d, before)
	did, err := damageReplica(t, replica, d)
	if err != nil {
		return fmt.Errorf("damage the replica (%s): %w", d, err)
	}
	at := time.Now()
	t.printf("damaged: %s", did)
	t.stats.label = fmt.Sprintf("%s, snapshots every %s", d, shortDur(cfg.snapshot))
	t.note("damage: " + string(d))
	heal, _, _, err := s.awaitLatest("", at, before, t.kind.healBound)
	if err != nil {
		return fmt.Errorf("after the damage (%s): %w", did, err)
	}
	t.stats.heal, t.stats.healed = heal, true
	t.printf("healed %s after the damage", heal.Round(time.Millisecond))
	if err := s.replicatorRunning(); err != nil {
		return fmt.Errorf("after the damage (%s): %w", did, err)
	}
	if err := s.checkFinal(false); err != nil {
		return fmt.Errorf("after the damage (%s), healed in %s: %w", did, heal.Round(time.Millisecond), err)
	}
	return nil
}

// damageReplica does d to the directory replica at dir and says what it
// did. A file is damaged by writing a damaged copy and renaming it into
// place: walship hard-links staged files into a directory replica, and
// damaging the inode would damage the staged copy too, which is not the
// replica's damage.
func damageReplica(t *trial, dir string, d damage) (string, error) {
	files, err := replicaFiles(dir)
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return string(damageNothingToHarm), fmt.Errorf("the replica holds no file yet")
	}
	rel := func(p string) string { r, _ := filepath.Rel(dir, p); return r }
	switch d {
	case damageDeleteFile:
		f := pick(t, files...)
		return "deleted " + rel(f), os.Remove(f)
	case damageDeleteLevel:
		levels := map[string]bool{}
		for _, f := range files {
			levels[filepath.Dir(f)] = true
		}
		var names []string
		for l := range levels {
			names = append(names, l)
		}
		slices.Sort(names)
		l := pick(t, names...)
		return "deleted level " + rel(l), removeAll(l)
	case damageDeleteReplica:
		return "deleted the replica directory", removeAll(dir)
	case damageFlipSnapshot:
		var snaps []string
		for _, f := range files {
			if strings.HasPrefix(rel(f), filepath.Join("ltx", "9")+"/") {
				snaps = append(snaps, f)
			}
		}
		if len(snaps) == 0 {
			return "", fmt.Errorf("the replica holds no snapshot")
		}
		f := snaps[len(snaps)-1] // names sort by TXID
		return flipBytes(t, f, rel(f))
	case damageCorruptFile:
		f := pick(t, files...)
		return flipBytes(t, f, rel(f))
	case damageTruncateFile:
		f := pick(t, files...)
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		n := t.rng.IntN(len(b))
		return fmt.Sprintf("truncated %s from %d to %d bytes", rel(f), len(b), n), replaceFile(f, b[:n])
	}
	return "", fmt.Errorf("unknown damage %q", d)
}

// flipBytes flips a few random bytes of the file at path.
func flipBytes(t *trial, path, name string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var at []int
	for range 1 + t.rng.IntN(flipMax) {
		i := t.rng.IntN(len(b))
		b[i] ^= byte(1 + t.rng.IntN(255))
		at = append(at, i)
	}
	slices.Sort(at)
	return fmt.Sprintf("flipped bytes %v of %s (%d bytes)", at, name, len(b)), replaceFile(path, b)
}

// replaceFile writes b to a new file and renames it over path.
func replaceFile(path string, b []byte) error {
	tmp := path + ".damaged"
	if err := os.WriteFile(tmp, b, 0o444); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// replicaFiles returns the LTX files of a directory replica, sorted.
func replicaFiles(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "ltx", "*", "*.ltx"))
	slices.Sort(files)
	return files, err
}

// removeAll removes a directory that walship may be writing into at the
// same moment: it tries again while a new file keeps it from going.
func removeAll(dir string) error {
	var err error
	for range 20 {
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return err
}
