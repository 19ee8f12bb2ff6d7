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
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
	TruncatePageN      int
	BusyTimeout        time.Duration
	MetaPath           string // local staging directory; default "<dir>/.<name>-walship"
	Logger             *slog.Logger
}

func (o *Options) setDefaults(dbPath string) {
	if !o.SyncIntervalSet && o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.MinCheckpointPageN <= 0 {
		o.MinCheckpointPageN = DefaultMinCheckpointPageN
	}
	if o.TruncatePageN <= 0 {
		o.TruncatePageN = DefaultTruncatePageN
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.MetaPath == "" {
		o.MetaPath = MetaPath(dbPath)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// MetaPath returns the default staging directory of the database at dbPath.
func MetaPath(dbPath string) string {
	dir, name := filepath.Split(dbPath)
	return filepath.Join(dir, "."+name+"-walship")
}

// errDiverged means the WAL no longer continues from the captured position: the
// next file must be a full copy of the database.
var errDiverged = errors.New("wal diverged from the replicated position")

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
	mu       sync.Mutex
	sqldb    *sql.DB
	pinConns [2]*sql.Conn // the pin is held on one, and moved to the other to advance it
	pinIdx   int          // which of pinConns holds the pin
	pinTx    *sql.Tx
	lockConn *sql.Conn // takes the write barrier around checkpoints
	ckptConn *sql.Conn
	dbFile   *os.File // the database file, read for pages not in the WAL
	walFile  *os.File // nil until the WAL exists
	dbIno    uint64

	pos          ltx.Pos             // newest staged file
	walPos       wal.Position        // how far the WAL has been read: a commit boundary; zero Offset if none
	walHdr       wal.Header          // header of the generation walPos is in
	inWAL        map[uint32]int64    // this generation: page -> offset of its newest committed copy read so far
	pending      map[uint32]struct{} // pages changed since pos, in any generation
	commit       uint32              // database size in pages after the newest commit read
	deltaStart   int64               // offset in this generation where the frames since pos begin
	state        *pageState          // checksums of the staged state
	walPages     int                 // frames in the WAL since its last restart, as last seen
	needFull     bool                // the next sync must write a full copy
	fullReason   string              // why needFull is set, for the log
	sums         *checksumFile       // page checksums of the staged state, for resuming with a diff
	wantSnapshot bool                // a replica needs a snapshot to continue from
	ckptPos      wal.Position        // walPos at the last checkpoint
	kickC        chan struct{}       // wakes the monitor loop

	lastCheckpoint time.Time
	notify         chan struct{} // wakes replicas when a file is staged
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
		notify:   make(chan struct{}, 1),
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
	if db.sums == nil {
		if db.sums, err = openChecksumFile(db.opts.MetaPath); err != nil {
			return err
		}
	}
	if err := db.pin(ctx); err != nil {
		return err
	}
	for _, r := range db.replicas {
		if err := r.loadPos(ctx); err != nil {
			return err
		}
	}
	hint, err := db.resolvePos(ctx)
	if err != nil {
		return err
	}
	if err := db.resume(ctx, hint); err != nil {
		return err
	}
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
	for _, c := range []**sql.Conn{&db.pinConns[0], &db.pinConns[1], &db.lockConn, &db.ckptConn} {
		conn, err := sqldb.Conn(ctx)
		if err != nil {
			return fmt.Errorf("database %s: %w", db.path, err)
		}
		*c = conn
	}
	// The engine never lets SQLite checkpoint on its own connections.
	for _, c := range []*sql.Conn{db.pinConns[0], db.pinConns[1], db.lockConn, db.ckptConn} {
		if _, err := c.ExecContext(ctx, "PRAGMA wal_autocheckpoint=0"); err != nil {
			return fmt.Errorf("database %s: %w", db.path, err)
		}
	}
	return nil
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
	tx, err := db.beginRead(ctx, db.pinConns[next])
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
	for _, c := range []**sql.Conn{&db.pinConns[0], &db.pinConns[1], &db.lockConn, &db.ckptConn} {
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

// Sync captures the transactions committed since the last sync into one staged
// LTX file and returns the new position. When nothing was committed it writes
// nothing.
func (db *DB) Sync(ctx context.Context) (ltx.Pos, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.state == nil {
		return ltx.Pos{}, errors.New("database is not open")
	}
	_, err := db.syncLocked(ctx)
	return db.pos, err
}

func (db *DB) syncLocked(ctx context.Context) (bool, error) {
	if err := db.ensurePinned(ctx); err != nil {
		return false, err
	}
	for attempt := 0; ; attempt++ {
		if db.needFull {
			return true, db.writeFull(ctx, db.fullReason)
		}
		if err := db.scanLocked(); err != nil {
			return false, err
		}
		if len(db.pending) == 0 && db.commit == db.state.commit() {
			return false, nil
		}
		err := db.writeDelta(ctx)
		if errors.Is(err, errRestarted) && attempt < 3 {
			// The log restarted while pages were read from it. The pin
			// allows that only once every frame was backfilled, so a
			// rescan reads them from the database file.
			continue
		}
		if errors.Is(err, errDiverged) || errors.Is(err, errRestarted) {
			db.setNeedFull(err.Error())
			return true, db.writeFull(ctx, db.fullReason)
		}
		return err == nil, err
	}
}

// setNeedFull makes the next sync stage a full copy of the database.
func (db *DB) setNeedFull(why string) {
	if !db.needFull {
		db.needFull, db.fullReason = true, why
	}
}

// ensurePinned makes sure the engine reads the database it was pointed at,
// under a pin. If the file was replaced, or the pin was lost (a failed
// checkpoint), the WAL may have restarted unseen, so the next file is a full
// copy.
func (db *DB) ensurePinned(ctx context.Context) error {
	if db.dbFile == nil || db.dbReplaced() {
		if err := db.reopen(ctx); err != nil {
			return err
		}
		db.setNeedFull("the database file was replaced")
	}
	if db.pinTx == nil {
		if err := db.pin(ctx); err != nil {
			return err
		}
		db.setNeedFull("the wal pin was lost")
	}
	return nil
}

// errNotPinned means the WAL cannot be read safely until the next sync
// reopens the database or pins the WAL again.
var errNotPinned = errors.New("the database was replaced or its wal is not pinned; the next sync recovers")

// errRestarted means the WAL restarted while pages were being read from it.
var errRestarted = errors.New("the wal restarted while it was being read")

// scanLocked reads the WAL's committed frames past walPos: it records the
// newest copy of each page in inWAL and the page in pending. When the log has
// restarted, it continues from the new generation's first frame: the pin
// guarantees that every frame of the old one was read and backfilled (DESIGN
// §2.1), so pending pages missing from the new generation are current in the
// database file.
func (db *DB) scanLocked() error {
	if db.dbFile == nil || db.pinTx == nil || db.dbReplaced() {
		return errNotPinned
	}
	f, err := db.openWAL()
	if err != nil || f == nil {
		return err
	}
	hdr, err := wal.ReadHeader(f)
	if errors.Is(err, wal.ErrNoHeader) {
		return nil // empty or truncated: nothing new until the next writer
	} else if err != nil {
		return fmt.Errorf("wal %s: %w", db.walPath, err)
	}
	if hdr.PageSize != db.state.pageSize {
		db.setNeedFull("the page size changed")
		return fmt.Errorf("wal %s: page size %d differs from the database's %d; a full copy follows", db.walPath, hdr.PageSize, db.state.pageSize)
	}
	from := db.walPos
	if from.Offset == 0 || !from.SameGeneration(hdr) {
		if from.Offset != 0 {
			db.log.Debug("wal restarted", "salt1", hdr.Salt1)
		}
		from = wal.Start(hdr)
		clear(db.inWAL)
		db.deltaStart = wal.HeaderSize
	}
	scan, err := wal.Read(f, hdr, from, 0)
	if err != nil {
		return fmt.Errorf("wal %s: %w", db.walPath, err)
	}
	for _, fr := range scan.Frames {
		db.inWAL[fr.Pgno] = fr.DataOffset()
		db.pending[fr.Pgno] = struct{}{}
		if fr.Commit != 0 {
			db.commit = fr.Commit
		}
	}
	db.walPos = scan.End
	db.walHdr = hdr
	db.walPages = int((scan.End.Offset - wal.HeaderSize) / hdr.FrameSize())
	return nil
}

// writeDelta stages the pending pages as the next LTX file.
func (db *DB) writeDelta(ctx context.Context) error {
	walf := db.walFile
	pr := &pageReader{db: db.dbFile, wal: walf, pageSize: db.state.pageSize, inWAL: db.inWAL}
	oldCommit, commit := db.state.commit(), db.commit
	lock := ltx.LockPgno(db.state.pageSize)

	pgnos := make([]uint32, 0, len(db.pending))
	for pgno := range db.pending {
		if pgno <= commit && pgno != lock {
			pgnos = append(pgnos, pgno)
		}
	}
	// Pages that became part of the database without a WAL copy (SQLite
	// allocates by writing, so normally none) are read from the file so the
	// delta alone defines the new state.
	for pgno := oldCommit + 1; pgno <= commit; pgno++ {
		if _, ok := db.pending[pgno]; !ok && pgno != lock {
			pgnos = append(pgnos, pgno)
		}
	}
	slices.Sort(pgnos)

	next := db.state.clone()
	next.truncate(commit)
	hdr := db.header(db.pos.TXID+1, db.pos.TXID+1, commit, db.pos.PostApplyChecksum)
	walHdr, walPos := db.walHdr, db.walPos
	if walPos.Offset != 0 {
		hdr.WALOffset, hdr.WALSize = db.deltaStart, walPos.Offset-db.deltaStart
		hdr.WALSalt1, hdr.WALSalt2 = walHdr.Salt1, walHdr.Salt2
	}

	info, err := db.stage(ctx, 0, hdr, func(enc *ltx.Encoder) error {
		buf := make([]byte, db.state.pageSize)
		h := ltx.NewHasher()
		for _, pgno := range pgnos {
			if err := pr.read(pgno, buf); err != nil {
				return err
			}
			next.set(pgno, ltx.ChecksumPageWithHasher(h, pgno, buf))
			if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, buf); err != nil {
				return err
			}
		}
		// Frames can only have been overwritten by a restart of the log,
		// which changes its salts: if they are unchanged, every page read
		// above is the committed copy.
		if walPos.Offset != 0 && walf != nil {
			if h, err := wal.ReadHeader(walf); err != nil || h.Salt1 != walHdr.Salt1 || h.Salt2 != walHdr.Salt2 {
				return errRestarted
			}
		}
		enc.SetPostApplyChecksum(next.total)
		return nil
	})
	if err != nil {
		return err
	}
	db.commitStaged(info, next)
	return nil
}

func (db *DB) header(minTXID, maxTXID ltx.TXID, commit uint32, pre ltx.Checksum) ltx.Header {
	// Deltas keep the page size of the staged state.
	return ltx.Header{
		Version:          ltx.Version,
		PageSize:         db.state.pageSize,
		Commit:           commit,
		MinTXID:          minTXID,
		MaxTXID:          maxTXID,
		Timestamp:        time.Now().UnixMilli(),
		PreApplyChecksum: pre,
	}
}

// stage encodes one LTX file into the staging directory, atomically: body
// writes the pages and sets the post-apply checksum; if it fails, nothing is
// left behind.
func (db *DB) stage(ctx context.Context, level int, hdr ltx.Header, body func(*ltx.Encoder) error) (*ltx.FileInfo, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := func() error {
			enc, err := ltx.NewEncoder(pw)
			if err != nil {
				return err
			}
			defer enc.Cleanup()
			if err := enc.EncodeHeader(hdr); err != nil {
				return err
			}
			if err := body(enc); err != nil {
				return err
			}
			return enc.Close()
		}()
		pw.CloseWithError(err)
		done <- err
	}()
	info, werr := db.staging.WriteLTXFile(ctx, level, hdr.MinTXID, hdr.MaxTXID, pr, time.UnixMilli(hdr.Timestamp))
	pr.CloseWithError(errors.New("staging write ended"))
	encErr := <-done
	if werr != nil || encErr != nil {
		// A file renamed into place before a later step failed (the
		// directory fsync, say) is not part of the history: remove it so
		// nothing uploads it, since the TXID will be written again.
		db.staging.DeleteLTXFiles(context.WithoutCancel(ctx), []*ltx.FileInfo{{Level: level, MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID}})
	}
	switch {
	case errors.Is(encErr, errDiverged), errors.Is(encErr, errRestarted):
		return nil, encErr
	case werr != nil:
		// The write's error names the staging path and the cause (a full
		// disk, say); the encoder then only saw its pipe close.
		return nil, fmt.Errorf("stage %s in %s: %w", storage.Describe(level, hdr.MinTXID, hdr.MaxTXID), db.opts.MetaPath, werr)
	case encErr != nil:
		return nil, fmt.Errorf("stage %s: %w", storage.Describe(level, hdr.MinTXID, hdr.MaxTXID), encErr)
	}
	return info, nil
}

// commitStaged makes a staged file the new position: the pending pages are in
// it, and the next delta's WAL segment starts where this one ended.
func (db *DB) commitStaged(info *ltx.FileInfo, next *pageState) {
	if err := db.sums.save(info.MaxTXID, db.state, next); err != nil {
		db.log.Warn("cannot record page checksums; a restart will need a full copy", "error", err)
	}
	db.pos = ltx.NewPos(info.MaxTXID, next.total)
	db.state = next
	db.commit = next.commit()
	clear(db.pending)
	db.deltaStart = db.walPos.Offset
	db.needFull = false
	db.writePositionFile()
	db.log.Debug("staged", "file", storage.Describe(info.Level, info.MinTXID, info.MaxTXID), "size", info.Size)
	select {
	case db.notify <- struct{}{}:
	default:
	}
	for _, r := range db.replicas {
		r.wake()
	}
}

// reopen opens the database at its path again after it was replaced.
func (db *DB) reopen(ctx context.Context) error {
	db.closeLocked()
	f, err := os.Open(db.path)
	if err != nil {
		return fmt.Errorf("reopen database: %w", err)
	}
	if _, err := readDBHeader(f, db.path); err != nil {
		f.Close()
		return err
	}
	db.dbFile, db.dbIno = f, inode(f)
	if err := db.openSQL(ctx); err != nil {
		db.closeLocked()
		return err
	}
	return nil
}

// writeFull stages a full copy of the database as the next file: a snapshot
// when the replica is empty, otherwise a level-0 file holding every page (so the
// TXID chain stays contiguous). It reads the state under the pin, so backfill
// cannot change a page under it.
func (db *DB) writeFull(ctx context.Context, why string) error {
	db.setNeedFull(why)
	if err := db.ensurePinned(ctx); err != nil {
		return err
	}
	scan, walf, err := db.readWAL(wal.Position{})
	if err != nil {
		return err
	}
	if db.pos.TXID > 0 && db.state != nil && db.state.total == db.pos.PostApplyChecksum {
		info, next, changed, err := db.stageDiff(ctx, scan, walf)
		if err == nil {
			db.afterCopy(scan)
			db.commitStaged(info, next)
			db.log.Info("staged the pages that differ from the replicated state", "reason", why, "txid", info.MaxTXID.String(), "pages", changed, "size", info.Size)
			return nil
		}
		if !errors.Is(err, errNoDiff) {
			return err
		}
	}
	if db.pos.TXID > 0 {
		db.log.Warn("writing a full copy of the database", "reason", why)
	}
	minTXID, pre := db.pos.TXID+1, db.pos.PostApplyChecksum
	if db.pos.TXID == 0 {
		minTXID, pre = 1, 0
	}
	info, next, err := db.stageCopy(ctx, 0, minTXID, db.pos.TXID+1, pre, scan, walf)
	if err != nil {
		return err
	}
	db.afterCopy(scan)
	db.commitStaged(info, next)
	db.log.Info("staged a full copy of the database", "txid", info.MaxTXID.String(), "pages", next.commit(), "size", info.Size)
	if info.MinTXID == 1 {
		return nil // it is a snapshot already
	}
	// Restores after this point start from a snapshot rather than replay the
	// chain through a full copy (whose page size may even differ).
	if err := db.stageSnapshot(ctx); err != nil {
		db.log.Warn("cannot stage a snapshot after the full copy; the next request will retry", "error", err)
		db.wantSnapshot = true
	}
	return nil
}

// afterCopy positions the WAL reader after a file that holds the whole state
// of scan.
func (db *DB) afterCopy(scan *wal.Scan) {
	clear(db.inWAL)
	db.walPos = wal.Position{}
	if scan != nil {
		db.walPos, db.walHdr = scan.End, scan.Header
		for _, f := range scan.Frames {
			db.inWAL[f.Pgno] = f.DataOffset()
		}
	}
}

// errNoDiff means the current state cannot be described as a diff from the
// staged one (the page size changed).
var errNoDiff = errors.New("no diff possible")

// stageDiff stages, as the next file, the pages in which the current state
// (after scan) differs from the staged state db.state: it compares the
// checksum of every page, then reads and encodes the pages that differ.
func (db *DB) stageDiff(ctx context.Context, scan *wal.Scan, walf *os.File) (*ltx.FileInfo, *pageState, int, error) {
	cur, err := db.computeState(scan, walf, 0)
	if err != nil {
		return nil, nil, 0, err
	}
	if cur.pageSize != db.state.pageSize {
		return nil, nil, 0, errNoDiff
	}
	lock := ltx.LockPgno(cur.pageSize)
	base := db.state
	var pgnos []uint32
	for i, c := range cur.sums {
		if pgno := uint32(i + 1); pgno != lock && (i >= len(base.sums) || base.sums[i] != c) {
			pgnos = append(pgnos, pgno)
		}
	}
	var frames []wal.Frame
	if scan != nil {
		frames = scan.Frames
	}
	pr := newPageReader(db.dbFile, walf, cur.pageSize, frames)
	next := base.clone()
	next.truncate(cur.commit())
	hdr := db.header(db.pos.TXID+1, db.pos.TXID+1, cur.commit(), db.pos.PostApplyChecksum)
	setWALFields(&hdr, scan)
	info, err := db.stage(ctx, 0, hdr, func(enc *ltx.Encoder) error {
		buf := make([]byte, cur.pageSize)
		h := ltx.NewHasher()
		for _, pgno := range pgnos {
			if err := pr.read(pgno, buf); err != nil {
				return err
			}
			c := ltx.ChecksumPageWithHasher(h, pgno, buf)
			if c != cur.sums[pgno-1] {
				return errRestarted // the page changed between the two reads
			}
			next.set(pgno, c)
			if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, buf); err != nil {
				return err
			}
		}
		if next.total != cur.total {
			return fmt.Errorf("the diff does not reproduce the database's checksum")
		}
		if scan != nil {
			if h, err := wal.ReadHeader(walf); err != nil || h.Salt1 != scan.Header.Salt1 || h.Salt2 != scan.Header.Salt2 {
				return errRestarted
			}
		}
		enc.SetPostApplyChecksum(next.total)
		return nil
	})
	if err != nil {
		return nil, nil, 0, err
	}
	return info, next, len(pgnos), nil
}

// setWALFields records in hdr which WAL frames a file holding the state after
// scan was read from.
func setWALFields(hdr *ltx.Header, scan *wal.Scan) {
	if scan != nil && len(scan.Frames) > 0 {
		hdr.WALOffset, hdr.WALSize = wal.HeaderSize, scan.End.Offset-wal.HeaderSize
		hdr.WALSalt1, hdr.WALSalt2 = scan.Header.Salt1, scan.Header.Salt2
	}
}

// snapshotLocked stages a level-9 snapshot of the current state, for a
// replica whose history the staged files no longer reach.
func (db *DB) snapshotLocked(ctx context.Context) error {
	if _, err := db.syncLocked(ctx); err != nil {
		return err
	}
	return db.stageSnapshot(ctx)
}

// stageSnapshot stages a level-9 snapshot of the state at db.pos, read from the
// WAL up to walPos and the database file, and checks it against db.pos before
// it can be uploaded.
func (db *DB) stageSnapshot(ctx context.Context) error {
	if db.pos.TXID == 0 {
		return nil
	}
	var scan *wal.Scan
	var walf *os.File
	if db.walPos.Offset != 0 {
		var err error
		if walf, err = db.openWAL(); err != nil {
			return err
		}
		// If the log restarted since walPos, the pin guarantees all of it
		// was backfilled and nothing since: the database file alone holds
		// the state at db.pos.
		if walf != nil {
			if hdr, err := wal.ReadHeader(walf); err == nil && db.walPos.SameGeneration(hdr) {
				if scan, err = wal.Read(walf, hdr, wal.Start(hdr), db.walPos.Offset); err != nil {
					return err
				}
			}
		}
	}
	info, st, err := db.stageCopy(ctx, storage.SnapshotLevel, 1, db.pos.TXID, 0, scan, walf)
	if err != nil {
		return err
	}
	if st.total != db.pos.PostApplyChecksum {
		// Never publish a snapshot that differs from the chain it stands for.
		db.staging.DeleteLTXFiles(ctx, []*ltx.FileInfo{info})
		db.setNeedFull("a snapshot did not match the staged checksum")
		return fmt.Errorf("snapshot at TXID %s does not match the staged checksum; a full copy follows", db.pos.TXID)
	}
	db.log.Info("staged a snapshot", "txid", info.MaxTXID.String(), "size", info.Size)
	for _, r := range db.replicas {
		r.wake()
	}
	return nil
}

// stageCopy stages every page of the state after the committed frames of scan
// (nil: the database file alone) as one file.
func (db *DB) stageCopy(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, pre ltx.Checksum, scan *wal.Scan, walf *os.File) (*ltx.FileInfo, *pageState, error) {
	pageSize, commit, frames, err := db.layout(scan)
	if err != nil {
		return nil, nil, err
	}
	pr := newPageReader(db.dbFile, walf, pageSize, frames)
	next := &pageState{pageSize: pageSize, sums: make([]ltx.Checksum, 0, commit)}
	hdr := ltx.Header{
		Version:          ltx.Version,
		PageSize:         pageSize,
		Commit:           commit,
		MinTXID:          minTXID,
		MaxTXID:          maxTXID,
		Timestamp:        time.Now().UnixMilli(),
		PreApplyChecksum: pre,
	}
	setWALFields(&hdr, scan)
	lock := ltx.LockPgno(pageSize)
	info, err := db.stage(ctx, level, hdr, func(enc *ltx.Encoder) error {
		buf := make([]byte, pageSize)
		h := ltx.NewHasher()
		for pgno := uint32(1); pgno <= commit; pgno++ {
			if pgno == lock {
				next.set(pgno, 0)
				continue
			}
			if err := pr.read(pgno, buf); err != nil {
				return err
			}
			next.set(pgno, ltx.ChecksumPageWithHasher(h, pgno, buf))
			if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, buf); err != nil {
				return err
			}
		}
		if scan != nil {
			if h, err := wal.ReadHeader(walf); err != nil || h.Salt1 != scan.Header.Salt1 || h.Salt2 != scan.Header.Salt2 {
				return errors.New("the wal restarted while the database was being copied; will retry")
			}
		}
		enc.SetPostApplyChecksum(next.total)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return info, next, nil
}

// layout returns the page size, the database size in pages and the committed
// WAL frames of the current state.
func (db *DB) layout(scan *wal.Scan) (pageSize, commit uint32, frames []wal.Frame, err error) {
	hdr, err := readDBHeader(db.dbFile, db.path)
	if err != nil {
		return 0, 0, nil, err
	}
	pageSize = hdr.pageSize
	if scan != nil && len(scan.Frames) > 0 {
		if scan.Header.PageSize != pageSize {
			// The WAL wins: SQLite reads page 1 from it.
			pageSize = scan.Header.PageSize
		}
		return pageSize, scan.Commit, scan.Frames, nil
	}
	commit, err = dbPageCount(db.dbFile, hdr)
	return pageSize, commit, nil, err
}

// computeState computes the page checksums of the state after the committed
// frames of scan up to offset end (the whole scan if end is 0).
func (db *DB) computeState(scan *wal.Scan, walf *os.File, end int64) (*pageState, error) {
	var frames []wal.Frame
	var commit uint32
	hdr, err := readDBHeader(db.dbFile, db.path)
	if err != nil {
		return nil, err
	}
	pageSize := hdr.pageSize
	if scan != nil {
		for _, f := range scan.Frames {
			if end != 0 && f.Offset >= end {
				break
			}
			frames = append(frames, f)
			if f.Commit != 0 {
				commit = f.Commit
			}
		}
		if len(frames) > 0 {
			pageSize = scan.Header.PageSize
		}
	}
	if len(frames) == 0 {
		if commit, err = dbPageCount(db.dbFile, hdr); err != nil {
			return nil, err
		}
	}
	pr := newPageReader(db.dbFile, walf, pageSize, frames)
	st := &pageState{pageSize: pageSize, sums: make([]ltx.Checksum, 0, commit)}
	buf := make([]byte, pageSize)
	h := ltx.NewHasher()
	lock := ltx.LockPgno(pageSize)
	for pgno := uint32(1); pgno <= commit; pgno++ {
		if pgno == lock {
			st.set(pgno, 0)
			continue
		}
		if err := pr.read(pgno, buf); err != nil {
			return nil, err
		}
		st.set(pgno, ltx.ChecksumPageWithHasher(h, pgno, buf))
	}
	return st, nil
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
