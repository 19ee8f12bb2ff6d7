package levels

import (
	"fmt"
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
		if got := AlignPad(tc.at, tc.grain, 0); got != tc.want {
			t.Errorf("AlignPad(%s, %s) = %s, want %s", tc.at.Format(time.StampNano), tc.grain, got, tc.want)
		}
	}
	// Two schedules due within the same grain wake at the same instant.
	a, b := base.Add(100*time.Millisecond), base.Add(900*time.Millisecond)
	if !a.Add(AlignPad(a, time.Second, 0)).Equal(b.Add(AlignPad(b, time.Second, 0))) {
		t.Error("two times within one second do not align to the same instant")
	}
	// In slot 3, they wake 300 ms past the whole second, or past the
	// next one if already past it.
	if got := AlignPad(a, time.Second, 3); got != 200*time.Millisecond {
		t.Errorf("AlignPad(+100ms, 1s, slot 3) = %s, want 200ms", got)
	}
	if got := AlignPad(b, time.Second, 3); got != 400*time.Millisecond {
		t.Errorf("AlignPad(+900ms, 1s, slot 3) = %s, want 400ms", got)
	}
}

// Databases fall in every one of the Slots groups.
func TestSlot(t *testing.T) {
	seen := map[int]bool{}
	for i := range 200 {
		s := Slot(fmt.Sprintf("/data/tenant-%04d.db", i))
		if s < 0 || s >= Slots {
			t.Fatalf("slot %d is not one of %d", s, Slots)
		}
		seen[s] = true
	}
	if len(seen) != Slots {
		t.Errorf("200 databases fall in %d slots; want all %d", len(seen), Slots)
	}
}
