// Package walship replicates live SQLite databases. It tails each database's
// write-ahead log, turns every sync's committed transactions into one LTX file
// with exact pre- and post-apply checksums, stages it durably beside the
// database, and ships it to one or more replicas. See DESIGN.md for the
// invariants this package keeps.
package walship

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/superfly/ltx"
	_ "modernc.org/sqlite" // pure-Go driver: keeps the binary static

	"github.com/walship/walship/internal/sqliteuri"
	"github.com/walship/walship/internal/wal"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
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
}

// DefaultLevels are the compaction intervals of levels 1 to 3.
var DefaultLevels = []time.Duration{30 * time.Second, 5 * time.Minute, time.Hour}

// Defaults for snapshots, retention and local staging.
const (
	DefaultSnapshotInterval         = 24 * time.Hour
	DefaultSnapshotRetention        = 24 * time.Hour
	DefaultL0Retention              = 5 * time.Minute
	DefaultL0RetentionCheckInterval = 15 * time.Second
	DefaultMaxLocalBytes            = 1 << 30
)

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

// DB replicates one SQLite database.
type DB struct {
	path    string
	walPath string
	opts    Options
	log     *slog.Logger
	staging *file.Client

	replicas []*Replica
	oneShot  bool // RunOnce: fail instead of waiting for an unreachable replica

	// mu serialises capture (sync, checkpoint, snapshot) and guards the fields
	// below.
	mu    sync.Mutex
	sqldb *sql.DB
	// The pin is held on one of pinConns and moved to the other to advance
	// it; the one without the pin checkpoints and takes the write barrier.
	// Two connections, not more: each costs the process ~100 KB.
	pinConns [2]*sql.Conn
	pinIdx   int // which of pinConns holds the pin
	pinTx    *sql.Tx
	dbFile   *os.File // the database file, read for pages not in the WAL
	walFile  *os.File // nil until the WAL exists
	dbIno    uint64

	pos        ltx.Pos             // newest staged file
	walPos     wal.Position        // how far the WAL has been read: a commit boundary; zero Offset if none
	walHdr     wal.Header          // header of the generation walPos is in
	inWAL      map[uint32]int64    // this generation: page -> offset of its newest committed copy read so far
	pending    map[uint32]struct{} // pages changed since pos, in any generation
	commit     uint32              // database size in pages after the newest commit read
	deltaStart int64               // offset in this generation where the frames since pos begin
	state      *pageState          // checksums of the staged state
	walPages   int                 // frames in the WAL since its last restart, as last seen
	ckptTried  int                 // walPages at the last checkpoint that left the log unrestarted
	needFull   bool                // the next sync must write a full copy
	fullReason string              // why needFull is set, for the log
	sums       *checksumFile       // page checksums of the staged state, for resuming with a diff

	lastSnapshot ltx.TXID      // newest staged or replicated snapshot
	wantSnapshot bool          // a replica needs a snapshot to continue from
	ckptPos      wal.Position  // walPos at the last checkpoint
	kickC        chan struct{} // wakes the monitor loop

	// cmu guards compaction state: compaction runs beside syncs. Lock
	// order: mu before cmu.
	cmu       sync.Mutex
	compacted [storage.MaxLevel + 1]ltx.TXID // newest TXID merged into each level

	lastCheckpoint time.Time
}

// NewDB returns a DB for the database at path, replicating to replicas. It does
// no I/O until Open.
func NewDB(path string, opts Options, replicas ...*Replica) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("database path %q: %w", path, err)
	}
	opts.setDefaults(abs)
	db := &DB{
		path:     abs,
		walPath:  abs + "-wal",
		opts:     opts,
		log:      opts.Logger.With("db", abs),
		staging:  file.New(opts.MetaPath),
		replicas: replicas,
		kickC:    make(chan struct{}, 1),
		inWAL:    make(map[uint32]int64),
		pending:  make(map[uint32]struct{}),
	}
	for _, r := range replicas {
		r.db = db
		r.log = db.log.With("replica", r.Name)
	}
	return db, nil
}

// Path returns the database's absolute path.
func (db *DB) Path() string { return db.path }

// Replicas returns the database's replicas.
func (db *DB) Replicas() []*Replica { return db.replicas }

// Pos returns the position of the newest staged file.
func (db *DB) Pos() ltx.Pos {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.pos
}

// WaitExists blocks until the database file exists and is not empty, logging
// once that it is waiting.
func (db *DB) WaitExists(ctx context.Context, poll time.Duration) error {
	logged := false
	for {
		fi, err := os.Stat(db.path)
		if err == nil && fi.Size() > 0 {
			return nil
		}
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("database %s: %w", db.path, err)
		}
		if !logged {
			db.log.Info("waiting for the database to be created")
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// Open checks the database, switches it to WAL mode if needed, pins the WAL,
// learns every replica's position and brings the staged state up to date with
// the database. The database file must exist.
func (db *DB) Open(ctx context.Context) (err error) {
	db.mu.Lock()
	defer db.mu.Unlock()

	f, err := os.Open(db.path)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	hdr, err := readDBHeader(f, db.path)
	if err != nil {
		f.Close()
		return err
	}
	db.dbFile = f
	db.dbIno = inode(f)
	defer func() {
		if err != nil {
			db.closeLocked()
		}
	}()
	_ = hdr

	if err := db.openSQL(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(db.opts.MetaPath, 0o755); err != nil {
		return fmt.Errorf("create staging directory %s: %w", db.opts.MetaPath, err)
	}
	if err := db.staging.RemoveTempFiles(); err != nil {
		return fmt.Errorf("clean staging directory: %w", err)
	}
	// Page indexes that LTX encoders spilled, and merged uploads, left by
	// a crash.
	for _, pattern := range []string{".ltx-page-index-*.tmp", mergeTempPattern} {
		left, _ := filepath.Glob(filepath.Join(db.opts.MetaPath, pattern))
		for _, p := range left {
			os.Remove(p)
		}
	}
	if db.sums == nil {
		if db.sums, err = openChecksumFile(db.opts.MetaPath); err != nil {
			return err
		}
	}
	if err := db.pin(ctx); err != nil {
		return err
	}
	if err := db.loadReplicaPositions(ctx); err != nil {
		return err
	}
	hint, err := db.resolvePos(ctx)
	if err != nil {
		return err
	}
	if err := db.initCompacted(ctx); err != nil {
		return err
	}
	if err := db.resume(ctx, hint); err != nil {
		return err
	}
	db.releaseSpare() // until the first checkpoint
	db.lastCheckpoint = time.Now()
	return nil
}

func (db *DB) openSQL(ctx context.Context) error {
	dsn := sqliteuri.File(db.path, fmt.Sprintf("mode=rw&_pragma=busy_timeout(%d)", db.opts.BusyTimeout.Milliseconds()))
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("open database %s: %w", db.path, err)
	}
	db.sqldb = sqldb
	var mode string
	if err := sqldb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("database %s: %w", db.path, err)
	}
	if mode != "wal" {
		if err := sqldb.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil || mode != "wal" {
			return fmt.Errorf("database %s: cannot switch to WAL mode (journal mode is %q): %v; stop other writers or set PRAGMA journal_mode=WAL yourself", db.path, mode, err)
		}
		db.log.Info("switched the database to WAL mode")
	}
	// Connections the engine releases are closed, not pooled.
	sqldb.SetMaxIdleConns(0)
	for i := range db.pinConns {
		conn, err := db.newConn(ctx)
		if err != nil {
			return err
		}
		db.pinConns[i] = conn
	}
	return nil
}

func (db *DB) newConn(ctx context.Context) (*sql.Conn, error) {
	conn, err := db.sqldb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", db.path, err)
	}
	// The engine never lets SQLite checkpoint on its own connections.
	if _, err := conn.ExecContext(ctx, "PRAGMA wal_autocheckpoint=0"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("database %s: %w", db.path, err)
	}
	return conn, nil
}

// pin starts the read transaction that stops any other connection from
// restarting the WAL past frames the engine has not read.
func (db *DB) pin(ctx context.Context) error {
	tx, err := db.beginRead(ctx, db.pinConns[db.pinIdx])
	if err != nil {
		return fmt.Errorf("pin wal: %w", err)
	}
	db.pinTx = tx
	return nil
}

func (db *DB) beginRead(ctx context.Context, conn *sql.Conn) (*sql.Tx, error) {
	// database/sql rolls a transaction back when its context ends; the pin
	// must outlive the call that took it.
	tx, err := conn.BeginTx(context.WithoutCancel(ctx), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(1) FROM sqlite_master").Scan(&n); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// advancePin moves the pin to the WAL's current end without the write lock,
// so that checkpoints may backfill further. The new read transaction starts
// while the old one still holds the log; the engine reads the log to its end
// before letting the old one go. If the new one reads the database file only
// (everything was backfilled), SQLite may then restart the log once, and every
// frame before that restart has been read.
func (db *DB) advancePin(ctx context.Context) error {
	if db.pinTx == nil {
		return errNotPinned
	}
	next := 1 - db.pinIdx
	conn, err := db.spare(ctx)
	if err != nil {
		return fmt.Errorf("advance wal pin: %w", err)
	}
	tx, err := db.beginRead(ctx, conn)
	if err != nil {
		return fmt.Errorf("advance wal pin: %w", err)
	}
	if err := db.scanLocked(); err != nil {
		tx.Rollback()
		return err
	}
	old := db.pinTx
	db.pinTx, db.pinIdx = tx, next
	if err := old.Rollback(); err != nil {
		return fmt.Errorf("advance wal pin: %w", err)
	}
	return nil
}

// spare returns the connection that does not hold the pin, opening it again
// if it was released.
func (db *DB) spare(ctx context.Context) (*sql.Conn, error) {
	i := 1 - db.pinIdx
	if db.pinConns[i] == nil {
		conn, err := db.newConn(ctx)
		if err != nil {
			return nil, err
		}
		db.pinConns[i] = conn
	}
	return db.pinConns[i], nil
}

// releaseSpare closes the connection that does not hold the pin: a quiet
// database needs it once a checkpoint interval, and it holds ~60 KB of
// SQLite's memory, which a thousand databases in one process notice.
func (db *DB) releaseSpare() {
	i := 1 - db.pinIdx
	if c := db.pinConns[i]; c != nil {
		c.Close()
		db.pinConns[i] = nil
	}
}

func (db *DB) unpin() error {
	if db.pinTx == nil {
		return nil
	}
	err := db.pinTx.Rollback()
	db.pinTx = nil
	return err
}

// Close syncs what has been committed, releases the database and stops.
func (db *DB) Close(ctx context.Context) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	var err error
	if db.sqldb != nil && db.state != nil {
		_, err = db.syncLocked(ctx)
	}
	err = errors.Join(err, db.closeLocked())
	if db.sums != nil {
		err = errors.Join(err, db.sums.Close())
		db.sums = nil
	}
	return err
}

func (db *DB) closeLocked() error {
	var errs []error
	errs = append(errs, db.unpin())
	for _, c := range []**sql.Conn{&db.pinConns[0], &db.pinConns[1]} {
		if *c != nil {
			errs = append(errs, (*c).Close())
			*c = nil
		}
	}
	if db.sqldb != nil {
		errs = append(errs, db.sqldb.Close())
		db.sqldb = nil
	}

	for _, f := range []**os.File{&db.dbFile, &db.walFile} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
	return errors.Join(errs...)
}

// openWAL opens the WAL file if it exists and is the one at the WAL path.
func (db *DB) openWAL() (*os.File, error) {
	if db.walFile != nil {
		fi, err := os.Stat(db.walPath)
		if err == nil && sameFile(fi, db.walFile) {
			return db.walFile, nil
		}
		db.walFile.Close()
		db.walFile = nil
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	f, err := os.Open(db.walPath)
	if os.IsNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	db.walFile = f
	return f, nil
}

// readWAL returns the current WAL header and its committed frames from from
// (or from the start of the generation when from is in another generation).
// A missing or empty WAL returns a nil scan.
func (db *DB) readWAL(from wal.Position) (*wal.Scan, *os.File, error) {
	f, err := db.openWAL()
	if err != nil || f == nil {
		return nil, nil, err
	}
	hdr, err := wal.ReadHeader(f)
	if errors.Is(err, wal.ErrNoHeader) {
		return nil, f, nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("wal %s: %w", db.walPath, err)
	}
	if from.Offset == 0 || !from.SameGeneration(hdr) {
		from = wal.Start(hdr)
	}
	scan, err := wal.Read(f, hdr, from, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("wal %s: %w", db.walPath, err)
	}
	return scan, f, nil
}

// dbReplaced reports whether the file at the database path is no longer the one
// the engine opened (the application replaced or restored it).
func (db *DB) dbReplaced() bool {
	fi, err := os.Stat(db.path)
	return err != nil || !sameFile(fi, db.dbFile)
}

func inode(f *os.File) uint64 {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

func sameFile(fi os.FileInfo, f *os.File) bool {
	ofi, err := f.Stat()
	return err == nil && os.SameFile(fi, ofi)
}
