package walship

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/walship/walship/config"
)

// Store runs the replication of several databases in one process. Its
// databases can change while it runs: Add and Remove add and remove one,
// Pause and Resume stop and restart one's replication, and each of its
// directories (Dirs) adds and removes the databases that appear and
// vanish in it. One database that fails is stopped and reported (its
// DBStatus says why) and the others go on.
type Store struct {
	// DBs are the databases Run starts with. Once Run started, read the
	// databases with Databases: DBs is not updated.
	DBs []*DB
	// Dirs are directories whose matching databases are replicated, each
	// found one as Dir.New makes it.
	Dirs []*Dir
	// Prepare, when set, is called with each database before it starts,
	// whether listed in DBs, added or found in a directory: where the
	// command line sets what a database of its own gets (a monitor's
	// events, say). It must not call the Store.
	Prepare func(*DB)
	// Entry, when set, builds the DB of a database entry given while the
	// store runs (walship register), with the config file's top-level
	// settings and its replicas' clients opened, as FromConfig builds
	// those of DBs (FromConfig sets it; EntryFunc makes one). The caller
	// Adds the DB.
	Entry func(ctx context.Context, c *config.DB) (*DB, error)
	// KeepRunning makes Run go on until its context ends even when no
	// database is left to replicate: where something (a control socket)
	// may Add one later.
	KeepRunning bool

	mu      sync.Mutex
	members map[string]*member // by database path; nil until Run
	order   []string           // paths in the order they were added, for listings
	ctx     context.Context    // Run's
	flush   time.Duration
	watcher *Watcher
	opening chan struct{}
	wg      sync.WaitGroup
	changed chan struct{} // a database stopped: Run checks whether any is left
	closed  bool          // Run is returning: nothing more starts
}

// member is one database of a running Store.
type member struct {
	db     *DB
	cancel context.CancelFunc // stops db's Run
	done   chan struct{}      // closed when db's Run returned
	err    error              // why db's Run failed, once done
	paused bool
	// stopping: Remove or Pause stopped it; an error of its last
	// capture is not a failure of the store.
	stopping bool
}

// Errors of the Store's runtime operations, for callers (a control
// socket) to tell apart.
var (
	ErrUnknownDB  = errors.New("no such database in this process")
	ErrDuplicate  = errors.New("database is already replicated by this process")
	ErrNotRunning = errors.New("the replicator is not running")
	// ErrPaused: Pause of a database paused already.
	ErrPaused = errors.New("database is paused already")
	// ErrReplicating: Resume of a database that replicates.
	ErrReplicating = errors.New("database is replicating already")
)

// Run replicates every database until ctx ends, then captures each one's
// last commits and gives the replicas up to flushTimeout to receive them.
// A database that cannot be replicated (not a SQLite database, deleted,
// refused by its replica) is stopped and reported without stopping the
// others. Run also returns, before ctx ends, when no database is left to
// replicate and no directory is watched, unless KeepRunning. The error
// joins the failures of the databases that stopped on one. A Store runs
// once.
func (s *Store) Run(ctx context.Context, flushTimeout time.Duration) error {
	s.mu.Lock()
	if s.members != nil {
		s.mu.Unlock()
		return errors.New("the store is running, or ran already: a Store runs once")
	}
	s.members = map[string]*member{}
	s.ctx, s.flush = ctx, flushTimeout
	s.opening = make(chan struct{}, 4*runtime.NumCPU())
	s.changed = make(chan struct{}, 1)
	s.watcher = NewWatcher(s.logger())
	var errs []error
	for _, db := range s.DBs {
		if err := s.startLocked(db); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Unlock()
	for _, d := range s.Dirs {
		s.wg.Go(func() { d.run(ctx, s, s.watcher) })
	}
	for ctx.Err() == nil && (s.KeepRunning || len(s.Dirs) > 0 || s.alive()) {
		select {
		case <-ctx.Done():
		case <-s.changed:
		}
	}
	s.mu.Lock()
	s.closed = true // nothing starts once Run waits for what runs
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.order {
		if m := s.members[p]; m.err != nil && !m.stopping {
			errs = append(errs, fmt.Errorf("%s: %w", p, m.err))
		}
	}
	return errors.Join(errs...)
}

// logger returns the logger of the first database or directory, for the
// shared watcher's messages.
func (s *Store) logger() *slog.Logger {
	if len(s.DBs) > 0 {
		return s.DBs[0].opts.Logger
	}
	if len(s.Dirs) > 0 && s.Dirs[0].Log != nil {
		return s.Dirs[0].Log
	}
	return slog.Default()
}

// alive reports whether a database is running or paused (and so may run
// again).
func (s *Store) alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.members {
		if m.paused || m.done == nil {
			return true
		}
		select {
		case <-m.done:
		default:
			return true
		}
	}
	return false
}

// startLocked starts replicating db; s.mu is held.
func (s *Store) startLocked(db *DB) error {
	if s.closed || s.ctx.Err() != nil {
		return fmt.Errorf("%s: %w", db.path, ErrNotRunning)
	}
	if m, ok := s.members[db.path]; ok && !m.paused && !m.finished() {
		return fmt.Errorf("%s: %w; remove it first, or choose another path", db.path, ErrDuplicate)
	}
	if db.opts.Opening == nil {
		db.opts.Opening = s.opening
	}
	if db.opts.Watcher == nil {
		db.opts.Watcher = s.watcher
	}
	if s.Prepare != nil {
		s.Prepare(db)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	m := &member{db: db, cancel: cancel, done: make(chan struct{})}
	if _, ok := s.members[db.path]; !ok {
		s.order = append(s.order, db.path)
	}
	s.members[db.path] = m
	s.wg.Go(func() {
		defer s.signal() // after done is closed: Run then sees it finished
		defer close(m.done)
		err := db.Run(ctx, s.flush)
		if err != nil && ctx.Err() != nil && db.goneFromDir() {
			// Its last capture found the file deleted: the directory
			// says it was removed (at its scan, or its last look as
			// the store stops), once; nothing was lost that was not
			// deleted, so this is not the database's failure.
			db.log.Debug("the database file was deleted from its directory; nothing left to capture", "error", err)
			err = nil
		}
		s.mu.Lock()
		asked := m.stopping
		m.err = err
		s.mu.Unlock()
		switch {
		case err == nil:
		case asked:
			// Removed or paused: what could not be captured (a file
			// deleted with its WAL) is said, not an alarm.
			db.log.Warn("replication stopped as asked, with an error", "error", err)
		default:
			db.failing.set(err)
			db.log.Error("replication of this database stopped; the other databases go on", "error", err)
		}
	})
	return nil
}

func (m *member) finished() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

func (s *Store) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Add starts replicating db alongside the store's other databases, exactly
// as one it started with; the store then owns db's replica clients, and
// closes them when it removes db or is closed. It fails if the store is
// not running or already replicates a database at db's path; a database
// that stopped on a failure is replaced.
func (s *Store) Add(ctx context.Context, db *DB) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members == nil {
		return fmt.Errorf("add %s: %w", db.path, ErrNotRunning)
	}
	old, ok := s.members[db.path]
	if ok && old.paused {
		return fmt.Errorf("%s: %w (paused); resume it, or remove it first", db.path, ErrDuplicate)
	}
	if err := s.startLocked(db); err != nil {
		return err
	}
	if ok {
		// A database stopped on a failure, replaced: its clients are no
		// one's now (a DB Resume made would share them, but it runs, so
		// it was not replaced).
		if err := old.db.closeClients(); err != nil {
			old.db.log.Warn("cannot close a replica client of the replaced database", "error", err)
		}
	}
	return nil
}

// Remove stops replicating the database at path: its last commits are
// captured and the replicas get up to the flush timeout to receive them,
// then the store forgets it. The database file is left alone. When ctx
// ends first, Remove returns ctx's error and the database still stops.
func (s *Store) Remove(ctx context.Context, path string) error {
	for {
		m, err := s.stop(ctx, path, false)
		if err != nil {
			return err
		}
		s.mu.Lock()
		if s.members[m.db.path] != m {
			// Resumed (a new DB over the same clients) or replaced while
			// it stopped: that one runs now; stop it too, and leave the
			// clients it uses open until then.
			s.mu.Unlock()
			continue
		}
		delete(s.members, m.db.path)
		s.order = slices.DeleteFunc(s.order, func(p string) bool { return p == m.db.path })
		s.mu.Unlock()
		s.signal()
		// The store owns the clients of its databases (Close releases them).
		if err := m.db.closeClients(); err != nil {
			m.db.log.Warn("cannot close a replica client of the removed database", "error", err)
		}
		return nil
	}
}

// holds reports whether the store has a database at path (absolute),
// running, paused or stopped.
func (s *Store) holds(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.members[path]
	return ok
}

// spawn runs f in a goroutine Run waits for before it returns; called
// from a goroutine Run waits for already (a directory's).
func (s *Store) spawn(f func()) { s.wg.Go(f) }

// ScanDirs has each directory of the running store scanned once more,
// now, and returns once those scans are done: the databases created in
// them until now are added (replicate -exec calls it when the
// application exited, so that a database it created just before is
// opened and its commits captured). A directory whose scanning stopped
// (the store stops) is an error, as is ctx ending first.
func (s *Store) ScanDirs(ctx context.Context) error {
	for _, d := range s.Dirs {
		if err := d.scanNow(ctx); err != nil {
			return fmt.Errorf("scan the directory %s for new databases: %w", d.Path, err)
		}
	}
	return nil
}

// Pause stops replicating the database at path, as Remove does, but keeps
// it in the store (its status says paused) until Resume. The application
// goes on using the database; Resume captures what it committed meanwhile.
func (s *Store) Pause(ctx context.Context, path string) error {
	_, err := s.stop(ctx, path, true)
	return err
}

// stop cancels the Run of the database at path and waits for it to
// return; paused marks it paused.
func (s *Store) stop(ctx context.Context, path string, paused bool) (*member, error) {
	s.mu.Lock()
	m, err := s.memberLocked(path)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if paused && m.paused {
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", m.db.path, ErrPaused)
	}
	if paused {
		m.paused = true
	}
	m.stopping = true
	m.cancel()
	s.mu.Unlock()
	select {
	case <-m.done:
		return m, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s is still capturing its last changes and flushing its replicas; it stops on its own: %w", m.db.path, ctx.Err())
	}
}

// Resume restarts the replication of a paused database at path, or of
// one that stopped on a failure (once its cause is fixed). Nothing is
// skipped: what was committed while it did not run is captured from the
// WAL, or, if the WAL was checkpointed meanwhile, by a snapshot.
func (s *Store) Resume(ctx context.Context, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.memberLocked(path)
	if err != nil {
		return err
	}
	if !m.finished() {
		return fmt.Errorf("%s: %w", m.db.path, ErrReplicating)
	}
	if s.closed || s.ctx.Err() != nil {
		return fmt.Errorf("resume %s: %w", m.db.path, ErrNotRunning)
	}
	db, err := m.db.renew()
	if err != nil {
		return err
	}
	// The finished member stays until startLocked replaces it, so the
	// path keeps its one place in s.order (a delete here listed it twice).
	return s.startLocked(db)
}

// memberLocked returns the member of path; s.mu is held.
func (s *Store) memberLocked(path string) (*member, error) {
	if s.members == nil {
		return nil, fmt.Errorf("%s: %w", path, ErrNotRunning)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("database path %q: %w", path, err)
	}
	m, ok := s.members[abs]
	if !ok {
		return nil, fmt.Errorf("%s: %w; `walship list` shows the databases it replicates", abs, ErrUnknownDB)
	}
	return m, nil
}

// Databases returns the store's databases: before Run, DBs; while it
// runs, every database added, found or paused, in the order they came.
func (s *Store) Databases() []*DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members == nil {
		return slices.Clone(s.DBs)
	}
	out := make([]*DB, 0, len(s.order))
	for _, p := range s.order {
		out = append(out, s.members[p].db)
	}
	return out
}

// paused reports whether the database at path is paused.
func (s *Store) paused(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.members[path]
	return ok && m.paused
}

// renew returns a DB like db, not yet run, for the same database and
// replica clients: a DB runs once.
func (db *DB) renew() (*DB, error) {
	reps := make([]*Replica, len(db.replicas))
	for i, r := range db.replicas {
		cp := *r
		cp.up = nil
		reps[i] = &cp
	}
	opts := db.opts
	n, err := NewDB(db.path, opts, reps...)
	if err != nil {
		return nil, err
	}
	n.inDir, n.scanDir = db.inDir, db.scanDir
	return n, nil
}
