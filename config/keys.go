package config

import (
	"slices"

	"github.com/walship/walship/storage/backend"
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
	replicaKeys = []string{"name", "type", "url", "path", "sync-interval", "validation-interval", "audit-interval", "litestream-compatible"}

	// reservedTopKeys are accepted and ignored (reported in Config.Unused).
	reservedTopKeys = []string{"addr", "mcp-addr"}
	// reservedReplicaKeys are Litestream's replica keys that walship
	// accepts, keeps in Replica.Extra, and does not act on yet.
	reservedReplicaKeys = []string{"retention", "retention-check-interval"}
	// replicaExtraKeys are accepted and kept in Replica.Extra: the keys
	// some backend reads (each backend declares its own), and the
	// reserved ones.
	replicaExtraKeys = slices.Concat(backend.Keys(), reservedReplicaKeys)
)
