package walship

import (
	"log/slog"
	"path/filepath"
	"time"

	"github.com/walship/walship/storage"
)

// Defaults for Options.
const (
	DefaultSyncInterval       = time.Second
	DefaultCheckpointInterval = time.Minute
	DefaultMinCheckpointPageN = 1000
	DefaultMaxCheckpointPageN = 10000  // ~40 MB of 4 KiB pages
	DefaultTruncatePageN      = 121359 // ~500 MB of 4 KiB pages
	DefaultBusyTimeout        = time.Second
)

// Defaults for snapshots, retention and local staging.
const (
	DefaultSnapshotInterval         = 24 * time.Hour
	DefaultSnapshotRetention        = 24 * time.Hour
	DefaultL0Retention              = 5 * time.Minute
	DefaultL0RetentionCheckInterval = 15 * time.Second
	DefaultMaxLocalBytes            = 1 << 30
)

// DefaultLevels are the compaction intervals of levels 1 to 3.
var DefaultLevels = []time.Duration{30 * time.Second, 5 * time.Minute, time.Hour}

// Options tune one database's replication. The zero value of each field means
// its default, except SyncInterval, whose zero means "as soon as a commit is
// seen" when SyncIntervalSet is true.
type Options struct {
	SyncInterval       time.Duration
	SyncIntervalSet    bool
	CheckpointInterval time.Duration
	MinCheckpointPageN int
	// MaxCheckpointPageN is the WAL size, in pages, past which a checkpoint
	// takes the write lock for a moment so that the log can restart even
	// while the application writes without pause. Below it checkpoints
	// never block the application.
	MaxCheckpointPageN int
	TruncatePageN      int
	BusyTimeout        time.Duration
	MetaPath           string // local staging directory; default "<dir>/.<name>-walship"
	Logger             *slog.Logger
	// Watcher reports file changes; databases of one process should share
	// one (Store.Run does). Nil gives the database a watcher of its own.
	Watcher *Watcher
	// Opening limits how many databases of a process open (and stage
	// their first state, a whole snapshot for a new replica) at once; nil
	// is no limit. Store.Run sets one.
	Opening chan struct{}

	// Levels are the compaction intervals of levels 1, 2, ...: each level
	// merges the newer files of the level below this often. Nil means
	// DefaultLevels; an empty, non-nil slice means no compaction.
	Levels []time.Duration
	// SnapshotInterval is how often a snapshot is taken (if anything
	// changed); SnapshotRetention how far back restore points are kept.
	SnapshotInterval  time.Duration
	SnapshotRetention time.Duration
	// L0Retention is how long level-0 files stay once a higher level covers
	// them; retention runs every L0RetentionCheckInterval.
	L0Retention              time.Duration
	L0RetentionCheckInterval time.Duration
	// RetentionDisabled leaves deleting old files to the storage's own
	// lifecycle rules.
	RetentionDisabled bool
	// MaxLocalBytes caps the staging directory while a replica is
	// unreachable: past it the staged history is dropped and the replica
	// gets a snapshot when it is back.
	MaxLocalBytes int64
	// Takeover lets the database take over replicas that another database
	// owns (it moved to this server on purpose). Its history then starts
	// apart from the old one, at the next multiple of 2^32 TXIDs, with a
	// snapshot; the old history stays restorable.
	Takeover bool
	// LeaseTTL, when not zero, makes the database's primary role a lease
	// at its replica's path (internal/lease): acquired at Open (which
	// fails when another node holds it), renewed every third of it, and
	// when it cannot be renewed in time the replica is written no more.
	// It needs exactly one replica, on a store with atomic conditional
	// writes.
	LeaseTTL time.Duration
	// StopsApplication says, in the lease record, that this node's
	// application runs under walship (replicate -exec), which stops it
	// when the lease is lost or handed over: a switchover then loses no
	// commit. Without it, the application may go on writing its own copy.
	StopsApplication bool
	// RoleChanged, when set, is called once this node loses the lease
	// (DB.Halted then wraps lease.ErrLost) and once a handover is
	// requested (DB.HandoverRequested then reports it), after the state
	// says so: a caller that acts on the role waits for it instead of
	// polling every database. It must not block.
	RoleChanged func()
	// Progress, when set, is told how far a whole copy of the database
	// (the first snapshot of a replica, or the copy after a break in the
	// WAL's history) has been staged: bytes of pages written, of total.
	// It is called while the database's capture lock is held, so it must
	// return quickly and not call the DB.
	Progress func(done, total int64)

	// Events receives what the engine does (syncs, checkpoints, uploads
	// and their durations, failed uploads, retention, verifications), for
	// metrics. It is called inline and must not block; nil is none.
	Events func(Event)
}

func (o *Options) setDefaults(dbPath string) {
	if !o.SyncIntervalSet {
		orDefault(&o.SyncInterval, DefaultSyncInterval)
	}
	orDefault(&o.CheckpointInterval, DefaultCheckpointInterval)
	orDefault(&o.MinCheckpointPageN, DefaultMinCheckpointPageN)
	orDefault(&o.MaxCheckpointPageN, max(DefaultMaxCheckpointPageN, o.MinCheckpointPageN))
	orDefault(&o.TruncatePageN, DefaultTruncatePageN)
	orDefault(&o.BusyTimeout, DefaultBusyTimeout)
	orDefault(&o.SnapshotInterval, DefaultSnapshotInterval)
	orDefault(&o.SnapshotRetention, DefaultSnapshotRetention)
	orDefault(&o.L0Retention, DefaultL0Retention)
	orDefault(&o.L0RetentionCheckInterval, DefaultL0RetentionCheckInterval)
	orDefault(&o.MaxLocalBytes, DefaultMaxLocalBytes)
	if o.MetaPath == "" {
		o.MetaPath = MetaPath(dbPath)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Levels == nil {
		o.Levels = DefaultLevels
	}
	if len(o.Levels) > storage.SnapshotLevel-1 {
		o.Levels = o.Levels[:storage.SnapshotLevel-1]
	}
}

// orDefault sets *v to def unless it is positive.
func orDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// MetaPath returns the default staging directory of the database at dbPath.
func MetaPath(dbPath string) string {
	dir, name := filepath.Split(dbPath)
	return filepath.Join(dir, "."+name+"-walship")
}
