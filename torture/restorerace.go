package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/superfly/ltx"
)

// The restore-race kind runs 2–4 restores of the latest state to one
// output path at once, while the replicator runs under load: some with
// -force, some SIGKILLed part way. In most trials the output already holds
// an old database whose newest commits are in its WAL (an earlier restore
// point, continued on a branch of the history by an application that then
// crashed). Each restore that exits 0 must leave a state of the history no
// older than the replica's newest when the race began; each that fails
// must fail because another holds the path or the database exists. After
// one more restore to the path (which finishes or rolls back what a killed
// -force left), the output must be the old database with every commit of
// its WAL, or a state of the main history, and nothing may be left aside.

var restoreRaceKind = &kind{
	name:   "restore-race",
	budget: 3 * time.Minute,
	summary: "2–4 restores of the latest state to one `-o` at once (each `-force` at 60%, each SIGKILLed after 0–150 ms at 40%), " +
		"while walship replicates under load; in 60% of the trials the output already holds an old database (an earlier restore point " +
		"continued on a branch of the history by an application that crashed, its newest 2–30 commits in its WAL). " +
		"Then one more restore to the path (which finishes or rolls back a killed replacement) and the checks of the output.",
	run: runRestoreRace,
}

// racer is one of the racing restores.
type racer struct {
	force  bool
	killAt time.Duration // 0: not killed
	p      *proc
	killed bool // it was still running when killed
	res    restoreResult
	err    error // its output did not check
}

func runRestoreRace(t *trial) error {
	cfg := walshipConfig{
		db:           t.path("app.db"),
		syncInterval: pick(t, 0, 5*time.Millisecond, 20*time.Millisecond),
		replica:      dirTarget(t.path("replica")),
	}
	h := history{seed: t.rng.Uint64()}
	s, err := t.newSession(cfg, h)
	if err != nil {
		return err
	}
	if err := s.startApp(200 + t.rng.IntN(600)); err != nil {
		return err
	}
	if err := s.startReplicator(); err != nil {
		return err
	}
	if err := s.awaitUpload(); err != nil {
		return err
	}
	if err := t.sleep(t.duration(50*time.Millisecond, 300*time.Millisecond)); err != nil {
		return err
	}
	outDir := t.path("out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		return err
	}
	out := filepath.Join(outDir, "app.db")
	var old *mark
	if t.rng.IntN(10) < 6 {
		m, err := s.oldDatabase(out, h)
		if err != nil {
			return err
		}
		old = &m
		t.note("the output held an old database")
	}
	files, err := s.listing("")
	if err != nil {
		return err
	}
	var newest ltx.TXID
	for _, f := range files {
		newest = max(newest, f.MaxTXID)
	}

	racers := make([]*racer, 2+t.rng.IntN(3))
	for i := range racers {
		r := &racer{force: t.rng.IntN(10) < 6}
		if t.rng.IntN(10) < 4 {
			r.killAt = t.duration(time.Millisecond, 150*time.Millisecond)
		}
		racers[i] = r
	}
	t.stepf("race %d restores to %s", len(racers), out)
	if err := s.race(racers, out, newest); err != nil {
		return err
	}
	forced := false
	succeeded := 0
	for i, r := range racers {
		switch {
		case r.err != nil:
			return fmt.Errorf("racing restore %d: %w", i+1, r.err)
		case r.killed:
			t.note("racing restores killed")
		case r.p.success():
			succeeded++
			t.note("racing restores that succeeded")
		default:
			t.note("racing restores refused (the path held or the database exists)")
		}
		forced = forced || r.force
	}

	t.stepf("one more restore to %s, which finishes or rolls back a killed one", out)
	if _, err := s.restore(out, ""); err != nil && !refusedForRace(err.Error()) {
		return fmt.Errorf("the restore after the race: %w", err)
	}
	for _, aside := range []string{"." + filepath.Base(out) + ".restore-journal", filepath.Base(out) + "-wal.replaced", filepath.Base(out) + "-shm.replaced"} {
		if _, err := os.Stat(filepath.Join(outDir, aside)); err == nil {
			return mismatchf(out, "%s is still there after a restore to the path finished", aside)
		}
	}
	m, err := h.check(t.ctx, out, true)
	if err != nil {
		return fmt.Errorf("the output after the race: %w", err)
	}
	t.stats.restores++
	switch {
	case old != nil && m.branch == old.branch:
		if m != *old {
			return mismatchf(out, "the old database lost commits: it holds commit %d (%s), it had %d before the race", m.commit, m, old.commit)
		}
		if succeeded > 0 && forced {
			return mismatchf(out, "a restore -force exited 0, yet the old database is back at the path")
		}
		t.note("the old database kept, with every commit of its WAL")
	case m.branch != 0:
		return mismatchf(out, "holds %s, neither the old database nor a restore", m)
	case old != nil && !forced:
		return mismatchf(out, "the old database was replaced, but no racing restore had -force")
	case old != nil:
		t.note("the old database replaced by a restore -force")
	}
	if !t.exactTrial() {
		return nil
	}
	return s.checkFinal(true)
}

// oldDatabase puts at out an old database with commits in its WAL: an
// earlier restore point of the replica, continued on a branch of the
// history by an application that crashed. It returns where it stands.
func (s *session) oldDatabase(out string, h history) (mark, error) {
	files, err := s.listing("")
	if err != nil {
		return mark{}, err
	}
	points := restorePoints(files)
	if len(points) == 0 {
		return mark{}, fmt.Errorf("walship ltx lists no restore point")
	}
	txid := points[s.t.rng.IntN(len(points))]
	s.t.stepf("an old database at %s: TXID %s, continued on a branch", out, txid)
	if _, err := s.restore(out, "", "-txid", hex(txid)); err != nil {
		return mark{}, err
	}
	base, err := h.check(s.t.ctx, out, false)
	if err != nil {
		return mark{}, err
	}
	branch := derive(s.t.seed, 0xb4a) >> 1
	branch |= 1
	k := 2 + s.t.rng.IntN(29)
	p, err := s.t.s.startProc(procSpec{
		name: "app-old",
		bin:  s.t.s.self,
		args: []string{"app", "-db", out, "-seed", strconv.FormatUint(h.seed, 10), "-branch", strconv.FormatUint(branch, 10), "-crash-after", strconv.Itoa(k)},
		dir:  s.t.dir,
	})
	if err != nil {
		return mark{}, err
	}
	if err := p.wait(s.t.ctx); err != nil {
		return mark{}, err
	}
	c, err := parseAnswer(strings.TrimSpace(string(p.stdout())), "crashed")
	if err != nil || !p.success() {
		return mark{}, fmt.Errorf("the application that writes the old database: exit %s, %v%s", p.status(), err, p.logTail())
	}
	want := mark{commit: c, branch: branch, branchAt: base.commit}
	got, err := h.check(s.t.ctx, out, true)
	if err != nil {
		return mark{}, fmt.Errorf("the old database, before the race: %w", err)
	}
	if got != want {
		return mark{}, fmt.Errorf("the old database, before the race, holds commit %d (%s), want %d (%s)", got.commit, got, want.commit, want)
	}
	if fi, err := os.Stat(out + "-wal"); err != nil || fi.Size() == 0 {
		return mark{}, fmt.Errorf("the old database has no WAL after its application crashed (%v)", err)
	}
	return want, nil
}

// race starts the racers, each after a few milliseconds, kills those
// with a kill time when it comes, and checks the output each time one
// exits 0: a state of the main history, at or past newest.
func (s *session) race(racers []*racer, out string, newest ltx.TXID) error {
	var wg sync.WaitGroup
	for i, r := range racers {
		if err := s.t.sleep(s.t.duration(0, 20*time.Millisecond)); err != nil {
			return err
		}
		args := []string{"restore", "-json", "-o", out}
		if r.force {
			args = append(args, "-force")
		}
		p, err := s.start(fmt.Sprintf("race-%d", i+1), append(args, s.cfg.replica.url)...)
		if err != nil {
			return err
		}
		r.p = p
		s.t.printf("racing restore %d: %s (kill after %s)", i+1, strings.Join(args, " "), r.killAt)
		wg.Go(func() { s.runRacer(r, out, newest) })
	}
	wg.Wait()
	return s.t.ctx.Err()
}

func (s *session) runRacer(r *racer, out string, newest ltx.TXID) {
	var kill <-chan time.Time
	if r.killAt > 0 {
		kill = time.After(r.killAt)
	}
	select {
	case <-r.p.done:
	case <-kill:
		r.killed = !r.p.exited()
		r.p.kill()
	case <-time.After(commandTimeout):
		r.p.kill()
		r.err = fmt.Errorf("did not finish within %s", commandTimeout)
		return
	}
	if r.killed {
		return
	}
	if !r.p.success() {
		if msg := (commandResult{p: r.p}).errorText(); !refusedForRace(msg) {
			r.err = fmt.Errorf("failed: %s", msg)
		}
		return
	}
	if err := json.Unmarshal(r.p.stdout(), &r.res); err != nil {
		r.err = fmt.Errorf("printed %q: %w", r.p.stdout(), err)
		return
	}
	if r.res.TXID < newest {
		r.err = mismatchf(out, "restored TXID %s, older than %s, the replica's newest when the race began", r.res.TXID, newest)
		return
	}
	m, err := s.h.check(s.t.ctx, out, false)
	if err != nil {
		r.err = fmt.Errorf("exited 0 (TXID %s), then: %w", r.res.TXID, err)
		return
	}
	if m.branch != 0 {
		r.err = mismatchf(out, "exited 0 (TXID %s), yet the output holds %s", r.res.TXID, m)
	}
	s.t.mu.Lock()
	s.t.stats.restores++
	s.t.mu.Unlock()
}

// refusedForRace reports whether a restore's error is one the race makes
// expected: another restore holds the path, or the database exists and
// the restore had no -force.
func refusedForRace(msg string) bool {
	return strings.Contains(msg, "is writing") || strings.Contains(msg, "already exists")
}
