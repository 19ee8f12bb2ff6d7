package config

import (
	"fmt"
	"strings"
)

// A Warning is a setting of the file that walship accepts, because
// Litestream does, but that has no effect in walship (or not the whole
// effect it has in Litestream). The command line logs each once at start-up
// and `walship databases` lists them.
type Warning struct {
	File string // the file's name, as given to Load or Parse
	Line int    // 1-based line of the key; 0 when unknown
	// Key is the full key, e.g. "dbs[0].replica.storage-class", or the
	// entry ("dbs[1]") when the warning is about all of it.
	Key string
	// Msg says what the setting does in walship, and what to do instead.
	Msg string
}

// String returns the warning as "file:line: key: message".
func (w Warning) String() string {
	where := w.File
	if w.Line > 0 {
		where = fmt.Sprintf("%s:%d", w.File, w.Line)
	}
	return fmt.Sprintf("%s: %s: %s", where, w.Key, w.Msg)
}

// Litestream's keys that walship accepts and does not act on, at each
// level, with what walship does instead. Each is warned about once where
// it is written; its value is not read. Keys of one kind of replica
// destination are declared by their backend (storage.Backend.Ignored).
var (
	ignoredTopKeys = map[string]string{
		"mcp-addr": "walship has no MCP server",
		"shutdown-sync-interval": "walship's uploads retry with their own backoff until shutdown-sync-timeout has passed; " +
			"what is not uploaded by then stays staged and ships at the next start",
		"verify-compaction": "walship always checks the files of every compaction before it writes the result (their TXIDs follow each other and their checksums chain), " +
			"and audits the replica every audit-interval",
		"validation": "walship lists each replica every audit-interval (10m by default) to find files missing from its levels; " +
			"to read and verify every file of a replica periodically, set validation-interval on the replica",
	}
	ignoredDBKeys = map[string]string{
		"monitor-interval": "walship watches the WAL for changes (file notifications, with a 10s fallback poll)",
		"max-sync-wal-bytes": "walship captures all that was committed at each sync, streaming it to the staging directory, " +
			"so its memory does not grow with the WAL",
	}
	// directoryKeys are the keys of Litestream's directory replication.
	directoryKeys = []string{"dir", "pattern", "recursive", "watch", "meta-dir"}
	// ignoredReplicaKeys are keys of every kind of replica (also accepted
	// at the top level, as defaults).
	ignoredReplicaKeys = map[string]string{
		"max-sync-ltx-files": "walship uploads a backlog merged, one file per request for up to 1,000 files or 16 MiB",
		"auto-recover": "walship repairs a replica without being asked: a file missing or damaged in the replica, or a broken staged history, " +
			"makes it upload a new snapshot (see audit-interval and validation-interval)",
		"retention": "a Litestream 0.3 key, which Litestream 0.5 ignores too: " +
			"snapshot.retention (top level) sets how long history is kept",
		"retention-check-interval": "a Litestream 0.3 key, which Litestream 0.5 ignores too: " +
			"l0-retention-check-interval (top level) sets how often retention runs",
		"snapshot-interval": "a Litestream 0.3 key, which Litestream 0.5 ignores too: " +
			"snapshot.interval (top level) sets how often snapshots are taken",
	}
)

// warnf records a warning about kv.
func (p *parser) warnf(line int, key, format string, args ...any) {
	p.warnings = append(p.warnings, Warning{File: p.name, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// ignore records that kv, one of Litestream's keys, has no effect.
func (p *parser) ignore(kv pair, reason string) {
	if strings.HasPrefix(reason, "not supported yet") {
		p.warnf(kv.line, kv.path, "%s", reason)
		return
	}
	p.warnf(kv.line, kv.path, "has no effect in walship: %s", reason)
}
