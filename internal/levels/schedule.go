package levels

import (
	"context"
	"log/slog"
	"time"
)

// A Task is periodic maintenance: a compaction, a snapshot, retention.
type Task struct {
	Every time.Duration // zero or less: never
	// Last returns when the task's work was last done, as what it wrote
	// shows (the newest file of a level, say), so that a process
	// restarted more often than Every keeps the task's cadence: a task
	// overdue is run at once. Nil, or the zero time (nothing to go by
	// yet): the first run is Every after Maintain starts.
	Last func() time.Time
	Run  func(context.Context) error
}

// first returns when t is first due, Maintain having started at now.
func (t Task) first(now time.Time) time.Time {
	if t.Last == nil {
		return now.Add(t.Every)
	}
	last := t.Last()
	if last.IsZero() {
		return now.Add(t.Every)
	}
	next := last.Add(t.Every)
	switch {
	case !next.After(now):
		return now
	case next.After(now.Add(t.Every)):
		// A time ahead of this clock (another host's, after a
		// takeover, say) must not hold the task back longer than
		// its interval.
		return now.Add(t.Every)
	}
	return next
}

// Maintain runs each task every Every until ctx ends. One goroutine waits
// for every schedule; each run has its own, so that a long hourly
// compaction does not delay the 30-second one. A task still running when it
// is due again is skipped. A failure is logged and retried at the next
// interval. It wakes at whole multiples of a grain (a second, or an eighth
// of the shortest Every if less) plus slot tenths of it, so that the
// schedules of many databases in one process fire together, ten groups at
// most (slot is the database's, 0 to 9): each task runs at most a grain
// late, a process wakes at most ten times a grain, and no more than a
// tenth of a thousand databases' compactions start at one instant (all at
// once, they grew the heap by a tenth).
func Maintain(ctx context.Context, log *slog.Logger, tasks []Task, slot int) {
	type schedule struct {
		Task
		next    time.Time
		running bool
	}
	now := time.Now()
	var scheds []*schedule
	for _, t := range tasks {
		if t.Every > 0 {
			scheds = append(scheds, &schedule{Task: t, next: t.first(now)})
		}
	}
	if len(scheds) == 0 {
		return
	}
	grain := time.Second
	for _, s := range scheds {
		grain = min(grain, s.Every/8)
	}
	finished := make(chan *schedule)
	running := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next := scheds[0].next
		for _, s := range scheds[1:] {
			if s.next.Before(next) {
				next = s.next
			}
		}
		timer.Reset(time.Until(next) + alignPad(next, grain, time.Duration(slot%10)*grain/10))
		select {
		case <-ctx.Done():
			for ; running > 0; running-- {
				(<-finished).running = false
			}
			return
		case s := <-finished:
			s.running = false
			running--
		case now := <-timer.C:
			for _, s := range scheds {
				if now.Before(s.next) {
					continue
				}
				for !now.Before(s.next) {
					s.next = s.next.Add(s.Every)
				}
				if s.running {
					continue
				}
				s.running = true
				running++
				go func() {
					if err := s.Run(ctx); err != nil && ctx.Err() == nil {
						log.Error("maintenance failed; will retry at the next interval", "error", err)
					}
					finished <- s
				}()
			}
		}
	}
}

// alignPad returns how long after t the next instant offset past a whole
// multiple of grain since the zero time is (zero if t is one, or grain is
// not positive). It is a
// duration to add to a wait measured on the monotonic clock: a jump of the
// wall clock does not move the task.
func alignPad(t time.Time, grain, offset time.Duration) time.Duration {
	if grain <= 0 {
		return 0
	}
	a := t.Truncate(grain).Add(offset % grain)
	if a.Before(t) {
		a = a.Add(grain)
	}
	return a.Sub(t)
}
