package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// trial is one run of one kind: its own scratch directory, processes and
// randomness (from the run's seed, the kind and the trial's index alone),
// and what it found.
type trial struct {
	s     *suite
	kind  *kind
	index int
	seed  uint64
	rng   *rand.Rand
	dir   string
	ctx   context.Context

	logf     *os.File // trial.log: each step, timed
	started  time.Time
	mu       sync.Mutex
	step     string // what the trial is doing, for a timeout's message
	cleanups []func()
	outs     int    // restore outputs named so far
	retries  int    // attempts at a restore or a listing before it fails (1 unless faults are injected)
	listURL  string // where listings read the replica, if not where restores do

	stats trialStats
}

// trialStats is what a trial measured, whether or not it passed.
type trialStats struct {
	restores int           // restores whose result was checked
	exact    int           // byte-for-byte comparisons with the source
	heal     time.Duration // time to heal: see kind.healWhat
	healed   bool
	label    string         // what the trial did, to break heal times down by
	notes    map[string]int // events counted for the report ("perturbation: vacuum")
}

// unhealedError is a replica whose latest state could not be restored,
// with every commit made before the trial began to wait for it (a damage,
// a restart, a full disk freed), within the kind's bound.
type unhealedError struct {
	after time.Duration
	last  string // the last restore's error, or why its result was too old
}

func (e *unhealedError) Error() string {
	return fmt.Sprintf("the replica did not heal within %s: no restore of the latest state held every commit made before; the last attempt: %s", e.after.Round(time.Millisecond), e.last)
}

// failure classes, for the report.
const (
	classMismatch = "mismatch"
	classUnhealed = "unhealed"
	classError    = "error"
)

// classify names what kind of failure err is.
func classify(err error) string {
	var u *unhealedError
	switch {
	case isMismatch(err):
		return classMismatch
	case errors.As(err, &u):
		return classUnhealed
	}
	return classError
}

// newTrial prepares trial index of k in a new scratch directory.
func (s *suite) newTrial(ctx context.Context, k *kind, index int) (*trial, error) {
	seed := trialSeed(s.seed, k.name, index)
	dir := filepath.Join(s.work, fmt.Sprintf("%s-%04d", k.name, index))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "trial.log"))
	if err != nil {
		return nil, err
	}
	t := &trial{s: s, kind: k, index: index, seed: seed, rng: newRand(seed), dir: dir, logf: logf, started: time.Now(), retries: 1}
	t.stats.notes = make(map[string]int)
	t.ctx = ctx
	return t, nil
}

// path returns a path in the trial's scratch directory.
func (t *trial) path(name string) string { return filepath.Join(t.dir, name) }

// printf records what the trial does; in a replay it is printed too.
func (t *trial) printf(format string, args ...any) {
	line := fmt.Sprintf("%8.3fs  %s\n", time.Since(t.started).Seconds(), fmt.Sprintf(format, args...))
	t.mu.Lock()
	defer t.mu.Unlock()
	t.logf.WriteString(line)
	if t.s.verbose {
		os.Stdout.WriteString(line)
	}
}

// stepf names what the trial does next, for the log and for the message
// of a timeout.
func (t *trial) stepf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	t.mu.Lock()
	t.step = s
	t.mu.Unlock()
	t.printf("%s", s)
}

func (t *trial) currentStep() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.step
}

// note counts an event for the report.
func (t *trial) note(what string) {
	t.mu.Lock()
	t.stats.notes[what]++
	t.mu.Unlock()
}

// cleanup registers f to run when the trial ends, the last registered
// first.
func (t *trial) cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

// exactTrial reports whether this trial ends with the exact comparison:
// every -exact-every trials, and the last.
func (t *trial) exactTrial() bool {
	e := t.s.exactEvery
	return e <= 1 || t.index%e == e-1 || t.index == t.s.trials-1
}

// sleep waits d, or less if the trial's time is up.
func (t *trial) sleep(d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-t.ctx.Done():
		return t.timeout()
	}
}

// timeout is the error of a trial whose time ran out.
func (t *trial) timeout() error {
	return fmt.Errorf("timed out after %s during: %s", time.Since(t.started).Round(time.Millisecond), t.currentStep())
}

// duration returns a random duration in [lo, hi).
func (t *trial) duration(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(t.rng.Int64N(int64(hi-lo)))
}

// pick returns one of choices at random.
func pick[T any](t *trial, choices ...T) T { return choices[t.rng.IntN(len(choices))] }

// finish runs the cleanups and closes the log.
func (t *trial) finish() {
	t.mu.Lock()
	cleanups := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	t.logf.Close()
}
