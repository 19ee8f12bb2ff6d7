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

// dbs parses the "dbs" list and checks that database paths are unique. It
// returns the entries of one database, and those of a directory (dir:).
func (p *parser) dbs(kv pair) (out, dirs []*DB) {
	if isNull(kv.val) {
		return nil, nil
	}
	if kv.val.Kind != yaml.SequenceNode {
		p.errorf(kv.line, "%s: must be a list of databases (each entry starting with \"- path: ...\"), not %s", kv.path, kindName(kv.val))
		return nil, nil
	}
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
		if db.Dir != "" {
			dirs = append(dirs, db)
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
	for _, db := range out {
		for _, d := range dirs {
			if d.Matches(db.Path) {
				p.warnf(paths[db.Path].line, paths[db.Path].key+".path",
					"%s is also a database of the directory entry at line %d (dir: %s, pattern %q): this entry's settings and replicas apply to it, and the directory skips it",
					db.Path, d.Line, d.Dir, d.Pattern)
				break
			}
		}
	}
	return out, dirs
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
// a mapping; Dir set for a directory of databases) and the line of its
// path key.
func (p *parser) db(n *yaml.Node, where string) (*DB, int) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%s: each database must be a mapping with at least a path (e.g. \"- path: /var/lib/app.db\"), not %s", where, kindName(n))
		return nil, 0
	}
	db := &DB{Line: n.Line}
	pathLine := n.Line
	var replica, replicas, dir, restoreKey *pair
	var dirKeys []pair
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
		case "lease-ttl":
			db.LeaseTTL = p.duration(kv)
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
			p.ignore(kv, ignoredDBKeys[kv.key])
		case "max-local-bytes":
			db.MaxLocalBytes = p.size(kv)
		case "restore-if-db-not-exists":
			db.RestoreIfDBNotExists = p.boolean(kv)
			restoreKey = &kv
		case "snapshot":
			var s Snapshot
			p.snapshot(kv, &s)
			p.dbSnaps = append(p.dbSnaps, dbSnapshot{pair: kv, Snapshot: s})
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
			if slices.Contains(directoryKeys, kv.key) {
				if kv.key == "dir" && !isNull(kv.val) {
					dir = &kv
				}
				dirKeys = append(dirKeys, kv)
				continue
			}
			if reason, ok := ignoredDBKeys[kv.key]; ok {
				p.ignore(kv, reason)
				continue
			}
			p.unknown(kv, where, dbKeys, "Litestream's, accepted with a warning", litestreamDBKeys())
		}
	}
	if dir != nil {
		if !p.directory(where, db, *dir, dirKeys) {
			return nil, 0
		}
		pathLine = dir.line
	}
	if dir != nil && restoreKey != nil && db.RestoreIfDBNotExists {
		// Litestream skips it there too, silently.
		p.warnf(restoreKey.line, restoreKey.path, "has no effect on a directory entry (dir:): walship learns of its databases from their files, so none is known to be missing; list a database to restore on first boot with path:, or restore it with walship restore")
	}
	for _, kv := range dirKeys {
		if dir == nil {
			p.warnf(kv.line, kv.path, "has no effect: it belongs to directory replication (dir:), which this entry does not use")
		}
	}
	if db.Path == "" && db.Dir == "" {
		p.errorf(pathLine, "%s: missing required key \"path\" (the database file to replicate)", where)
	}
	if replica != nil && replicas != nil {
		second := max(replica.line, replicas.line)
		p.errorf(second, "%s: both replica (line %d) and replicas (line %d) are set; use replica: for one replica or replicas: for a list, not both",
			where, replica.line, replicas.line)
	}

	// Replica names must be unique within the database.
	names := map[string]int{}
	for i, r := range db.AllReplicas() {
		if r == nil {
			continue
		}
		if kv, ok := p.replicaSyncIntervals[r]; ok && i > 0 {
			p.warnf(kv.line, kv.path, "has no effect: a database has one sync interval, its first replica's; set sync-interval on the database instead")
		}
		if r.Name == "" {
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

// directory reads the keys of a directory entry (dir: with pattern:,
// recursive:, watch:, meta-dir:, as in Litestream) into db. It returns
// false, with the error recorded, when the entry is not valid: both path
// and dir, or no pattern, as Litestream refuses them.
func (p *parser) directory(where string, db *DB, dir pair, keys []pair) bool {
	if db.Path != "" {
		p.errorf(dir.line, "%s: both path and dir are set; keep path: for one database, or dir: with pattern: for every database of a directory (Litestream refuses both as well)", where)
		return false
	}
	if s := p.str(dir); s != "" {
		db.Dir = p.localPath(dir, s)
	}
	ok := db.Dir != ""
	var metaDir *pair
	for _, kv := range keys {
		switch kv.key {
		case "pattern":
			db.Pattern = p.str(kv)
			if _, err := filepath.Match(db.Pattern, ""); err != nil {
				p.errorf(kv.line, "%s: %s is not a valid file name pattern (%v); use a shell pattern such as \"*.db\"", kv.path, show(kv.key, db.Pattern), err)
				ok = false
			}
		case "recursive":
			db.Recursive = p.boolean(kv)
		case "watch":
			if !isNull(kv.val) && !p.boolean(kv) {
				p.warnf(kv.line, kv.path, "has no effect: walship always watches the directory, and replicates the databases created in it while it runs")
			}
		case "meta-dir":
			if s := p.str(kv); s != "" {
				metaDir = &kv
				db.MetaDir = p.localPath(kv, s)
			}
		}
	}
	if metaDir != nil && db.MetaPath != "" {
		p.errorf(metaDir.line, "%s: both meta-path and meta-dir are set; set one (Litestream refuses both as well)", where)
		ok = false
	}
	if ok && db.Pattern == "" {
		p.errorf(dir.line, "%s: dir: needs a pattern: naming the databases to replicate (e.g. pattern: \"*.db\"), as in Litestream", where)
		ok = false
	}
	return ok
}

// dbSnapshot is the "snapshot" mapping of a database.
type dbSnapshot struct {
	pair
	Snapshot
}

// dbSnapshots applies the snapshot settings of databases as Litestream
// does: one that the top level does not set applies to every database, and
// databases that set it must agree; the top level's, when set, wins.
func (p *parser) dbSnapshots(cfg *Config) {
	type setting struct {
		name string
		top  **time.Duration
		get  func(Snapshot) *time.Duration
	}
	for _, s := range []setting{
		{"interval", &cfg.Snapshot.Interval, func(s Snapshot) *time.Duration { return s.Interval }},
		{"retention", &cfg.Snapshot.Retention, func(s Snapshot) *time.Duration { return s.Retention }},
	} {
		topSet := *s.top != nil
		var first *dbSnapshot
		for i := range p.dbSnaps {
			ds := &p.dbSnaps[i]
			d := s.get(ds.Snapshot)
			switch {
			case d == nil:
			case topSet:
				p.warnf(ds.line, ds.path+"."+s.name, "has no effect: the top-level snapshot.%s applies to every database (in Litestream too)", s.name)
			case first == nil:
				first = ds
				*s.top = d
			case *d != **s.top:
				p.errorf(ds.line, "%s.%s: %s differs from %s.%s (line %d), %s: a snapshot %s applies to every database, as in Litestream; set snapshot.%s once at the top level",
					ds.path, s.name, d, first.path, s.name, first.line, *s.top, s.name, s.name)
			}
		}
	}
}

// sqlitePrefixes are the connection-string prefixes that Litestream strips
// from a database path.
var sqlitePrefixes = []string{"sqlite3://", "sqlite://"}

// localPath strips a SQLite connection-string prefix (sqlite:// or
// sqlite3://, as Litestream does), expands a leading "~" and makes s
// absolute relative to the current directory.
func (p *parser) localPath(kv pair, s string) string {
	for _, prefix := range sqlitePrefixes {
		s = strings.TrimPrefix(s, prefix)
	}
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
