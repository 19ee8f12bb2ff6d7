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
