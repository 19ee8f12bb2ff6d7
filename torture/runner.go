package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// kindResult is what the trials of one kind found.
type kindResult struct {
	name     string
	summary  string
	bound    time.Duration // the bound a trial must heal within; 0 if the kind measures no healing
	healWhat string

	trials     int // trials run to their end
	passed     int
	restores   int // restores whose result was checked
	exact      int // byte-for-byte comparisons with the source
	mismatches int
	unhealed   int
	errors     int                        // failures other than a mismatch or an unhealed replica
	heals      []time.Duration            // of the trials that healed
	healsBy    map[string][]time.Duration // the same, by what the trial did (its label)
	unhealedBy map[string]int             // unhealed trials by label
	failures   []failureRecord
	notes      map[string]int
	took       time.Duration
	notRun     string // why the kind could not run at all
}

// failureRecord is one failed trial.
type failureRecord struct {
	index int
	class string
	msg   string
	dir   string // its scratch directory, kept; "" when removed
}

// outcome is one trial's end.
type outcome struct {
	index int
	stats trialStats
	err   error
	dir   string
}

// keepFailed is how many failed trials of a kind keep their scratch
// directory; the others can be replayed.
const keepFailed = 20

// runKind runs the trials of k with the given indices, s.parallel at a
// time, printing progress and each failure as it happens.
func (s *suite) runKind(k *kind, indices []int) *kindResult {
	r := &kindResult{name: k.name, summary: k.summary, bound: k.healBound, healWhat: k.healWhat, notes: map[string]int{}, healsBy: map[string][]time.Duration{}}
	start := time.Now()
	parallel := s.parallel * max(k.parallel, 1)
	if s.verbose {
		parallel = 1
	}
	fmt.Printf("== %s: %d trials, %d at a time (seed %d)\n", k.name, len(indices), parallel, s.seed)
	if k.prepare != nil {
		if err := k.prepare(s); err != nil {
			r.notRun = err.Error()
			r.took = time.Since(start)
			fmt.Printf("FAIL %s: cannot run: %v\n", k.name, err)
			return r
		}
	}
	work := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(parallel, len(indices)) {
		wg.Go(func() {
			for i := range work {
				o := s.runTrial(k, i)
				mu.Lock()
				r.add(o, s)
				mu.Unlock()
			}
		})
	}
	stopProgress := s.progress(k.name, len(indices), start, func() (int, int, int) {
		mu.Lock()
		defer mu.Unlock()
		return r.trials, r.trials - r.passed, r.restores
	})
feed:
	for _, i := range indices {
		select {
		case work <- i:
		case <-s.ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	stopProgress()
	r.took = time.Since(start)
	fmt.Printf("== %s: %d trials in %s: %d passed, %d mismatches, %d unhealed, %d other failures; %d restores checked, %d exact\n",
		k.name, r.trials, r.took.Round(time.Second), r.passed, r.mismatches, r.unhealed, r.errors, r.restores, r.exact)
	return r
}

// runTrial runs one trial to its end, within the kind's budget.
func (s *suite) runTrial(k *kind, index int) outcome {
	ctx, cancel := context.WithTimeout(s.ctx, k.budget)
	defer cancel()
	t, err := s.newTrial(ctx, k, index)
	if err != nil {
		return outcome{index: index, err: err}
	}
	err = k.run(t)
	if err == nil && ctx.Err() != nil {
		err = t.timeout()
	}
	if err != nil && errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timed out") {
		err = fmt.Errorf("%w (%s)", err, t.timeout())
	}
	if err != nil {
		t.printf("FAILED: %v", err)
	} else {
		t.printf("passed")
	}
	t.finish()
	return outcome{index: index, stats: t.stats, err: err, dir: t.dir}
}

// add counts a trial's outcome; a failure is printed with its replay
// command, and its directory kept (the first keepFailed of the kind).
func (r *kindResult) add(o outcome, s *suite) {
	if s.ctx.Err() != nil && o.err != nil {
		os.RemoveAll(o.dir) // interrupted: neither a pass nor a failure
		return
	}
	r.trials++
	r.restores += o.stats.restores
	r.exact += o.stats.exact
	for what, n := range o.stats.notes {
		r.notes[what] += n
	}
	if o.stats.healed {
		r.heals = append(r.heals, o.stats.heal)
		r.healsBy[o.stats.label] = append(r.healsBy[o.stats.label], o.stats.heal)
	}
	if o.err == nil {
		r.passed++
		if !s.keepAll {
			os.RemoveAll(o.dir)
		}
		return
	}
	f := failureRecord{index: o.index, class: classify(o.err), msg: o.err.Error(), dir: o.dir}
	switch f.class {
	case classMismatch:
		r.mismatches++
	case classUnhealed:
		r.unhealed++
		if r.unhealedBy == nil {
			r.unhealedBy = map[string]int{}
		}
		r.unhealedBy[o.stats.label]++
	default:
		r.errors++
	}
	if len(r.failures) >= keepFailed && !s.keepAll {
		os.RemoveAll(o.dir)
		f.dir = ""
	}
	r.failures = append(r.failures, f)
	s.markFailed()
	fmt.Printf("FAIL %s trial %d [%s] (seed %d): %s\n  replay: %s\n", r.name, o.index, f.class, s.seed, indent(f.msg, "  "), s.replayCommand(r.name, o.index))
	if f.dir != "" {
		fmt.Printf("  kept: %s\n", f.dir)
	}
}

// progress prints a line every 10% of the trials or every 20 s, until
// the returned function is called.
func (s *suite) progress(name string, total int, start time.Time, counts func() (done, failed, restores int)) func() {
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last, lastAt := 0, time.Now()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			done, failed, restores := counts()
			if done == last || (done*10/total == last*10/total && time.Since(lastAt) < 20*time.Second) {
				continue
			}
			last, lastAt = done, time.Now()
			elapsed := time.Since(start)
			eta := time.Duration(float64(elapsed) / float64(done) * float64(total-done))
			fmt.Printf("   %s: %d/%d trials, %d failed, %d restores checked, %s elapsed, about %s to go\n",
				name, done, total, failed, restores, elapsed.Round(time.Second), eta.Round(time.Second))
		}
	}()
	return func() { close(stop); <-finished }
}

// indent indents every line of s after the first.
func indent(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}
