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
// interval.
func Maintain(ctx context.Context, log *slog.Logger, tasks []Task) {
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
		timer.Reset(time.Until(next))
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
