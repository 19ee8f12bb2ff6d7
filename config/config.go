// Package config loads walship's YAML configuration: the SQLite databases
// to replicate, the replicas each one ships its WAL to, and how walship logs.
// Key names follow Litestream 0.5, so a litestream.yml can be used as is:
// every key Litestream 0.5 reads is either implemented with the same
// meaning or accepted with a [Warning] that says it has no effect in
// walship and what walship does instead.
//
// A minimal file:
//
//	logging:
//	  level: info
//	dbs:
//	  - path: /var/lib/app/app.db
//	    sync-interval: 1s
//	    replica:
//	      url: file:///backups/app
//
// A fuller one, with the top-level settings that apply to every database:
//
//	levels:                 # compaction levels 1, 2, 3 (at most 8)
//	  - interval: 30s
//	  - interval: 5m
//	  - interval: 1h
//	snapshot:
//	  interval: 24h
//	  retention: 168h
//	l0-retention: 5m
//	l0-retention-check-interval: 15s
//	retention:
//	  enabled: true
//	max-local-bytes: 1GiB   # walship only
//	dbs:
//	  - path: /var/lib/app/app.db
//	    max-local-bytes: 512MB
//	    replica:
//	      url: file:///backups/app
//
// # Locating the file
//
// [Path] picks the file: an explicit path (the -config flag), else the
// WALSHIP_CONFIG environment variable, else [DefaultPath] if it exists,
// else Litestream's LITESTREAM_CONFIG, else [DefaultPath]. Litestream's own
// default, /etc/litestream.yml, is only mentioned in the error that says
// no config file was found.
//
// # Environment variables
//
// Unless disabled, $VAR and ${VAR} references anywhere in the raw text,
// comments included, are replaced with the variable's value before the YAML
// is parsed, as Litestream does ([os.Expand] semantics: an unset variable
// becomes the empty string, and a literal "$" cannot be escaped; $PID is
// the process ID, as in Litestream). Pass
// expandEnv=false to [Load] or [Parse] when values such as passwords contain
// "$". A value containing a newline shifts the line numbers reported in
// later errors.
//
// # Paths
//
// A database's path and meta-path beginning with "~/" (or equal to "~") are
// expanded to the current user's home directory, and relative ones are made
// absolute relative to the current working directory of the process — not
// the directory holding the configuration file. A "sqlite://" or
// "sqlite3://" prefix is dropped, as Litestream drops it. A replica's path
// is kept exactly as written; the caller interprets it.
//
// # Unset versus zero
//
// Optional settings are pointers that are nil when the key is absent (or
// null), so the caller applies its own default. A zero duration is valid and
// is kept as a non-nil pointer to 0: "sync-interval: 0" means "ship as soon
// as a commit is seen", which differs from leaving it out (default 1s).
// Durations are Go duration strings ("500ms", "1s", "24h"); a bare 0 is also
// accepted. Some durations cannot be 0: the interval of each level,
// snapshot.interval, snapshot.retention and l0-retention-check-interval
// must be greater than 0.
//
// # Sizes
//
// "max-local-bytes" is a number of bytes, either a plain integer
// (1073741824) or a whole number followed by a unit, in any letter case and
// optionally separated by spaces: B, KB, MB, GB and TB are powers of 1000
// ("512MB" is 512000000 bytes), KiB, MiB, GiB and TiB powers of 1024
// ("1GiB" is 1073741824 bytes). Fractions ("1.5GB") are not accepted.
//
// # Validation and errors
//
// The document is walked as a [yaml.Node] tree so every problem is reported
// with the file name, the line and the full key, for example:
//
//	/etc/walship.yml:7: dbs[0].sync-interval: invalid duration "fast" (use a Go duration such as 1s or 500ms)
//
// Unknown keys are errors at every level, so a misspelt key is never
// silently ignored. Litestream's keys are never errors: those walship does
// not act on, and keys written where they do not apply (a backend's key on
// a replica of another kind, a top-level replica setting no replica takes),
// are listed in [Config.Warnings], each once, with its file, line and key.
// All problems found in a file are reported together, one per line,
// ordered by line. Values of keys whose names contain "secret",
// "password", "key" or "token" are never echoed in messages or warnings.
//
// # Replica settings at the top level
//
// As in Litestream, any replica setting but name, type, url and path may
// also be written at the top level (region:, endpoint:, sync-interval:,
// access-key-id:, ...): it applies to every replica that does not set its
// own and whose backend reads it, and is copied into those replicas.
//
// YAML anchors, aliases and merge keys ("<<: *defaults") are supported;
// duplicate keys within one mapping and multiple YAML documents in one file
// are errors.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/walship/walship/storage/backend"
	"github.com/walship/walship/storage/crypt"
)

// Default values applied by [Load] and [Parse] to [Logging].
const (
	DefaultLogLevel = "info"
	DefaultLogType  = "text"
)

// Config is a parsed and validated configuration file.
type Config struct {
	DBs []*DB `yaml:"dbs"`
	// Dirs are the entries of "dbs" that name a directory of databases
	// (dir:) rather than one: [DB.Dir] is set, [DB.Path] is not. Use
	// [Config.Database] to find the entry of a database found in one.
	Dirs    []*DB   `yaml:"-"`
	Logging Logging `yaml:"logging"`

	// Levels is "levels", the compaction levels 1, 2, ... in file order;
	// nil when unset (caller's default: 30s, 5m, 1h). When set it holds 1
	// to 8 levels (level 9 holds snapshots), each with an interval greater
	// than 0 and greater than the interval of the level before it.
	Levels []Level `yaml:"levels"`
	// Snapshot is "snapshot".
	Snapshot Snapshot `yaml:"snapshot"`
	// L0Retention is "l0-retention", how long level-0 files are kept after
	// they have been compacted; nil when unset. Zero is valid.
	L0Retention *time.Duration `yaml:"l0-retention"`
	// L0RetentionCheckInterval is "l0-retention-check-interval", how often
	// expired level-0 files are looked for; nil when unset, else greater
	// than 0.
	L0RetentionCheckInterval *time.Duration `yaml:"l0-retention-check-interval"`
	// Retention is "retention".
	Retention Retention `yaml:"retention"`
	// MaxLocalBytes is "max-local-bytes" (a walship key, not Litestream's),
	// in bytes; nil when unset, else greater than 0. It applies to every
	// database that does not set its own [DB.MaxLocalBytes]. The file gives
	// it as a size (see "Sizes" in the package documentation).
	MaxLocalBytes *int64 `yaml:"max-local-bytes"`

	// ShutdownSyncTimeout is "shutdown-sync-timeout", how long `walship
	// replicate` keeps uploading what was captured after it is told to
	// stop; nil when unset (caller's default: 10s). Zero is valid: stop
	// without waiting (what is not uploaded ships at the next start).
	ShutdownSyncTimeout *time.Duration `yaml:"shutdown-sync-timeout"`

	// Addr is "addr", HOST:PORT where `walship replicate` serves
	// Prometheus metrics, /healthz and /status; empty when unset (nothing
	// listens). Without a host (":9090") it listens on loopback only.
	Addr string `yaml:"addr"`
	// HealthMaxLag is "health-max-lag" (a walship key): the replica lag
	// at and past which /healthz answers 503; nil when unset (caller's
	// default: 1m), else greater than 0.
	HealthMaxLag *time.Duration `yaml:"health-max-lag"`
	// HeartbeatURL is "heartbeat-url": a URL that receives a GET after
	// each heartbeat-interval in which every replica stayed in sync; empty
	// when unset. It may hold a secret: it is never echoed.
	HeartbeatURL string `yaml:"heartbeat-url"`
	// HeartbeatInterval is "heartbeat-interval"; nil when unset (caller's
	// default: 5m, Litestream's), else greater than 0.
	HeartbeatInterval *time.Duration `yaml:"heartbeat-interval"`
	// Socket is "socket", the control socket of `walship replicate`
	// (walship sync, list and info talk to it).
	Socket Socket `yaml:"socket"`

	// Exec is "exec": the command line of the application `walship
	// replicate` starts once every database replicates, and whose exit
	// ends replication (split into words as a shell does, without
	// expanding anything, as Litestream splits it); empty when unset.
	Exec string `yaml:"exec"`

	// AccessKeyID and SecretAccessKey are "access-key-id" and
	// "secret-access-key": S3 credentials for every replica that does not
	// set its own. Like every replica setting written at the top level,
	// they are already copied into the replicas whose backend reads them
	// (see [Replica.Extra]).
	AccessKeyID     string `yaml:"access-key-id"`
	SecretAccessKey string `yaml:"secret-access-key"`

	// Warnings lists, ordered by line, the settings of the file that have
	// no effect in walship: Litestream's keys that walship accepts so that
	// a litestream.yml runs, and keys that do not apply where they are
	// written. The caller shows them to the operator. They never hold a
	// secret value.
	Warnings []Warning `yaml:"-"`
}

// Level is one entry of the top-level "levels" list: a compaction level.
// The first entry is level 1.
type Level struct {
	// Interval is "interval" (required, greater than 0): how often the
	// level's files are compacted.
	Interval time.Duration `yaml:"interval"`
	// Line is the 1-based line of the entry in the file, for messages.
	Line int `yaml:"-"`
}

// Snapshot is the top-level "snapshot" mapping. Both settings are nil when
// unset and greater than 0 when set; Retention may be shorter than
// Interval.
type Snapshot struct {
	// Interval is "interval": how often a full snapshot is taken.
	Interval *time.Duration `yaml:"interval"`
	// Retention is "retention": how long snapshots, and the files needed to
	// restore from them, are kept.
	Retention *time.Duration `yaml:"retention"`
}

// Retention is the top-level "retention" mapping.
type Retention struct {
	// Enabled is "enabled"; nil when unset (caller's default: true). False
	// keeps every file on the replicas, leaving removal to the storage
	// (for example a bucket lifecycle rule).
	Enabled *bool `yaml:"enabled"`
}

// Logging configures walship's own log output.
type Logging struct {
	// Level is one of "debug", "info", "warn" or "error"; default "info".
	// The file may use any letter case and "warning" for "warn"; Level
	// always holds the normalized form.
	Level string `yaml:"level"`
	// Type is "text" or "json"; default "text" (normalized to lower case;
	// Litestream's "pretty" is read as "text").
	Type string `yaml:"type"`
	// Stderr is "stderr": true sends logs to standard error, false to
	// standard output, as in Litestream; nil when unset (walship's default
	// is standard error).
	Stderr *bool `yaml:"stderr"`
	// Source is "source": true adds the source file and line of each log
	// record; nil when unset.
	Source *bool `yaml:"source"`
}

// DB is one entry of the top-level "dbs" list: a database to replicate.
type DB struct {
	// Path is the database file ("path", required); "~/" is expanded and
	// the result is absolute and cleaned.
	Path string `yaml:"path"`
	// MetaPath is "meta-path", expanded and made absolute like Path; empty
	// when unset. For a directory entry, each database's staging
	// directory is derived from it (see [DB.ForDatabase]).
	MetaPath string `yaml:"meta-path"`

	// Dir is "dir", the directory whose databases the entry replicates
	// (Litestream's directory replication), expanded and made absolute
	// like Path; empty for an entry of one database. Pattern ("pattern",
	// required with dir) is the shell pattern their file names match,
	// Recursive ("recursive") whether subdirectories are searched too, and
	// MetaDir ("meta-dir") the directory under which each one's staging
	// directory is kept, at its path relative to Dir.
	Dir       string `yaml:"dir"`
	Pattern   string `yaml:"pattern"`
	Recursive bool   `yaml:"recursive"`
	MetaDir   string `yaml:"meta-dir"`

	// LeaseTTL is "lease-ttl" (walship only): the database's primary role
	// is a lease at its replica's path with this time to live, renewed a
	// third of it apart, for a standby to take over (see internal/lease);
	// nil when unset: no lease.
	LeaseTTL *time.Duration `yaml:"lease-ttl"`
	// SyncInterval is "sync-interval"; nil when unset (engine default 1s).
	// Zero is valid and means "as soon as a commit is seen".
	SyncInterval *time.Duration `yaml:"sync-interval"`
	// CheckpointInterval is "checkpoint-interval".
	CheckpointInterval *time.Duration `yaml:"checkpoint-interval"`
	// MinCheckpointPageN is "min-checkpoint-page-count".
	MinCheckpointPageN *int `yaml:"min-checkpoint-page-count"`
	// MaxCheckpointPageN is "max-checkpoint-page-count" (walship's own key).
	MaxCheckpointPageN *int `yaml:"max-checkpoint-page-count"`
	// TruncatePageN is "truncate-page-n".
	TruncatePageN *int `yaml:"truncate-page-n"`
	// BusyTimeout is "busy-timeout".
	BusyTimeout *time.Duration `yaml:"busy-timeout"`
	// MonitorInterval is "monitor-interval".
	MonitorInterval *time.Duration `yaml:"monitor-interval"`
	// MaxLocalBytes is "max-local-bytes", in bytes, greater than 0; nil
	// when unset, in which case [Config.MaxLocalBytes] applies.
	MaxLocalBytes *int64 `yaml:"max-local-bytes"`
	// RestoreIfDBNotExists is "restore-if-db-not-exists": `walship
	// replicate` restores the database from its replicas (the first that
	// holds a backup) before replicating it, when the file does not
	// exist. Litestream has it per database only, and so does walship.
	RestoreIfDBNotExists bool `yaml:"restore-if-db-not-exists"`

	// Replica is the single-replica form "replica"; a file may use it or
	// Replicas, not both. Use [DB.AllReplicas] to get either.
	Replica *Replica `yaml:"replica"`
	// Replicas is the list form "replicas".
	Replicas []*Replica `yaml:"replicas"`

	// Line is the 1-based line of the entry in the file, for messages.
	Line int `yaml:"-"`
}

// AllReplicas returns Replica (if set) followed by Replicas.
func (db *DB) AllReplicas() []*Replica {
	var out []*Replica
	if db.Replica != nil {
		out = append(out, db.Replica)
	}
	return append(out, db.Replicas...)
}

// Replica is a destination a database's changes are shipped to. Exactly one
// of URL and Path is set.
type Replica struct {
	// Name is "name"; optional, but unique within a DB when given.
	Name string `yaml:"name"`
	// Type is "type" as written ("file", later "s3", "gs", "abs", "sftp",
	// "webdav", "nats"); empty when unset. Checking it, and deriving it from
	// URL or Path when empty, is the caller's job.
	Type string `yaml:"type"`
	// URL is "url", e.g. "file:///backups/app".
	URL string `yaml:"url"`
	// Path is "path", kept exactly as written.
	Path string `yaml:"path"`
	// SyncInterval is "sync-interval"; nil when unset.
	SyncInterval *time.Duration `yaml:"sync-interval"`
	// ValidationInterval is "validation-interval" (Litestream's key): how
	// often the replicator verifies the whole replica; 0 is never (as
	// unset, walship's default); nil when unset.
	ValidationInterval *time.Duration `yaml:"validation-interval"`
	// AuditInterval is "audit-interval": how often the replicator lists
	// the replica to find files deleted behind its back; 0 is never; nil
	// when unset.
	AuditInterval *time.Duration `yaml:"audit-interval"`
	// LitestreamCompatible is "litestream-compatible": the replica's files
	// are written in the form Litestream 0.5 restores; nil when unset.
	LitestreamCompatible *bool `yaml:"litestream-compatible"`

	// EncryptionKeyPath is "encryption-key-path": the file holding the key
	// that encrypts the replica's files before they leave the machine; ""
	// when unset.
	EncryptionKeyPath string `yaml:"encryption-key-path"`
	// EncryptionKey is "encryption-key": that key itself, written as 64
	// hexadecimal characters (usually "${VAR}"); nil when unset. It never
	// prints.
	EncryptionKey *crypt.Key `yaml:"-"`
	// EncryptionOldKeyPaths is "encryption-old-key-paths": files holding
	// the keys older files of the replica were encrypted with, before a
	// key rotation; they are read, never written, with them.
	EncryptionOldKeyPaths []string `yaml:"encryption-old-key-paths"`

	// Extra holds the replica's backend options: the keys some backend
	// declares (backend.Keys: access-key-id, region, endpoint, bucket,
	// key-path, host-key, ...), written on the replica or, for those its
	// backend reads, at the top level; and Litestream's keys that some
	// backend ignores (backend.IgnoredKeys). Keyed by key name, with the
	// scalar value as written ("true", "5MB", ...); a list (root-cas) is
	// joined with commas. Nil when the replica has none.
	Extra map[string]string `yaml:"-"`

	// Line is the 1-based line of the replica in the file, for messages.
	Line int `yaml:"-"`
}

// Backend returns the replica's type: its type key (lower case), else the
// scheme of its URL, else "file" (a path).
func (r *Replica) Backend() string {
	if r.Type != "" {
		return strings.ToLower(r.Type)
	}
	if s := backend.Scheme(r.URL); s != "" {
		return s
	}
	return "file"
}

// destination names where the replica writes, in one form for every way
// of writing it (url:, or type:, path: and keys): its backend, host or
// bucket, path without stray slashes, and endpoint. Empty when the replica
// is not valid, which is reported elsewhere.
func (r *Replica) destination() string {
	var u *url.URL
	switch {
	case r.URL != "":
		parsed, b, err := backend.Parse(r.URL)
		if err != nil {
			return ""
		}
		u = parsed
		u.Scheme = b.Type()
	case r.Path == "":
		return ""
	default:
		if u = r.keysURL(); u == nil {
			return ""
		}
	}
	endpoint := u.Query().Get("endpoint")
	if e := r.Extra["endpoint"]; e != "" {
		endpoint = e
	}
	// The user is part of where: an Azure storage account, an SFTP login
	// that a server may root in a directory of its own.
	user := ""
	if u.User != nil {
		user = u.User.Username() + "@"
	}
	return u.Scheme + "://" + user + strings.ToLower(u.Host) + "/" + strings.Trim(path.Clean("/"+u.Path), "/") + " " + endpoint
}

// keysURL returns the destination of a replica written without url:, as
// its backend makes it of its type:, path: and keys (bucket:, host:,
// webdav-url:, ...), with the backend's type as scheme; nil when they make
// none.
func (r *Replica) keysURL() *url.URL {
	if r.Backend() == "file" || r.Type == "" {
		if r.Path == "" {
			return nil
		}
		abs, err := filepath.Abs(r.Path)
		if err != nil {
			return nil
		}
		return &url.URL{Scheme: "file", Path: abs}
	}
	b, ok := backend.Lookup(r.Backend())
	if !ok || b.FromKeys == nil {
		return nil
	}
	u, _, err := b.FromKeys(r.Path, r.Extra)
	if err != nil {
		return nil
	}
	if u.Scheme == "" || !slices.Contains(b.Schemes, u.Scheme) {
		u.Scheme = b.Type()
	}
	return u
}

// DestinationURL returns where the replica writes, as a URL: its url:, or
// the one its backend makes of its type:, path: and keys; "" when they make
// none (a mistake reported when the replica is opened). It may hold
// credentials: redact it (backend.Redact) before showing it.
func (r *Replica) DestinationURL() string {
	if r.URL != "" {
		return r.URL
	}
	if u := r.keysURL(); u != nil {
		return u.String()
	}
	return ""
}

// DisplayName returns the replica's name key, else its type. Two replicas
// of a database may share it; DB.ReplicaNames tells them apart.
func (r *Replica) DisplayName() string {
	if r.Name != "" {
		return r.Name
	}
	return r.Backend()
}

// ReplicaNames returns the names of the database's replicas, in
// AllReplicas' order, each one distinct: a replica's name key, else its
// type, and for a second replica without a name whose type is taken,
// "TYPE#2" (then #3, ...). These are the names walship logs, verifies,
// schedules and exports metrics by, and what -replica selects.
func (db *DB) ReplicaNames() []string {
	replicas := db.AllReplicas()
	taken := map[string]bool{}
	for _, r := range replicas {
		if r != nil && r.Name != "" {
			taken[r.Name] = true
		}
	}
	names := make([]string, len(replicas))
	for i, r := range replicas {
		if r == nil {
			continue
		}
		if r.Name != "" {
			names[i] = r.Name
			continue
		}
		name := r.Backend()
		for n := 2; taken[name]; n++ {
			name = fmt.Sprintf("%s#%d", r.Backend(), n)
		}
		taken[name] = true
		names[i] = name
	}
	return names
}

// expand replaces $VAR and ${VAR} with the environment's values, and $PID
// and ${PID} with the process ID, as Litestream does.
func expand(s string) string {
	return os.Expand(s, func(name string) string {
		if name == "PID" {
			return strconv.Itoa(os.Getpid())
		}
		return os.Getenv(name)
	})
}

// Load reads and validates the configuration file at path. Environment
// variables ($VAR, ${VAR}) are expanded in the raw text before parsing
// unless expandEnv is false; see the package documentation.
//
// If the file does not exist the error wraps [fs.ErrNotExist] and tells the
// operator how to point walship at another file.
func Load(path string, expandEnv bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("config file %s not found (use -config PATH or set %s to point at another file%s): %w",
				path, PathEnv, LitestreamHint(path), fs.ErrNotExist)
		}
		return nil, fmt.Errorf("cannot read config file %s: %w", path, err)
	}
	return Parse(path, data, expandEnv)
}

// Parse is [Load] on bytes already read; name (normally the file's path) is
// used in error messages.
func Parse(name string, data []byte, expandEnv bool) (*Config, error) {
	if expandEnv {
		data = []byte(expand(string(data)))
	}
	p := &parser{name: name}
	cfg := p.parse(data)
	if err := p.err(); err != nil {
		return nil, err
	}
	cfg.Warnings = p.sortedWarnings()
	return cfg, nil
}
