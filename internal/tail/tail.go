// Package tail follows the write-ahead log of one SQLite database. It holds
// the pin, a read transaction that keeps any other connection from restarting
// the log past frames the tail has not read; reads the committed frames
// exactly as SQLite does; checkpoints without losing a frame; and hands each
// capture what it must ship as a value: the pages changed since the last
// capture (Changes), or the whole database as of the log's end (View). It
// knows nothing of LTX files, TXIDs or replicas.
//
// A Tail is not safe for concurrent use: its owner serialises every call.
package tail

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	_ "modernc.org/sqlite" // pure-Go driver: keeps the binary static

	"github.com/walship/walship/internal/event"
	"github.com/walship/walship/internal/sqliteuri"
	"github.com/walship/walship/internal/wal"
)

// Options tune a Tail. The caller fills every field: there are no defaults
// here.
type Options struct {
	BusyTimeout        time.Duration
	CheckpointInterval time.Duration
	// MinCheckpointPageN is the WAL size, in pages, at which a checkpoint
	// is due.
	MinCheckpointPageN int
	// MaxCheckpointPageN is the WAL size past which a checkpoint takes
	// the write lock for a moment, so that the log restarts even while the
	// application writes without pause.
	MaxCheckpointPageN int
	// TruncatePageN is the WAL file size, in frames, past which a
	// checkpoint also truncates the file.
	TruncatePageN int
	Logger        *slog.Logger
	// Events receives each checkpoint's duration, for metrics; nil is
	// none.
	Events event.Func
}

// ErrNotPinned means the WAL cannot be read safely until EnsurePinned
// reopens the database or pins the WAL again.
var ErrNotPinned = errors.New("the database was replaced or its wal is not pinned; the next sync recovers")

// ErrRestarted means the WAL restarted while pages were being read from it:
// what was read may be stale, and the read must be done again.
var ErrRestarted = errors.New("the wal restarted while it was being read")

// Tail follows one database's WAL.
type Tail struct {
	path    string
	walPath string
	opts    Options
	log     *slog.Logger

	sqldb *sql.DB
	// The pin is held on one of pinConns and moved to the other to advance
	// it; the one without the pin checkpoints and takes the write barrier.
	// Two connections, not more: each costs the process ~100 KB.
	pinConns [2]*sql.Conn
	pinIdx   int // which of pinConns holds the pin
	pinTx    *sql.Tx
	dbFile   *os.File // the database file, read for pages not in the WAL
	walFile  *os.File // nil until the WAL exists

	pageSize   uint32              // page size of the captured state; 0 before the first capture
	walPos     wal.Position        // how far the WAL has been read: a commit boundary; zero Offset if none
	walHdr     wal.Header          // header of the generation walPos is in
	inWAL      map[uint32]int64    // this generation: page -> offset of its newest committed copy read so far
	pending    map[uint32]struct{} // pages changed since the last capture, in any generation
	commit     uint32              // database size in pages after the newest commit read
	deltaStart int64               // offset in this generation where the frames since the last capture begin
	walPages   int                 // frames in the WAL since its last restart, as last seen
	ckptTried  int                 // walPages at the last checkpoint that left the log unrestarted
	ckptPos    wal.Position        // walPos at the last checkpoint
	lastCkpt   time.Time
	// broken says why the WAL no longer shows every change since the last
	// capture (the pin was lost, the file was replaced, the page size
	// changed): the next capture must be of the whole database.
	broken string
}

// New returns a Tail of the database at path (absolute). It does no I/O
// until Open.
func New(path string, opts Options) *Tail {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Tail{
		path:    path,
		walPath: path + "-wal",
		opts:    opts,
		log:     opts.Logger,
		inWAL:   make(map[uint32]int64),
		pending: make(map[uint32]struct{}),
	}
}

// Open opens the database file, checks that it is a SQLite database,
// switches it to WAL mode if needed and pins the WAL.
func (t *Tail) Open(ctx context.Context) error {
	if err := t.open(ctx); err != nil {
		return err
	}
	if err := t.pin(ctx); err != nil {
		t.Close()
		return err
	}
	return nil
}

// open opens the database file, checks its header and opens the
// connections; on failure it leaves nothing open.
func (t *Tail) open(ctx context.Context) error {
	f, err := os.Open(t.path)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	if _, err := readDBHeader(f, t.path); err != nil {
		f.Close()
		return err
	}
	t.dbFile = f
	if err := t.openSQL(ctx); err != nil {
		t.Close()
		return err
	}
	return nil
}

// Ready releases the spare connection until the first checkpoint and starts
// the checkpoint interval. The owner calls it once the captured state is
// established.
func (t *Tail) Ready() {
	t.ReleaseSpare()
	t.lastCkpt = time.Now()
}

// Broken returns why the WAL no longer shows every change since the last
// capture, or "" if it does. While it is not "", the next capture must be of
// the whole database.
func (t *Tail) Broken() string { return t.broken }

// lose records that the WAL's continuity with the last capture was lost.
// The first reason is kept.
func (t *Tail) lose(why string) {
	if t.broken == "" {
		t.broken = why
	}
}

func (t *Tail) openSQL(ctx context.Context) error {
	dsn := sqliteuri.File(t.path, fmt.Sprintf("mode=rw&_pragma=busy_timeout(%d)", t.opts.BusyTimeout.Milliseconds()))
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("open database %s: %w", t.path, err)
	}
	t.sqldb = sqldb
	var mode string
	if err := sqldb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("database %s: %w", t.path, err)
	}
	if mode != "wal" {
		if err := sqldb.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil || mode != "wal" {
			return fmt.Errorf("database %s: cannot switch to WAL mode (journal mode is %q): %v; stop other writers or set PRAGMA journal_mode=WAL yourself", t.path, mode, err)
		}
		t.log.Info("switched the database to WAL mode")
	}
	// Connections the tail releases are closed, not pooled.
	sqldb.SetMaxIdleConns(0)
	for i := range t.pinConns {
		conn, err := t.newConn(ctx)
		if err != nil {
			return err
		}
		t.pinConns[i] = conn
	}
	return nil
}

func (t *Tail) newConn(ctx context.Context) (*sql.Conn, error) {
	conn, err := t.sqldb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", t.path, err)
	}
	// The tail never lets SQLite checkpoint on its own connections.
	if _, err := conn.ExecContext(ctx, "PRAGMA wal_autocheckpoint=0"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("database %s: %w", t.path, err)
	}
	return conn, nil
}

// Close releases the pin, the connections and the files.
func (t *Tail) Close() error {
	var errs []error
	errs = append(errs, t.unpin())
	for _, c := range []**sql.Conn{&t.pinConns[0], &t.pinConns[1]} {
		if *c != nil {
			errs = append(errs, (*c).Close())
			*c = nil
		}
	}
	if t.sqldb != nil {
		errs = append(errs, t.sqldb.Close())
		t.sqldb = nil
	}
	for _, f := range []**os.File{&t.dbFile, &t.walFile} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
	return errors.Join(errs...)
}

// Opened reports whether the database is open.
func (t *Tail) Opened() bool { return t.sqldb != nil }

// EnsurePinned makes sure the tail reads the database it was pointed at,
// under a pin. If the file was replaced, or the pin was lost (a failed
// checkpoint), the WAL may have restarted unseen, and Broken says so.
func (t *Tail) EnsurePinned(ctx context.Context) error {
	if t.dbFile == nil || t.replaced() {
		if err := t.reopen(ctx); err != nil {
			return err
		}
		t.lose("the database file was replaced")
	}
	if t.pinTx == nil {
		if err := t.pin(ctx); err != nil {
			return err
		}
		t.lose("the wal pin was lost")
	}
	return nil
}

// reopen opens the database at its path again after it was replaced.
func (t *Tail) reopen(ctx context.Context) error {
	t.Close()
	return t.open(ctx)
}

// openWAL opens the WAL file if it exists and is the one at the WAL path.
func (t *Tail) openWAL() (*os.File, error) {
	if t.walFile != nil {
		fi, err := os.Stat(t.walPath)
		if err == nil && sameFile(fi, t.walFile) {
			return t.walFile, nil
		}
		t.walFile.Close()
		t.walFile = nil
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	f, err := os.Open(t.walPath)
	if os.IsNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	t.walFile = f
	return f, nil
}

// replaced reports whether the file at the database path is no longer the
// one the tail opened (the application replaced or restored it).
func (t *Tail) replaced() bool {
	fi, err := os.Stat(t.path)
	return err != nil || !sameFile(fi, t.dbFile)
}

func sameFile(fi os.FileInfo, f *os.File) bool {
	ofi, err := f.Stat()
	return err == nil && os.SameFile(fi, ofi)
}
