package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxErrors bounds how many problems are listed for one file.
const maxErrors = 20

// problem is one error found in the file.
type problem struct {
	line int
	msg  string
}

// parser walks a yaml.Node tree and collects problems and warnings.
type parser struct {
	name     string
	problems []problem
	warnings []Warning
	// defaults holds the replica settings written at the top level, which
	// apply to every replica that does not set its own; defaultKeys the
	// keys as written, for warnings.
	defaults    Replica
	defaultKeys []pair
	// dbSnaps are the "snapshot" mappings of databases, applied by
	// dbSnapshots.
	dbSnaps []dbSnapshot
	// replicaSyncIntervals are the sync-interval keys written on replicas.
	replicaSyncIntervals map[*Replica]pair
	merging              map[*yaml.Node]bool // mappings being merged, to stop cycles
	walked               map[*yaml.Node]bool // mappings whose keys were already checked
	// resolved holds the pairs of each mapping at each key path: a
	// mapping merged many times, at many depths, is walked once, so that
	// merges of merges cost what the file holds, not what they expand to.
	resolved map[resolvedKey][]pair
}

// errorf records a problem at line (0 when unknown).
func (p *parser) errorf(line int, format string, args ...any) {
	p.problems = append(p.problems, problem{line: line, msg: fmt.Sprintf(format, args...)})
}

// err returns all problems as one error, one "file:line: message" per line,
// ordered by line, or nil.
func (p *parser) err() error {
	if len(p.problems) == 0 {
		return nil
	}
	slices.SortStableFunc(p.problems, func(a, b problem) int { return cmp.Compare(a.line, b.line) })
	// A mapping merged into several others may report the same problem
	// more than once.
	seen := map[problem]bool{}
	p.problems = slices.DeleteFunc(p.problems, func(pr problem) bool {
		dup := seen[pr]
		seen[pr] = true
		return dup
	})
	var errs []error
	for i, pr := range p.problems {
		if i == maxErrors {
			errs = append(errs, fmt.Errorf("%s: ... and %d more problems", p.name, len(p.problems)-maxErrors))
			break
		}
		if pr.line > 0 {
			errs = append(errs, fmt.Errorf("%s:%d: %s", p.name, pr.line, pr.msg))
		} else {
			errs = append(errs, fmt.Errorf("%s: %s", p.name, pr.msg))
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// yamlLineRE matches yaml.v3 syntax errors such as
// "yaml: line 3: mapping values are not allowed in this context".
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError records a YAML syntax error. yaml.v3 reports the line where
// the enclosing construct started (often the first line of the file for an
// indentation mistake), so the line is located more precisely by
// problemLine. yaml.v3 syntax messages do not quote values.
func (p *parser) syntaxError(err error, data []byte) {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if l := problemLine(data); l > 0 {
		line = l
	}
	hint := ""
	if line > 0 {
		lines := bytes.Split(data, []byte("\n"))
		if line <= len(lines) {
			text := lines[line-1]
			indent := text[:len(text)-len(bytes.TrimLeft(text, " \t"))]
			if bytes.Contains(indent, []byte("\t")) {
				hint = " (this line is indented with a tab; YAML indentation must use spaces)"
			}
		}
	}
	p.errorf(line, "invalid YAML: %s%s", msg, hint)
}

// maxProblemLines bounds the size of files problemLine examines; it parses
// up to one prefix per line.
const maxProblemLines = 1000

// problemLine returns the 1-based line at which data stops being valid
// YAML: the line after the longest prefix of whole lines that parses. It
// returns 0 if data is too long to examine.
func problemLine(data []byte) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxProblemLines {
		return 0
	}
	for j := len(lines) - 1; j >= 0; j-- {
		if validYAML(bytes.Join(lines[:j], nil)) {
			return j + 1
		}
	}
	return 0
}

// validYAML reports whether every document in data parses.
func validYAML(data []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			return errors.Is(err, io.EOF)
		}
	}
}

func (p *parser) parse(data []byte) *Config {
	cfg := &Config{Logging: Logging{Level: DefaultLogLevel, Type: DefaultLogType}}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // empty file or only comments
			return cfg
		}
		p.syntaxError(err, data)
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		p.errorf(next.Line, "more than one YAML document (\"---\"); put all settings in one document")
	case !errors.Is(err, io.EOF):
		p.syntaxError(err, data)
	}
	if len(doc.Content) == 0 {
		return cfg
	}

	root := resolve(doc.Content[0])
	if isNull(root) {
		return cfg
	}
	if root.Kind != yaml.MappingNode {
		p.errorf(root.Line, "the top level must be a mapping with keys such as dbs: and logging:, not %s", kindName(root))
		return nil
	}
	var dbs *pair
	for _, kv := range p.pairs(root, "") {
		switch kv.key {
		case "dbs":
			dbs = &kv
		case "logging":
			p.logging(kv, &cfg.Logging)
		case "levels":
			cfg.Levels = p.levels(kv)
		case "snapshot":
			p.snapshot(kv, &cfg.Snapshot)
		case "l0-retention":
			cfg.L0Retention = p.duration(kv)
		case "l0-retention-check-interval":
			cfg.L0RetentionCheckInterval = p.positiveDuration(kv)
		case "retention":
			p.retention(kv, &cfg.Retention)
		case "max-local-bytes":
			cfg.MaxLocalBytes = p.size(kv)
		case "shutdown-sync-timeout":
			cfg.ShutdownSyncTimeout = p.duration(kv)
		case "addr":
			cfg.Addr = p.str(kv)
		case "health-max-lag":
			cfg.HealthMaxLag = p.positiveDuration(kv)
		case "heartbeat-url":
			cfg.HeartbeatURL = p.str(kv)
		case "heartbeat-interval":
			cfg.HeartbeatInterval = p.positiveDuration(kv)
		case "socket":
			p.socket(kv, &cfg.Socket)
		case "exec":
			cfg.Exec = p.str(kv)
		default:
			if reason, ok := ignoredTopKeys[kv.key]; ok {
				p.ignore(kv, reason)
				continue
			}
			if p.replicaSetting(&p.defaults, kv) {
				p.defaultKeys = append(p.defaultKeys, kv)
				continue
			}
			p.unknown(kv, "", topKeys, "replica settings, which apply to every replica", replicaSettingKeys())
		}
	}
	cfg.AccessKeyID, cfg.SecretAccessKey = p.defaults.Extra["access-key-id"], p.defaults.Extra["secret-access-key"]
	if dbs != nil {
		cfg.DBs, cfg.Dirs = p.dbs(*dbs)
	}
	p.dbSnapshots(cfg)
	p.applyDefaults(slices.Concat(cfg.DBs, cfg.Dirs))
	// Not the directories': two entries of one directory with other
	// patterns may share a replica URL, as in Litestream, each database
	// writing under its own path there.
	p.sharedReplicas("dbs", cfg.DBs)
	return cfg
}

// sortedWarnings returns the warnings ordered by line, each once (a
// mapping merged into several others may give the same warning twice).
func (p *parser) sortedWarnings() []Warning {
	slices.SortStableFunc(p.warnings, func(a, b Warning) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Key, b.Key), cmp.Compare(a.Msg, b.Msg))
	})
	return slices.Compact(p.warnings)
}

// pair is one key/value of a mapping.
type pair struct {
	key  string     // the key as written
	path string     // full key for messages, e.g. "dbs[0].sync-interval"
	line int        // line of the key
	val  *yaml.Node // the value, aliases resolved
}

// pairs returns the entries of mapping node n, whose own key path is where
// ("" at the top level), applying YAML merge keys ("<<") and reporting
// duplicate and non-scalar keys. Those structural problems are reported
// only the first time a node is walked, so a mapping merged into several
// others is blamed once, under the key path where it first appears.
func (p *parser) pairs(n *yaml.Node, where string) []pair {
	key := resolvedKey{n, where}
	if out, ok := p.resolved[key]; ok {
		return out
	}
	if p.resolved == nil {
		p.resolved = map[resolvedKey][]pair{}
	}
	if p.walked == nil {
		p.walked = map[*yaml.Node]bool{}
	}
	report := !p.walked[n]
	p.walked[n] = true
	errorf := func(line int, format string, args ...any) {
		if report {
			p.errorf(line, format, args...)
		}
	}

	var out []pair
	seen := map[string]int{} // key -> line of first occurrence
	type merge struct {
		line int
		val  *yaml.Node
	}
	var merges []merge
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], resolve(n.Content[i+1])
		if kn.Kind == yaml.ScalarNode && kn.ShortTag() == "!!merge" {
			merges = append(merges, merge{kn.Line, vn})
			continue
		}
		if kn.Kind != yaml.ScalarNode {
			errorf(kn.Line, "%s: keys must be plain names, not %s", describe(where), kindName(kn))
			continue
		}
		if first, dup := seen[kn.Value]; dup {
			errorf(kn.Line, "%s: duplicate key (already set at line %d)", join(where, kn.Value), first)
			continue
		}
		seen[kn.Value] = kn.Line
		out = append(out, pair{key: kn.Value, path: join(where, kn.Value), line: kn.Line, val: vn})
	}

	// Merged entries never override explicit ones; earlier merges win.
	for _, m := range merges {
		mpath := join(where, "<<")
		var sources []*yaml.Node
		switch m.val.Kind {
		case yaml.MappingNode:
			sources = []*yaml.Node{m.val}
		case yaml.SequenceNode:
			for _, s := range m.val.Content {
				sources = append(sources, resolve(s))
			}
		default:
			sources = []*yaml.Node{m.val}
		}
		for _, s := range sources {
			if s.Kind != yaml.MappingNode {
				errorf(m.line, "%s: a merge key needs a mapping or a list of mappings, not %s", mpath, kindName(s))
				continue
			}
			if s == n || p.merging[s] {
				errorf(m.line, "%s: merges a mapping that contains this merge key", mpath)
				continue
			}
			if p.merging == nil {
				p.merging = map[*yaml.Node]bool{}
			}
			p.merging[s] = true
			for _, kv := range p.pairs(s, where) {
				if _, ok := seen[kv.key]; !ok {
					seen[kv.key] = kv.line
					out = append(out, kv)
				}
			}
			delete(p.merging, s)
		}
	}
	p.resolved[key] = out
	return out
}

// resolvedKey is a mapping at a key path.
type resolvedKey struct {
	n     *yaml.Node
	where string
}

// unknown reports an unknown key, with a spelling suggestion and the list
// of valid keys. more lists further accepted keys, described by moreLabel.
func (p *parser) unknown(kv pair, where string, valid []string, moreLabel string, more []string) {
	var hint string
	switch {
	case where == "" && slices.Contains(dbKeys, kv.key):
		hint = fmt.Sprintf("check placement: %q is a database setting; put it under an entry of dbs:", kv.key)
	case strings.HasPrefix(where, "dbs[") && !strings.Contains(where, ".") &&
		(slices.Contains(replicaKeys, kv.key) || slices.Contains(replicaExtraKeys, kv.key)):
		hint = fmt.Sprintf("check placement: %q is a replica setting; put it under replica: or replicas:", kv.key)
	case strings.HasPrefix(where, "dbs[") && slices.Contains(topKeys, kv.key):
		hint = fmt.Sprintf("check placement: %q is a top-level setting that applies to all databases; put it at the top level, not under dbs:", kv.key)
	default:
		hint = "check spelling"
		if s := suggest(kv.key, append(slices.Clone(valid), more...)); s != "" {
			hint += fmt.Sprintf("; did you mean %q?", s)
		}
	}
	keys := "valid keys here: " + strings.Join(valid, ", ")
	if len(more) > 0 {
		keys += "; " + moreLabel + ": " + strings.Join(slices.Sorted(slices.Values(more)), ", ")
	}
	sep := "; "
	if strings.HasSuffix(hint, "?") {
		sep = " "
	}
	p.errorf(kv.line, "unknown key %q %s (%s%s%s)", kv.key, describe(where), hint, sep, keys)
}
