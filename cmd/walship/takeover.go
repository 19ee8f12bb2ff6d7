package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// takeoverFlags is what -takeover asks for: every database of the command
// (-takeover), or only the databases named (-takeover=DB_PATH, as many
// times as needed), so that taking one tenant's replica over in a config
// of many does not take over another database's replica that a mistake
// pointed at the same place.
type takeoverFlags struct {
	all   bool
	paths []string // absolute
}

// of reports whether the database at the absolute path takes its
// replicas over.
func (t *takeoverFlags) of(path string) bool {
	return t.all || slices.Contains(t.paths, path)
}

// given reports whether -takeover was given at all.
func (t *takeoverFlags) given() bool { return t.all || len(t.paths) > 0 }

// unknown returns the -takeover=DB_PATH paths that name none of the
// databases, for which known says whether the command replicates a
// database at a path.
func (t *takeoverFlags) unknown(known func(path string) bool) []string {
	var out []string
	for _, p := range t.paths {
		if !known(p) {
			out = append(out, p)
		}
	}
	return out
}

// takeoverFlag is -takeover's flag.Value: a boolean flag that also takes a
// database's path.
type takeoverFlag struct{ t *takeoverFlags }

func (f takeoverFlag) IsBoolFlag() bool { return true }

func (f takeoverFlag) String() string {
	switch {
	case f.t == nil || !f.t.given():
		return "false"
	case f.t.all:
		return "true"
	}
	return strings.Join(f.t.paths, ",")
}

func (f takeoverFlag) Set(v string) error {
	switch v {
	case "true", "1":
		f.t.all = true
	case "false", "0":
		f.t.all, f.t.paths = false, nil
	case "":
		return fmt.Errorf("want true, false or a database's path")
	default:
		abs, err := filepath.Abs(v)
		if err != nil {
			return fmt.Errorf("database path %q: %w", v, err)
		}
		f.t.paths = append(f.t.paths, abs)
	}
	return nil
}
