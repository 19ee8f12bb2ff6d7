package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

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
	p.sharedReplicas(kv.path, out)
	return out
}

// sharedReplicas reports every replica that sends to a destination another
// replica of the file already sends to: each replica path has one writer,
// and the second would be refused when it starts.
func (p *parser) sharedReplicas(where string, dbs []*DB) {
	type seen struct {
		line int
		db   string
	}
	dests := map[string]seen{}
	for _, db := range dbs {
		for _, r := range db.AllReplicas() {
			dest := r.destination()
			if dest == "" {
				continue
			}
			if prev, dup := dests[dest]; dup {
				p.errorf(r.Line, "%s: the replica of %s at line %d sends to the same destination as the replica of %s at line %d; "+
					"a replica holds the history of one database: give each its own path", where, db.Path, r.Line, prev.db, prev.line)
				continue
			}
			dests[dest] = seen{line: r.Line, db: db.Path}
		}
	}
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
		case "validation-interval":
			r.ValidationInterval = p.positiveDuration(kv)
		case "audit-interval":
			r.AuditInterval = p.duration(kv)
		case "litestream-compatible":
			r.LitestreamCompatible = p.optBoolean(kv)
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
