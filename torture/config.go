package main

import (
	"fmt"
	"strings"
	"time"
)

// replicaTarget is where a trial replicates to, as walship's config and
// command line name it.
type replicaTarget struct {
	url  string   // for restore and ltx
	yaml []string // the replica's keys in the config file, "key: value"
	env  []string // the environment every walship command needs (credentials)
}

// dirTarget is a directory replica.
func dirTarget(dir string) replicaTarget {
	return replicaTarget{url: "file://" + dir, yaml: []string{"url: file://" + dir}}
}

// walshipConfig is the config file of one trial's replicator: one
// database, one replica, and the intervals the trial chose.
type walshipConfig struct {
	db           string
	metaPath     string        // the staging directory; "" is the default beside the database
	syncInterval time.Duration // 0 ships each commit as soon as it is seen
	levels       []time.Duration
	snapshot     time.Duration // snapshot.interval; 0 is walship's default
	validation   time.Duration // the replica's validation-interval; 0 is off
	audit        time.Duration // the replica's audit-interval; 0 is walship's default
	replica      replicaTarget
}

// render writes the config file's text.
func (c walshipConfig) render() string {
	var b strings.Builder
	b.WriteString("logging:\n  level: debug\n")
	if len(c.levels) > 0 {
		b.WriteString("levels:\n")
		for _, l := range c.levels {
			fmt.Fprintf(&b, "  - interval: %s\n", l)
		}
	}
	if c.snapshot > 0 {
		fmt.Fprintf(&b, "snapshot:\n  interval: %s\n", c.snapshot)
	}
	fmt.Fprintf(&b, "dbs:\n  - path: %s\n", c.db)
	if c.metaPath != "" {
		fmt.Fprintf(&b, "    meta-path: %s\n", c.metaPath)
	}
	fmt.Fprintf(&b, "    sync-interval: %s\n", c.syncInterval)
	b.WriteString("    replica:\n")
	for _, kv := range c.replica.yaml {
		fmt.Fprintf(&b, "      %s\n", kv)
	}
	if c.validation > 0 {
		fmt.Fprintf(&b, "      validation-interval: %s\n", c.validation)
	}
	if c.audit > 0 {
		fmt.Fprintf(&b, "      audit-interval: %s\n", c.audit)
	}
	return b.String()
}
