package main

import (
	"fmt"
	"strings"
	"time"
)

// kind is one kind of trial.
type kind struct {
	name    string
	summary string        // what one trial does, for the report
	budget  time.Duration // a trial that takes longer fails, naming its step
	// prepare runs once before the kind's trials (to start a server, to
	// check for root); an error fails the kind loudly.
	prepare func(s *suite) error
	// run runs one trial; an error is its failure.
	run func(t *trial) error
	// healBound, for a kind that measures a time to heal, is how long a
	// trial may take to heal before it fails; healWhat says what is
	// measured.
	healBound time.Duration
	healWhat  string
	// load is the range of the application's commits a second, [from,
	// to), and configure sets the replicator's intervals, for the kinds
	// that run killTrial.
	load      [2]int
	configure func(t *trial, cfg *walshipConfig)
	// parallel multiplies -parallel for a kind that mostly waits; 0 is 1.
	parallel int
}

// rate draws the application's commits a second for trial t.
func (k *kind) rate(t *trial) int {
	return k.load[0] + t.rng.IntN(k.load[1]-k.load[0])
}

// kinds are every kind, in the order a run takes them.
var kinds = []*kind{killKind, proxyKind, diskfullKind, damageKind, restoreRaceKind}

func kindNames() []string {
	var names []string
	for _, k := range kinds {
		names = append(names, k.name)
	}
	return names
}

func kindByName(name string) *kind {
	for _, k := range kinds {
		if k.name == name {
			return k
		}
	}
	return nil
}

// selectKinds parses -only.
func selectKinds(only string) ([]*kind, error) {
	if only == "" {
		return kinds, nil
	}
	var out []*kind
	for _, name := range strings.Split(only, ",") {
		k := kindByName(strings.TrimSpace(name))
		if k == nil {
			return nil, fmt.Errorf("-only: unknown kind %q (have %s)", name, strings.Join(kindNames(), ", "))
		}
		out = append(out, k)
	}
	return out, nil
}
