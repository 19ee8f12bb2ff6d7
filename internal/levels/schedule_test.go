package levels

import (
	"testing"
	"time"
)

func TestTaskFirst(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	every := time.Hour
	for _, tc := range []struct {
		name string
		last func() time.Time
		want time.Time
	}{
		{"no last", nil, now.Add(every)},
		{"never done", func() time.Time { return time.Time{} }, now.Add(every)},
		{"done 20 minutes ago", func() time.Time { return now.Add(-20 * time.Minute) }, now.Add(40 * time.Minute)},
		{"overdue", func() time.Time { return now.Add(-3 * time.Hour) }, now},
		{"ahead of this clock", func() time.Time { return now.Add(5 * time.Hour) }, now.Add(every)},
	} {
		if got := (Task{Every: every, Last: tc.last}).first(now); !got.Equal(tc.want) {
			t.Errorf("%s: first run at %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestAlignPad: Maintain wakes at whole multiples of its grain, so that the
// schedules of many databases fire together, and never before a task is
// due.
func TestAlignPad(t *testing.T) {
	base := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		at    time.Time
		grain time.Duration
		want  time.Duration
	}{
		{base, time.Second, 0},
		{base.Add(time.Nanosecond), time.Second, time.Second - time.Nanosecond},
		{base.Add(300 * time.Millisecond), time.Second, 700 * time.Millisecond},
		{base.Add(300 * time.Millisecond), 125 * time.Millisecond, 75 * time.Millisecond},
		{base.Add(300 * time.Millisecond), 0, 0},
	} {
		if got := alignPad(tc.at, tc.grain, 0); got != tc.want {
			t.Errorf("alignPad(%s, %s) = %s, want %s", tc.at.Format(time.StampNano), tc.grain, got, tc.want)
		}
	}
	// Two schedules due within the same grain wake at the same instant.
	a, b := base.Add(100*time.Millisecond), base.Add(900*time.Millisecond)
	if !a.Add(alignPad(a, time.Second, 0)).Equal(b.Add(alignPad(b, time.Second, 0))) {
		t.Error("two times within one second do not align to the same instant")
	}
	// With an offset, they wake that far past the whole second, or past
	// the next one if already past it.
	if got := alignPad(a, time.Second, 300*time.Millisecond); got != 200*time.Millisecond {
		t.Errorf("alignPad(+100ms, 1s, 300ms) = %s, want 200ms", got)
	}
	if got := alignPad(b, time.Second, 300*time.Millisecond); got != 400*time.Millisecond {
		t.Errorf("alignPad(+900ms, 1s, 300ms) = %s, want 400ms", got)
	}
}
