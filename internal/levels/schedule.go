package levels

import (
	"context"
	"hash/fnv"
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
// interval. It wakes at the instants of slot (see AlignPad) within a grain
// (a second, or an eighth of the shortest Every if less), so that the
// schedules of many databases in one process fire together, in Slots
// groups: each task runs at most a grain late, a process wakes at most
// Slots times a grain, and no more than a tenth of a thousand databases'
// compactions start at one instant (all at once, they grew the heap by a
// tenth).
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
		timer.Reset(time.Until(next) + AlignPad(next, grain, slot))
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

// Slots is how many groups the periodic wake-ups of a process's databases
// fall in: a database's schedules and its fallback poll wake at the
// instants of its group (Slot), so that a process wakes at most Slots
// times a period for all its databases, and a burst of work on many of
// them is spread over Slots instants.
const Slots = 10

// Slot is the group, 0 to Slots-1, of the database at path.
func Slot(path string) int {
	h := fnv.New32a()
	h.Write([]byte(path))
	return int(h.Sum32() % Slots)
}

// AlignPad returns how long after t the next instant of slot is: slot
// Slots-ths of grain past a whole multiple of grain since the zero time
// (zero if t is one, or grain is not positive). It is a duration to add to
// a wait measured on the monotonic clock: a jump of the wall clock does
// not move the task.
func AlignPad(t time.Time, grain time.Duration, slot int) time.Duration {
	if grain <= 0 {
		return 0
	}
	a := t.Truncate(grain).Add(time.Duration(slot%Slots) * grain / Slots)
	if a.Before(t) {
		a = a.Add(grain)
	}
	return a.Sub(t)
}
