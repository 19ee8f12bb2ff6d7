package config

import (
	"maps"
	"slices"

	"github.com/walship/walship/storage/backend"
)

// Keys accepted at each level. Each list drives both the parser's switch and
// the "valid keys" hint of unknown-key errors. Litestream's keys that
// walship accepts without acting on them are listed in warnings.go.
var (
	topKeys = []string{
		"dbs", "logging", "levels", "snapshot", "l0-retention",
		"l0-retention-check-interval", "retention", "max-local-bytes", "shutdown-sync-timeout",
		"addr", "health-max-lag", "heartbeat-url", "heartbeat-interval", "socket", "exec",
	}
	loggingKeys   = []string{"level", "type", "stderr", "source"}
	levelKeys     = []string{"interval"}
	snapshotKeys  = []string{"interval", "retention"}
	retentionKeys = []string{"enabled"}
	dbKeys        = []string{
		"path", "meta-path", "sync-interval", "checkpoint-interval",
		"min-checkpoint-page-count", "max-checkpoint-page-count", "truncate-page-n", "busy-timeout",
		"monitor-interval", "max-local-bytes", "snapshot", "replica", "replicas",
		"restore-if-db-not-exists",
	}
	replicaKeys = []string{"name", "type", "url", "path", "sync-interval", "validation-interval", "audit-interval", "litestream-compatible"}

	// encryptionKeys are a replica's client-side encryption settings,
	// which the top level may also set, for every replica.
	encryptionKeys = []string{"encryption-key-path", "encryption-key", "encryption-old-key-paths"}

	// replicaExtraKeys are accepted and kept in Replica.Extra: the keys
	// some backend reads, and those of Litestream's that some backend
	// ignores (each backend declares its own).
	replicaExtraKeys = slices.Concat(backend.Keys(), backend.IgnoredKeys())
)

// replicaSettingKeys returns, sorted, the replica settings that may also
// be written at the top level, as defaults for every replica.
func replicaSettingKeys() []string {
	keys := slices.Concat([]string{"sync-interval", "validation-interval", "age"}, encryptionKeys, replicaExtraKeys, slices.Collect(maps.Keys(ignoredReplicaKeys)))
	slices.Sort(keys)
	return slices.Compact(keys)
}

// replicaExtraSettingKeys returns, sorted, the replica settings beyond
// replicaKeys: the backends' keys and Litestream's.
func replicaExtraSettingKeys() []string {
	return slices.DeleteFunc(replicaSettingKeys(), func(k string) bool { return slices.Contains(replicaKeys, k) })
}

// litestreamDBKeys returns, sorted, Litestream's database keys that walship
// accepts with a warning, beyond dbKeys.
func litestreamDBKeys() []string {
	keys := slices.Concat(slices.Collect(maps.Keys(ignoredDBKeys)), directoryKeys)
	keys = slices.DeleteFunc(keys, func(k string) bool { return slices.Contains(dbKeys, k) })
	slices.Sort(keys)
	return keys
}
