package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore/litestream03"
	"github.com/walship/walship/storage"
)

const ltxDescription = `
Lists the LTX files of a replica: level, TXID range, size and creation time.
The argument is a replica URL ({urls}) or directory, or the path of a
database listed in the config file (its first replica, or the one named by
-replica). Level 0 holds one file per sync, level 9 the snapshots. A replica
that holds no LTX file but a backup that Litestream v0.3 wrote
(generations/...) is said to, and its generations are listed.`

func runLTX(ctx context.Context, e *env, args []string) error {
	flags := newFlagSet(e, "ltx", "[flags] DB_PATH|REPLICA_URL", ltxDescription)
	cf := addConfigFlags(flags)
	cf.keys = addKeyFlags(flags)
	jsonOut := flags.Bool("json", false, "print a JSON array")
	levelStr := flags.String("level", "all", "list only this level (0-9), or all")
	replicaName := flags.String("replica", "", "with a configured database: list the replica with this `name` (default: the first)")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	e.jsonErrors = *jsonOut
	if len(pos) != 1 {
		return usagef("ltx takes one argument, the replica URL or the configured database path (got %d)", len(pos))
	}
	levels, err := parseLevels(*levelStr)
	if err != nil {
		return err
	}
	src, err := resolveSource(ctx, pos[0], cf, *replicaName)
	if err != nil {
		return err
	}
	defer src.close()

	var files []*ltx.FileInfo
	for _, level := range levels {
		fs, err := src.client.LTXFiles(ctx, level)
		if err != nil {
			return err
		}
		files = append(files, fs...)
	}
	if *jsonOut {
		out := make([]fileJSON, 0, len(files))
		for _, f := range files {
			out = append(out, toFileJSON(f))
		}
		return e.printJSON(out)
	}
	if len(files) == 0 {
		if *levelStr == "all" {
			old, err := litestream03.Find(ctx, src.client)
			if err != nil {
				return err
			}
			if old != nil {
				fmt.Fprintf(e.stderr, "replica %s holds no LTX files: %s\n\n", src.client, old.Explain())
				return printV03Backup(e, old)
			}
		}
		fmt.Fprintf(e.stderr, "replica %s holds no LTX files%s\n", src.client, levelNote(*levelStr))
		return nil
	}
	return printFiles(e, files)
}

func levelNote(s string) string {
	if s == "all" {
		return ""
	}
	return " at level " + s
}

func parseLevels(s string) ([]int, error) {
	if strings.EqualFold(s, "all") {
		levels := make([]int, 0, storage.MaxLevel+1)
		for l := 0; l <= storage.MaxLevel; l++ {
			levels = append(levels, l)
		}
		return levels, nil
	}
	l, err := strconv.Atoi(s)
	if err != nil || l < 0 || l > storage.MaxLevel {
		return nil, usagef("-level %q: use a level from 0 to %d, or all", s, storage.MaxLevel)
	}
	return []int{l}, nil
}
