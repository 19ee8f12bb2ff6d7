package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Keys accepted at each level. Each list drives both the parser's switch and
// the "valid keys" hint of unknown-key errors.
var (
	topKeys = []string{
		"dbs", "logging", "levels", "snapshot", "l0-retention",
		"l0-retention-check-interval", "retention", "max-local-bytes",
		"access-key-id", "secret-access-key",
	}
	loggingKeys   = []string{"level", "type", "stderr"}
	levelKeys     = []string{"interval"}
	snapshotKeys  = []string{"interval", "retention"}
	retentionKeys = []string{"enabled"}
	dbKeys        = []string{
		"path", "meta-path", "sync-interval", "checkpoint-interval",
		"min-checkpoint-page-count", "max-checkpoint-page-count", "truncate-page-n", "busy-timeout",
		"monitor-interval", "max-local-bytes", "replica", "replicas",
	}
	replicaKeys = []string{"name", "type", "url", "path", "sync-interval"}

	// reservedTopKeys are accepted and ignored (reported in Config.Unused).
	reservedTopKeys = []string{"addr", "mcp-addr"}
	// replicaExtraKeys are accepted and kept in Replica.Extra.
	replicaExtraKeys = []string{
		"access-key-id", "secret-access-key", "region", "endpoint", "bucket",
		"force-path-style", "skip-verify", "part-size", "concurrency",
		"sse-customer-key", "sse-kms-key-id", "account-name", "account-key",
		"sas-token", "key-path", "password", "host-key", "retention",
		"retention-check-interval", "validation-interval", "user", "host",
		// S3: which integrity checksums the SDK sends (walship's key).
		"checksums",
		// GCS.
		"credentials-file",
		// SFTP.
		"known-hosts", "concurrent-writes",
		// WebDAV.
		"username", "ca-file", "webdav-username", "webdav-password",
		// NATS.
		"token", "creds", "nkey", "jwt", "seed", "tls", "root-cas",
		"client-cert", "client-key", "max-reconnects", "reconnect-wait", "timeout",
	}
)

// maxErrors bounds how many problems are listed for one file.
const maxErrors = 20

// problem is one error found in the file.
type problem struct {
	line int
	msg  string
}

// parser walks a yaml.Node tree and collects problems.
type parser struct {
	name     string
	problems []problem
	merging  map[*yaml.Node]bool // mappings being merged, to stop cycles
	walked   map[*yaml.Node]bool // mappings whose keys were already checked
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
	for _, kv := range p.pairs(root, "") {
		switch kv.key {
		case "dbs":
			cfg.DBs = p.dbs(kv)
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
		case "access-key-id":
			cfg.AccessKeyID = p.str(kv)
		case "secret-access-key":
			cfg.SecretAccessKey = p.str(kv)
		default:
			if slices.Contains(reservedTopKeys, kv.key) {
				cfg.Unused = append(cfg.Unused, Key{Name: kv.key, Line: kv.line})
				continue
			}
			p.unknown(kv, "", topKeys, "also accepted but not used yet", reservedTopKeys)
		}
	}
	return cfg
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
	return out
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

// logging parses the "logging" mapping.
func (p *parser) logging(kv pair, l *Logging) {
	if isNull(kv.val) {
		return
	}
	if kv.val.Kind != yaml.MappingNode {
		p.errorf(kv.line, "%s: must be a mapping with keys such as level: and type:, not %s", kv.path, kindName(kv.val))
		return
	}
	for _, e := range p.pairs(kv.val, kv.path) {
		switch e.key {
		case "level":
			v := strings.ToLower(strings.TrimSpace(p.str(e)))
			switch v {
			case "":
			case "debug", "info", "warn", "error":
				l.Level = v
			case "warning":
				l.Level = "warn"
			default:
				p.errorf(e.line, "%s: invalid level %s (use debug, info, warn or error)", e.path, show(e.key, e.val.Value))
			}
		case "type":
			v := strings.ToLower(strings.TrimSpace(p.str(e)))
			switch v {
			case "":
			case "text", "json":
				l.Type = v
			default:
				p.errorf(e.line, "%s: invalid type %s (use text or json)", e.path, show(e.key, e.val.Value))
			}
		case "stderr":
			l.Stderr = p.boolean(e)
		default:
			p.unknown(e, kv.path, loggingKeys, "", nil)
		}
	}
}

// maxLevels is the number of compaction levels a file may list: levels 1
// to 8, level 9 being snapshots.
const maxLevels = 8

// levels parses the "levels" list: compaction levels 1, 2, ... in order,
// each with an interval greater than 0 and greater than the one before.
func (p *parser) levels(kv pair) []Level {
	if isNull(kv.val) {
		return nil
	}
	if kv.val.Kind != yaml.SequenceNode {
		p.errorf(kv.line, "%s: must be a list of compaction levels (each entry starting with \"- interval: ...\"), not %s", kv.path, kindName(kv.val))
		return nil
	}
	if len(kv.val.Content) == 0 {
		p.errorf(kv.line, "%s: must list at least one level; leave levels out to use the default levels (30s, 5m, 1h)", kv.path)
		return nil
	}
	out := []Level{}
	type prevLevel struct {
		where string
		value string
		line  int
		d     time.Duration
	}
	var prev *prevLevel
	for i, item := range kv.val.Content {
		where := fmt.Sprintf("%s[%d]", kv.path, i)
		n := resolve(item)
		if i == maxLevels {
			p.errorf(n.Line, "%s: too many levels (%d listed); at most %d are allowed (levels 1 to %d; level %d holds snapshots, set by snapshot:)",
				where, len(kv.val.Content), maxLevels, maxLevels, maxLevels+1)
		}
		if n.Kind != yaml.MappingNode {
			p.errorf(n.Line, "%s: each level must be a mapping with an interval (e.g. \"- interval: 5m\"), not %s", where, kindName(n))
			continue
		}
		lvl := Level{Line: n.Line}
		var interval *pair
		for _, e := range p.pairs(n, where) {
			switch e.key {
			case "interval":
				interval = &e
				if d := p.positiveDuration(e); d != nil {
					lvl.Interval = *d
				}
			default:
				p.unknown(e, where, levelKeys, "", nil)
			}
		}
		if interval == nil || isNull(interval.val) {
			line := n.Line
			if interval != nil {
				line = interval.line
			}
			p.errorf(line, "%s: missing required key \"interval\" (how often the level is compacted, e.g. \"interval: 5m\")", where)
			continue
		}
		if lvl.Interval == 0 { // invalid; already reported
			continue
		}
		if prev != nil && lvl.Interval <= prev.d {
			p.errorf(interval.line, "%s: interval %s must be greater than the interval of the level before it (%s at line %d is %s); list levels from the shortest interval to the longest",
				interval.path, show(interval.key, strings.TrimSpace(interval.val.Value)), prev.where, prev.line, show(interval.key, prev.value))
		}
		prev = &prevLevel{where: interval.path, value: strings.TrimSpace(interval.val.Value), line: interval.line, d: lvl.Interval}
		out = append(out, lvl)
	}
	return out
}

// snapshot parses the "snapshot" mapping.
func (p *parser) snapshot(kv pair, s *Snapshot) {
	if isNull(kv.val) {
		return
	}
	if kv.val.Kind != yaml.MappingNode {
		p.errorf(kv.line, "%s: must be a mapping with keys interval: and retention: (e.g. \"interval: 24h\"), not %s", kv.path, kindName(kv.val))
		return
	}
	for _, e := range p.pairs(kv.val, kv.path) {
		switch e.key {
		case "interval":
			s.Interval = p.positiveDuration(e)
		case "retention":
			s.Retention = p.positiveDuration(e)
		default:
			p.unknown(e, kv.path, snapshotKeys, "", nil)
		}
	}
}

// retention parses the "retention" mapping.
func (p *parser) retention(kv pair, r *Retention) {
	if isNull(kv.val) {
		return
	}
	if kv.val.Kind != yaml.MappingNode {
		hint := ""
		if kv.val.Kind == yaml.ScalarNode {
			hint = "; to keep snapshots for a period use snapshot.retention"
		}
		p.errorf(kv.line, "%s: must be a mapping with the key enabled: (e.g. \"enabled: false\"), not %s%s", kv.path, kindName(kv.val), hint)
		return
	}
	for _, e := range p.pairs(kv.val, kv.path) {
		switch e.key {
		case "enabled":
			r.Enabled = p.optBoolean(e)
		default:
			p.unknown(e, kv.path, retentionKeys, "", nil)
		}
	}
}

// dbs parses the "dbs" list and checks that database paths are unique.
func (p *parser) dbs(kv pair) []*DB {
	if isNull(kv.val) {
		return nil
	}
	if kv.val.Kind != yaml.SequenceNode {
		p.errorf(kv.line, "%s: must be a list of databases (each entry starting with \"- path: ...\"), not %s", kv.path, kindName(kv.val))
		return nil
	}
	var out []*DB
	type seenPath struct {
		line int
		key  string
	}
	paths := map[string]seenPath{}
	for i, item := range kv.val.Content {
		where := fmt.Sprintf("%s[%d]", kv.path, i)
		db, pathLine := p.db(resolve(item), where)
		if db == nil {
			continue
		}
		out = append(out, db)
		if db.Path == "" {
			continue
		}
		if prev, dup := paths[db.Path]; dup {
			p.errorf(pathLine, "%s.path: duplicate database path %q (already listed as %s at line %d); each database may appear only once",
				where, db.Path, prev.key, prev.line)
			continue
		}
		paths[db.Path] = seenPath{line: pathLine, key: where}
	}
	return out
}

// db parses one entry of "dbs". It returns the DB (nil if the entry is not
// a mapping) and the line of its path key.
func (p *parser) db(n *yaml.Node, where string) (*DB, int) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%s: each database must be a mapping with at least a path (e.g. \"- path: /var/lib/app.db\"), not %s", where, kindName(n))
		return nil, 0
	}
	db := &DB{Line: n.Line}
	pathLine := n.Line
	var replica, replicas *pair
	for _, kv := range p.pairs(n, where) {
		switch kv.key {
		case "path":
			db.Path = p.str(kv)
			pathLine = kv.line
			if db.Path != "" {
				db.Path = p.localPath(kv, db.Path)
			}
		case "meta-path":
			if s := p.str(kv); s != "" {
				db.MetaPath = p.localPath(kv, s)
			}
		case "sync-interval":
			db.SyncInterval = p.duration(kv)
		case "checkpoint-interval":
			db.CheckpointInterval = p.duration(kv)
		case "min-checkpoint-page-count":
			db.MinCheckpointPageN = p.count(kv)
		case "max-checkpoint-page-count":
			db.MaxCheckpointPageN = p.count(kv)
		case "truncate-page-n":
			db.TruncatePageN = p.count(kv)
		case "busy-timeout":
			db.BusyTimeout = p.duration(kv)
		case "monitor-interval":
			db.MonitorInterval = p.duration(kv)
		case "max-local-bytes":
			db.MaxLocalBytes = p.size(kv)
		case "replica":
			if !isNull(kv.val) {
				replica = &kv
				db.Replica = p.replica(kv.val, kv.path)
			}
		case "replicas":
			if !isNull(kv.val) {
				replicas = &kv
				db.Replicas = p.replicaList(kv)
			}
		default:
			p.unknown(kv, where, dbKeys, "", nil)
		}
	}
	if db.Path == "" {
		p.errorf(pathLine, "%s: missing required key \"path\" (the database file to replicate)", where)
	}
	if replica != nil && replicas != nil {
		second := max(replica.line, replicas.line)
		p.errorf(second, "%s: both replica (line %d) and replicas (line %d) are set; use replica: for one replica or replicas: for a list, not both",
			where, replica.line, replicas.line)
	}

	// Replica names must be unique within the database.
	names := map[string]int{}
	for _, r := range db.AllReplicas() {
		if r == nil || r.Name == "" {
			continue
		}
		if first, dup := names[r.Name]; dup {
			p.errorf(r.Line, "%s: duplicate replica name %q (already used by the replica at line %d); names must be unique within a database",
				where, r.Name, first)
			continue
		}
		names[r.Name] = r.Line
	}
	return db, pathLine
}

// localPath expands a leading "~" and makes s absolute relative to the
// current directory.
func (p *parser) localPath(kv pair, s string) string {
	if s == "~" || strings.HasPrefix(s, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			p.errorf(kv.line, "%s: cannot expand \"~\": %v", kv.path, err)
			return s
		}
		s = filepath.Join(home, s[1:])
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		p.errorf(kv.line, "%s: cannot make %q absolute: %v", kv.path, s, err)
		return s
	}
	return abs
}

// replicaList parses "replicas".
func (p *parser) replicaList(kv pair) []*Replica {
	if kv.val.Kind != yaml.SequenceNode {
		p.errorf(kv.line, "%s: must be a list of replicas (each entry starting with \"- url: ...\" or \"- path: ...\"), not %s", kv.path, kindName(kv.val))
		return nil
	}
	var out []*Replica
	for i, item := range kv.val.Content {
		if r := p.replica(resolve(item), fmt.Sprintf("%s[%d]", kv.path, i)); r != nil {
			out = append(out, r)
		}
	}
	return out
}

// replica parses one replica mapping whose key path is where.
func (p *parser) replica(n *yaml.Node, where string) *Replica {
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%s: a replica must be a mapping with a url or a path (e.g. \"url: file:///backups/app\"), not %s", where, kindName(n))
		return nil
	}
	r := &Replica{Line: n.Line}
	var urlLine, pathLine int
	for _, kv := range p.pairs(n, where) {
		switch kv.key {
		case "name":
			r.Name = p.str(kv)
		case "type":
			r.Type = p.str(kv)
		case "url":
			r.URL = p.str(kv)
			urlLine = kv.line
		case "path":
			r.Path = p.str(kv)
			pathLine = kv.line
		case "sync-interval":
			r.SyncInterval = p.duration(kv)
		default:
			if slices.Contains(replicaExtraKeys, kv.key) {
				if r.Extra == nil {
					r.Extra = map[string]string{}
				}
				if kv.key == "root-cas" && kv.val.Kind == yaml.SequenceNode {
					// Litestream writes NATS's CA files as a list.
					r.Extra[kv.key] = p.strList(kv)
				} else {
					r.Extra[kv.key] = p.str(kv)
				}
				continue
			}
			p.unknown(kv, where, replicaKeys, "backend options", replicaExtraKeys)
		}
	}
	switch {
	case r.URL == "" && r.Path == "" && (r.Type == "" || strings.EqualFold(r.Type, "file")):
		// Other types may name their destination by keys alone
		// (type: nats with bucket:, type: s3 with bucket:).
		p.errorf(n.Line, "%s: replica has neither url nor path; set one (e.g. \"url: file:///backups/app\" or \"path: /backups/app\")", where)
	case r.URL != "" && r.Path != "":
		p.errorf(max(urlLine, pathLine), "%s: replica has both url (line %d) and path (line %d); set only one", where, urlLine, pathLine)
	}
	return r
}

// str returns a scalar value as a string; null is "". Lists and mappings
// are reported.
func (p *parser) str(kv pair) string {
	if isNull(kv.val) {
		return ""
	}
	if kv.val.Kind != yaml.ScalarNode {
		p.errorf(kv.line, "%s: must be a single value, not %s", kv.path, kindName(kv.val))
		return ""
	}
	return kv.val.Value
}

// strList joins a list of single values with commas.
func (p *parser) strList(kv pair) string {
	var vals []string
	for _, n := range kv.val.Content {
		if n.Kind != yaml.ScalarNode {
			p.errorf(n.Line, "%s: list items must be single values, not %s", kv.path, kindName(n))
			return ""
		}
		vals = append(vals, n.Value)
	}
	return strings.Join(vals, ",")
}

// dayRE matches a number of days, which Go durations cannot express.
var dayRE = regexp.MustCompile(`^\d+d$`)

// duration parses a non-negative Go duration ("1s", "500ms", "0"); null is
// unset (nil).
func (p *parser) duration(kv pair) *time.Duration {
	return p.parseDuration(kv, false)
}

// positiveDuration is [parser.duration] for settings where 0 makes no
// sense, such as the interval of a periodic task.
func (p *parser) positiveDuration(kv pair) *time.Duration {
	return p.parseDuration(kv, true)
}

// parseDuration parses a Go duration, which must be greater than 0 if
// positive is set and not negative otherwise; null is unset (nil).
func (p *parser) parseDuration(kv pair, positive bool) *time.Duration {
	if isNull(kv.val) {
		return nil
	}
	if kv.val.Kind != yaml.ScalarNode {
		p.errorf(kv.line, "%s: must be a duration such as 1s or 500ms, not %s", kv.path, kindName(kv.val))
		return nil
	}
	s := strings.TrimSpace(kv.val.Value)
	d, err := time.ParseDuration(s)
	if err != nil {
		hint := ""
		switch {
		case dayRE.MatchString(s):
			hint = "; there is no day unit, write 24h for a day"
		case isInteger(s):
			hint = "; a number needs a unit, e.g. " + s + "s"
		}
		p.errorf(kv.line, "%s: invalid duration %s (use a Go duration such as 1s or 500ms%s)", kv.path, show(kv.key, s), hint)
		return nil
	}
	if positive && d <= 0 {
		p.errorf(kv.line, "%s: duration must be greater than 0 (got %s)", kv.path, show(kv.key, s))
		return nil
	}
	if d < 0 {
		p.errorf(kv.line, "%s: duration must not be negative (got %s)", kv.path, show(kv.key, s))
		return nil
	}
	return &d
}

// sizeRE matches a byte size such as "512MB", "1 GiB" or "1024": a whole
// number and an optional unit.
var sizeRE = regexp.MustCompile(`^([0-9]+)\s*([A-Za-z]*)$`)

// sizeUnits maps lower-case size units to their number of bytes.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// sizeHelp lists the accepted size forms, for messages.
const sizeHelp = "use a whole number of bytes or a number with a unit such as 512MB or 1GiB; units: B, KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB, TiB (powers of 1024)"

// size parses a byte size greater than 0: a YAML integer (bytes) or a
// string of a whole number and an optional unit (see sizeUnits, any letter
// case, optionally separated by spaces). Null is unset (nil).
func (p *parser) size(kv pair) *int64 {
	if isNull(kv.val) {
		return nil
	}
	if kv.val.Kind != yaml.ScalarNode {
		p.errorf(kv.line, "%s: must be a size such as 1073741824, 512MB or 1GiB, not %s", kv.path, kindName(kv.val))
		return nil
	}
	raw := strings.TrimSpace(kv.val.Value)
	invalid := func(hint string) *int64 {
		p.errorf(kv.line, "%s: invalid size %s (%s%s)", kv.path, show(kv.key, raw), sizeHelp, hint)
		return nil
	}
	var n int64
	switch kv.val.ShortTag() {
	case "!!int":
		if err := kv.val.Decode(&n); err != nil {
			if strings.HasPrefix(raw, "-") {
				return p.nonPositiveSize(kv, raw)
			}
			return p.sizeTooLarge(kv, raw)
		}
	case "!!str":
		if strings.HasPrefix(raw, "-") {
			return p.nonPositiveSize(kv, raw)
		}
		m := sizeRE.FindStringSubmatch(raw)
		if m == nil {
			hint := ""
			if strings.ContainsAny(raw, ".,") {
				hint = "; write a whole number, with a smaller unit if needed (e.g. 1536MiB rather than 1.5GiB)"
			}
			return invalid(hint)
		}
		mult, ok := sizeUnits[strings.ToLower(m[2])]
		if !ok {
			return invalid(fmt.Sprintf("; unknown unit %q", m[2]))
		}
		v, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || v > math.MaxInt64/mult {
			return p.sizeTooLarge(kv, raw)
		}
		n = v * mult
	case "!!float":
		if strings.Trim(raw, "+0123456789") == "" { // an integer too large for !!int
			return p.sizeTooLarge(kv, raw)
		}
		return invalid("; write a whole number, with a smaller unit if needed (e.g. 1536MiB rather than 1.5GiB)")
	default:
		return invalid("")
	}
	if n <= 0 {
		return p.nonPositiveSize(kv, raw)
	}
	return &n
}

func (p *parser) nonPositiveSize(kv pair, raw string) *int64 {
	p.errorf(kv.line, "%s: size must be greater than 0 (got %s)", kv.path, show(kv.key, raw))
	return nil
}

func (p *parser) sizeTooLarge(kv pair, raw string) *int64 {
	p.errorf(kv.line, "%s: size %s is too large (at most %d bytes)", kv.path, show(kv.key, raw), int64(math.MaxInt64))
	return nil
}

// count parses a non-negative integer (a page count); null is unset (nil).
func (p *parser) count(kv pair) *int {
	if isNull(kv.val) {
		return nil
	}
	if kv.val.Kind != yaml.ScalarNode {
		p.errorf(kv.line, "%s: must be a whole number, not %s", kv.path, kindName(kv.val))
		return nil
	}
	var n int
	var err error
	switch kv.val.ShortTag() {
	case "!!int":
		err = kv.val.Decode(&n)
	case "!!str":
		n, err = strconv.Atoi(strings.TrimSpace(kv.val.Value))
	default:
		err = errors.New("not an integer")
	}
	if err != nil {
		p.errorf(kv.line, "%s: invalid number %s (use a whole number of pages such as 1000)", kv.path, show(kv.key, kv.val.Value))
		return nil
	}
	if n < 0 {
		p.errorf(kv.line, "%s: page count must not be negative (got %s)", kv.path, show(kv.key, kv.val.Value))
		return nil
	}
	return &n
}

// boolean parses true/false; null is false.
func (p *parser) boolean(kv pair) bool {
	if isNull(kv.val) {
		return false
	}
	var b bool
	if kv.val.Kind != yaml.ScalarNode || kv.val.Decode(&b) != nil {
		hint := ""
		if kv.val.Kind == yaml.ScalarNode && kv.val.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
			hint = ", without quotes"
		}
		p.errorf(kv.line, "%s: invalid boolean %s (use true or false%s)", kv.path, show(kv.key, kv.val.Value), hint)
		return false
	}
	return b
}

// optBoolean parses true/false; null is unset (nil).
func (p *parser) optBoolean(kv pair) *bool {
	if isNull(kv.val) {
		return nil
	}
	b := p.boolean(kv)
	return &b
}

// resolve follows YAML aliases to the anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is absent, "~", "null" or an empty value.
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName describes a node's kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if isNull(n) {
			return "an empty value"
		}
		return "a single value"
	}
	return "an unsupported YAML node"
}

// join builds a key path.
func join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

// describe names a location for "unknown key ... <describe>" messages.
func describe(where string) string {
	if where == "" {
		return "at top level"
	}
	return "in " + where
}

// isSecret reports whether the value of key may be confidential and must
// not appear in messages.
func isSecret(key string) bool {
	k := strings.ToLower(key)
	for _, s := range []string{"secret", "password", "key", "token"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// show quotes a value for a message, unless key names a secret.
func show(key, value string) string {
	if isSecret(key) {
		return "(value not shown)"
	}
	return strconv.Quote(value)
}

func isInteger(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// suggest returns the valid key closest to key, if close enough to be a
// likely misspelling.
func suggest(key string, valid []string) string {
	best, bestD := "", 0
	for _, v := range valid {
		d := editDistance(strings.ToLower(key), v)
		if best == "" || d < bestD {
			best, bestD = v, d
		}
	}
	if best == "" || bestD > max(2, len(key)/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
