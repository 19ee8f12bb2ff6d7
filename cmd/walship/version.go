package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

func runVersion(ctx context.Context, e *env, args []string) error {
	flags := newFlagSet(e, "version", "", "Prints the version of walship, of Go, and of the LTX and SQLite libraries it was built with.")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("version takes no argument")
	}
	fmt.Fprintf(e.stdout, "walship %s\n", Version)
	fmt.Fprintf(e.stdout, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			label := map[string]string{"github.com/superfly/ltx": "ltx", "modernc.org/sqlite": "sqlite"}[dep.Path]
			if label == "" {
				continue
			}
			if dep.Replace != nil {
				dep = dep.Replace
			}
			fmt.Fprintf(e.stdout, "%s: %s %s\n", label, dep.Path, dep.Version)
		}
	}
	return nil
}
