package main

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Everything random in a run derives from one seed: a trial's choices from
// (seed, kind, trial index), so that -replay kind:N runs trial N again
// without running the trials before it, and the application's history from
// a seed the trial draws, so that any database can be checked against the
// history without keeping a copy of it.

// mix is SplitMix64's finaliser: a bijection of 64-bit values whose output
// bits each depend on every input bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// derive combines values into one well-mixed value. The order matters:
// derive(a, b) and derive(b, a) differ.
func derive(parts ...uint64) uint64 {
	h := uint64(0x9e3779b97f4a7c15)
	for _, p := range parts {
		h = mix(h + 0x9e3779b97f4a7c15 + mix(p))
	}
	return h
}

// nameKey turns a kind's name into a value to derive from.
func nameKey(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// trialSeed is the seed of trial index of a kind in a run with seed.
func trialSeed(seed uint64, kind string, index int) uint64 {
	return derive(seed, nameKey(kind), uint64(index))
}

// newRand returns a generator seeded with s.
func newRand(s uint64) *rand.Rand {
	return rand.New(rand.NewPCG(s, mix(s^0x5851f42d4c957f2d)))
}

// replayTarget is what -replay names: one trial of one kind.
type replayTarget struct {
	kind  string
	index int
}

// parseReplay parses -replay's "kind:trial", checking the kind against the
// known names.
func parseReplay(s string, kinds []string) (replayTarget, error) {
	name, num, ok := strings.Cut(s, ":")
	if !ok {
		return replayTarget{}, fmt.Errorf("-replay %q: want kind:trial, e.g. kill:17", s)
	}
	known := false
	for _, k := range kinds {
		known = known || k == name
	}
	if !known {
		return replayTarget{}, fmt.Errorf("-replay %q: unknown kind %q (have %s)", s, name, strings.Join(kinds, ", "))
	}
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 {
		return replayTarget{}, fmt.Errorf("-replay %q: the trial must be a number from 0 up", s)
	}
	return replayTarget{kind: name, index: i}, nil
}
