package main

import (
	"strings"
	"testing"
)

// A trial's seed depends on the run's seed, the kind and the index, and on
// nothing else: the same three give the same seed, any other gives
// another.
func TestTrialSeed(t *testing.T) {
	base := trialSeed(42, "kill", 17)
	if again := trialSeed(42, "kill", 17); again != base {
		t.Fatalf("trialSeed(42, kill, 17) gave %d, then %d", base, again)
	}
	others := map[string]uint64{
		"another run":   trialSeed(43, "kill", 17),
		"another kind":  trialSeed(42, "proxy", 17),
		"another trial": trialSeed(42, "kill", 18),
		"trial 0":       trialSeed(42, "kill", 0),
	}
	seen := map[uint64]string{base: "kill 17"}
	for name, s := range others {
		if prev, ok := seen[s]; ok {
			t.Errorf("%s has the seed of %s: %d", name, prev, s)
		}
		seen[s] = name
	}
}

// Seeds of neighbouring trials do not share their low bits: a kind's
// trials pick different choices even where a choice is a small modulo.
func TestTrialSeedsSpread(t *testing.T) {
	counts := make([]int, 8)
	for i := range 800 {
		counts[newRand(trialSeed(1, "kill", i)).IntN(8)]++
	}
	for v, n := range counts {
		if n < 60 || n > 140 {
			t.Errorf("the first choice of 8 was %d in %d of 800 trials; want about 100 (%v)", v, n, counts)
		}
	}
}

func TestDeriveOrder(t *testing.T) {
	if derive(1, 2) == derive(2, 1) {
		t.Error("derive(1, 2) == derive(2, 1)")
	}
	if derive(0) == derive(0, 0) {
		t.Error("derive(0) == derive(0, 0)")
	}
}

// The same seed gives the same sequence.
func TestNewRandRepeats(t *testing.T) {
	a, b := newRand(99), newRand(99)
	for i := range 100 {
		if x, y := a.Uint64(), b.Uint64(); x != y {
			t.Fatalf("draw %d: %d and %d from one seed", i, x, y)
		}
	}
	if newRand(99).Uint64() == newRand(100).Uint64() {
		t.Error("seeds 99 and 100 start alike")
	}
}

func TestParseReplay(t *testing.T) {
	names := []string{"kill", "restore-race"}
	for _, c := range []struct {
		in      string
		want    replayTarget
		wantErr string
	}{
		{in: "kill:17", want: replayTarget{"kill", 17}},
		{in: "restore-race:0", want: replayTarget{"restore-race", 0}},
		{in: "kill", wantErr: "want kind:trial"},
		{in: "damage:3", wantErr: `unknown kind "damage"`},
		{in: "kill:x", wantErr: "must be a number"},
		{in: "kill:-1", wantErr: "must be a number"},
	} {
		got, err := parseReplay(c.in, names)
		switch {
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("parseReplay(%q): error %v, want one saying %q", c.in, err, c.wantErr)
		case c.wantErr == "" && err != nil:
			t.Errorf("parseReplay(%q): %v", c.in, err)
		case c.wantErr == "" && got != c.want:
			t.Errorf("parseReplay(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}
