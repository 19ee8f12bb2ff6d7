package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"text/tabwriter"

	"github.com/walship/walship/config"
	"github.com/walship/walship/storage/backend"
)

const databasesDescription = `
Lists the databases of the config file and the replicas each one ships to
(a directory entry as DIR/PATTERN, or DIR/**/PATTERN when recursive: each
database found there goes to its own path under the replica),
then, on standard error, the settings of the file that have no effect in
walship (Litestream's keys that walship accepts without acting on them), one
a line with the file, line and key. Credentials are never printed.`

type replicaJSON struct {
	Name         string `json:"name"`
	Type         string `json:"type"`
	URL          string `json:"url,omitempty"`
	Path         string `json:"path,omitempty"`
	SyncInterval string `json:"sync_interval,omitempty"`
	// Encryption names the replica's key: its file, or the ID of a key
	// given in the config. Empty: not encrypted.
	Encryption string `json:"encryption,omitempty"`
}

type databaseJSON struct {
	Path string `json:"path,omitempty"`
	// Dir, Pattern and Recursive are a directory entry's: each database
	// found in it goes to its own path under each replica.
	Dir          string        `json:"dir,omitempty"`
	Pattern      string        `json:"pattern,omitempty"`
	Recursive    bool          `json:"recursive,omitempty"`
	MetaPath     string        `json:"meta_path,omitempty"`
	SyncInterval string        `json:"sync_interval,omitempty"`
	Replicas     []replicaJSON `json:"replicas"`
}

func runDatabases(ctx context.Context, e *env, args []string) error {
	flags := newFlagSet(e, "databases", "[flags]", databasesDescription)
	cf := addConfigFlags(flags)
	jsonOut := flags.Bool("json", false, "print a JSON array")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	e.jsonErrors = *jsonOut
	if len(pos) != 0 {
		return usagef("databases takes no argument (got %d); choose the config file with -config", len(pos))
	}
	cfg, err := cf.load(false)
	if err != nil {
		return err
	}

	defer printWarnings(e, cfg.Warnings)
	out := make([]databaseJSON, 0, len(cfg.DBs)+len(cfg.Dirs))
	for _, db := range slices.Concat(cfg.DBs, cfg.Dirs) {
		d := databaseJSON{Path: db.Path, Dir: db.Dir, Pattern: db.Pattern, Recursive: db.Recursive, MetaPath: db.MetaPath, Replicas: []replicaJSON{}}
		if db.SyncInterval != nil {
			d.SyncInterval = db.SyncInterval.String()
		}
		names := db.ReplicaNames()
		for i, r := range db.AllReplicas() {
			rj := replicaJSON{Name: names[i], Type: r.Backend(), Path: r.Path}
			if u := r.DestinationURL(); u != "" {
				rj.URL = backend.Redact(u)
			}
			if r.SyncInterval != nil {
				rj.SyncInterval = r.SyncInterval.String()
			}
			switch {
			case r.EncryptionKeyPath != "":
				rj.Encryption = "key file " + r.EncryptionKeyPath
			case r.EncryptionKey != nil:
				rj.Encryption = "key " + r.EncryptionKey.ID()
			}
			d.Replicas = append(d.Replicas, rj)
		}
		out = append(out, d)
	}
	if *jsonOut {
		return e.printJSON(out)
	}
	if len(out) == 0 {
		fmt.Fprintf(e.stderr, "config %s lists no database\n", *cf.path)
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tREPLICA\tTYPE\tDESTINATION")
	for _, d := range out {
		if d.Dir != "" {
			// Each database of the directory, under each replica.
			d.Path = filepath.Join(d.Dir, d.Pattern)
			if d.Recursive {
				d.Path = filepath.Join(d.Dir, "**", d.Pattern)
			}
		}
		if len(d.Replicas) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t(no replica)\n", d.Path)
		}
		for _, r := range d.Replicas {
			dest := r.URL
			if dest == "" {
				dest = r.Path
			}
			if r.Encryption != "" {
				dest += " (encrypted, " + r.Encryption + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Path, r.Name, r.Type, dest)
		}
	}
	return tw.Flush()
}

// printWarnings lists the config file's warnings on standard error.
func printWarnings(e *env, warnings []config.Warning) {
	for _, w := range warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
}
