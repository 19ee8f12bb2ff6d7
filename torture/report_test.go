package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/machine"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	d := ms(50, 10, 40, 30, 20, 100, 90, 80, 70, 60) // 10..100, shuffled
	for _, c := range []struct {
		p    float64
		want int
	}{{50, 50}, {90, 90}, {100, 100}, {0, 10}, {1, 10}, {91, 100}} {
		if got := percentile(d, c.p); got != time.Duration(c.want)*time.Millisecond {
			t.Errorf("p%.0f = %s, want %dms", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %s", got)
	}
	if d[0] != 50*time.Millisecond {
		t.Error("percentile sorted its argument")
	}
}

// The report carries every figure of every kind, the seed, each failure
// with the command that replays it, and says when a kind could not run.
func TestReportRender(t *testing.T) {
	kill := &kindResult{
		name: "kill", summary: "SIGKILL and restart.", trials: 1000, passed: 998, restores: 2975, exact: 40,
		mismatches: 1, errors: 1, took: 5*time.Minute + 400*time.Millisecond,
		bound: 30 * time.Second, healWhat: "time to catch up",
		heals:   []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 3 * time.Second},
		healsBy: map[string][]time.Duration{"": {100 * time.Millisecond, 200 * time.Millisecond, 3 * time.Second}},
		notes:   map[string]int{"between kill and restart: VACUUM": 201},
		failures: []failureRecord{
			{index: 17, class: classMismatch, msg: "restored-001.db: row 5 is missing"},
			{index: 400, class: classError, msg: "walship replicate exited by itself\n  its last output:\n    boom"},
		},
	}
	diskfull := &kindResult{name: "diskfull", summary: "A full disk.", notRun: "the diskfull kind needs root"}
	r := report{
		seed: 1234, args: []string{"-walship", "bin/walship"}, date: time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC),
		took: 20 * time.Minute, trials: 1000, exactEvery: 25, kinds: []*kindResult{kill, diskfull},
		machine: machine.Facts{CPU: "Test CPU", Cores: 2, Go: "go1.26", Walship: "walship dev", Commit: "abc1234"},
		replay: func(kind string, i int) string {
			return fmt.Sprintf("go run ./torture -seed 1234 -replay %s:%d", kind, i)
		},
		analysis: "torture/ANALYSIS.md",
	}
	out := r.render()
	for _, want := range []string{
		"seed **1234**",
		"`go run ./torture -walship bin/walship -seed 1234`",
		"Test CPU, 2 cores",
		"walship dev", "abc1234", "go1.26",
		"| kill | 1000 | 2975 | 40 | **1** | 0 | **1** | 200 ms / 3.00 s / 3.00 s | 5m0s |",
		"| diskfull | **could not run** |",
		"**The kind could not run:** the diskfull kind needs root",
		"between kill and restart: VACUUM: 201",
		"trial 17, **mismatch**: restored-001.db: row 5 is missing",
		"replay: `go run ./torture -seed 1234 -replay kill:17`",
		"trial 400, **error**: walship replicate exited by itself its last output: boom",
		"replay: `go run ./torture -seed 1234 -replay kill:400`",
		"every 25 trials",
		"[torture/ANALYSIS.md](torture/ANALYSIS.md)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
}

// Only the first shownFailures failures are listed, and the report says so.
func TestReportCapsFailures(t *testing.T) {
	k := &kindResult{name: "damage", trials: 100, unhealed: 30, notes: map[string]int{}}
	for i := range 30 {
		k.failures = append(k.failures, failureRecord{index: i, class: classUnhealed, msg: "not healed"})
	}
	out := report{kinds: []*kindResult{k}, replay: func(string, int) string { return "" }}.render()
	if !strings.Contains(out, "Failures (30; the first 20)") {
		t.Error("the report does not say it lists 20 of 30 failures")
	}
	if n := strings.Count(out, "**unhealed**: not healed"); n != shownFailures {
		t.Errorf("%d failures listed, want %d", n, shownFailures)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{mismatchf("x.db", "row 1 is missing"), classMismatch},
		{fmt.Errorf("restore: %w", mismatchf("x.db", "bad")), classMismatch},
		{&unhealedError{after: time.Second, last: "no"}, classUnhealed},
		{fmt.Errorf("after the damage: %w", &unhealedError{}), classUnhealed},
		{errors.New("walship exited"), classError},
	} {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

func TestShortDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour: "1h", time.Second: "1s", 500 * time.Millisecond: "500ms",
		90 * time.Minute: "1h30m", 2 * time.Minute: "2m", 61 * time.Second: "1m1s",
	} {
		if got := shortDur(d); got != want {
			t.Errorf("shortDur(%s) = %q, want %q", d, got, want)
		}
	}
}
