package walship

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Dir is a directory whose SQLite databases, those with a name matching
// Pattern, a Store replicates (Litestream's directory replication): the
// ones there when it starts, and those created while it runs, which it
// learns of from file notifications within moments (or from a poll every
// DirPoll where the file system sends none). A database whose file is
// removed is stopped cleanly (one replaced by another file is handled by
// the engine, as for any database: a new copy is staged). A file that
// matches but is not a SQLite database is skipped, with one warning; an
// empty one (a database being created) is waited for.
type Dir struct {
	Path      string // absolute
	Pattern   string // shell pattern of the databases' file names, e.g. "*.db"
	Recursive bool   // subdirectories too
	// New returns the DB of a database found at path, which the Store
	// runs (config.DB.ForDatabase and FromConfig make it from the
	// directory's entry). An error is logged and the database skipped
	// until it changes.
	New func(ctx context.Context, path string) (*DB, error)
	Log *slog.Logger

	// walkDir is filepath.WalkDir; a test makes a directory unreadable
	// with it (root reads every directory).
	walkDir func(root string, fn fs.WalkDirFunc) error

	once    sync.Once
	scanned chan struct{}      // closed after the first scan
	rescan  chan chan struct{} // a scan asked for (ScanDirs), closed once done
	stopped chan struct{}      // closed when run returns
	wake    chan struct{}      // a Remove returned: scan again
	rmu     sync.Mutex
	// removing: databases whose file vanished, being stopped: not added
	// again until their Remove returned.
	removing map[string]bool
}

// init makes the channels a Dir is asked and tells with.
func (d *Dir) init() {
	d.once.Do(func() {
		d.scanned = make(chan struct{})
		d.rescan = make(chan chan struct{})
		d.stopped = make(chan struct{})
		d.wake = make(chan struct{}, 1)
		d.removing = map[string]bool{}
	})
}

// scannedOnce reports whether the directory was scanned once: its
// databases then are known to the store.
func (d *Dir) scannedOnce() bool {
	d.init()
	select {
	case <-d.scanned:
		return true
	default:
		return false
	}
}

// scanNow asks run for a scan and waits until it is done.
func (d *Dir) scanNow(ctx context.Context) error {
	d.init()
	done := make(chan struct{})
	select {
	case d.rescan <- done:
	case <-d.stopped:
		return errors.New("the directory is not watched any more")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-d.stopped:
		return errors.New("the directory is not watched any more")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// isRemoving reports whether the database at p is being removed.
func (d *Dir) isRemoving(p string) bool {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	return d.removing[p]
}

// DirPoll is how often a directory is scanned without notifications.
var DirPoll = 10 * time.Second

// dirScanGap is the least time between two scans of a directory: its
// databases' WALs are in it, and every write to one is an event.
const dirScanGap = 200 * time.Millisecond

// sqliteHeader begins every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// dirAdder is what a directory needs of the Store.
type dirAdder interface {
	Add(ctx context.Context, db *DB) error
	Remove(ctx context.Context, path string) error
	// holds reports whether the store has a database at path, running
	// or not: one listed with path: (or registered) is that entry's.
	holds(path string) bool
	// spawn runs f in a goroutine the store waits for.
	spawn(f func())
}

// run scans the directory, adding to the store the databases that appear
// and removing those that vanish, until ctx ends.
func (d *Dir) run(ctx context.Context, s dirAdder, w *Watcher) {
	d.init()
	defer close(d.stopped)
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("dir", d.Path, "pattern", d.Pattern)
	dirs := map[string]func(){} // watched directories: their unsubscribe
	events := make(chan struct{}, 1)
	defer func() {
		for _, stop := range dirs {
			stop()
		}
	}()
	mine := map[string]bool{}          // the databases added
	warned := map[string]bool{}        // not SQLite: warned once
	failed := map[string]os.FileInfo{} // could not start: retried once changed
	poll := time.NewTicker(DirPoll)
	defer poll.Stop()
	log.Info("replicating the databases of a directory", "recursive", d.Recursive)
	var asked []chan struct{} // scans asked for (ScanDirs), done by the next
	for first := true; ; first = false {
		seen := d.scan(ctx, log, s, mine, warned, failed)
		d.watchDirs(log, w, seen, dirs, events)
		for _, done := range asked {
			close(done)
		}
		asked = nil
		if first {
			close(d.scanned)
		}
		select {
		case <-ctx.Done():
			d.lastLook(log, mine)
			return
		case <-events:
		case <-poll.C:
		case <-d.wake:
		case done := <-d.rescan:
			asked = append(asked, done)
			continue
		}
		select {
		case <-ctx.Done():
			d.lastLook(log, mine)
			return
		case <-time.After(dirScanGap):
		case done := <-d.rescan:
			asked = append(asked, done)
		}
	}
}

// watchDirs subscribes to the directories scanned (the top one, and its
// subdirectories when recursive), forwarding their events to events, and
// unsubscribes from those that vanished.
func (d *Dir) watchDirs(log *slog.Logger, w *Watcher, seen map[string]bool, dirs map[string]func(), events chan struct{}) {
	for dir, stop := range dirs {
		if !seen[dir] {
			stop()
			delete(dirs, dir)
		}
	}
	for dir := range seen {
		if _, ok := dirs[dir]; ok {
			continue
		}
		c, stop, err := w.SubscribeDir(dir, observeDelay)
		if err != nil {
			log.Warn("cannot watch the directory for new databases; scanning it every "+DirPoll.String(), "path", dir, "error", err)
			dirs[dir] = func() {}
			continue
		}
		done := make(chan struct{})
		go func() {
			for {
				select {
				case <-done:
					return
				case <-c:
					select {
					case events <- struct{}{}:
					default:
					}
				}
			}
		}()
		dirs[dir] = func() { stop(); close(done) }
	}
}

// scan adds the databases of the directory the store does not run yet and
// removes those gone, and returns the directories it read. mine holds the
// databases it added, warned the files it warned are not databases,
// failed those it could not start, as they were then.
func (d *Dir) scan(ctx context.Context, log *slog.Logger, s dirAdder, mine map[string]bool, warned map[string]bool, failed map[string]os.FileInfo) map[string]bool {
	seen, present, unreadable, err := d.walk()
	for p, err := range unreadable {
		if !warned[p] {
			log.Warn("cannot read a path under the directory; the databases there go on replicating, and walship looks again at the next scan", "path", p, "error", err)
			warned[p] = true
		}
	}
	if err != nil {
		if ctx.Err() == nil && !warned[d.Path] {
			log.Warn("cannot read the directory; replicating the databases already found, and looking again every "+DirPoll.String(), "error", err)
			warned[d.Path] = true
		}
		return seen
	}
	if warned[d.Path] {
		log.Info("the directory can be read again")
		delete(warned, d.Path)
	}
	for _, p := range removed(mine, present, unreadable) {
		log.Info("database removed from the directory; stopping its replication", "db", p)
		// Stopping flushes its replicas, for up to the flush timeout:
		// in its own goroutine, so that the scan goes on finding new
		// databases meanwhile.
		d.rmu.Lock()
		d.removing[p] = true
		d.rmu.Unlock()
		s.spawn(func() {
			if err := s.Remove(ctx, p); err != nil && ctx.Err() == nil && !errors.Is(err, ErrUnknownDB) {
				log.Warn("cannot stop the replication of a removed database", "db", p, "error", err)
			}
			d.rmu.Lock()
			delete(d.removing, p)
			d.rmu.Unlock()
			d.poke() // the file may be back
		})
		delete(mine, p)
	}
	for p := range warned {
		if _, ok := unreadable[p]; ok {
			continue
		}
		if _, ok := present[p]; ok || p == d.Path {
			continue
		}
		if seen[p] {
			log.Info("the subdirectory can be read again", "path", p)
		}
		delete(warned, p)
	}
	for p := range failed {
		if _, ok := present[p]; !ok {
			delete(failed, p)
		}
	}
	for p, fi := range present {
		if _, ok := mine[p]; ok || ctx.Err() != nil || d.isRemoving(p) {
			continue // a file back before its Remove returned: the next scan
		}
		switch kind := sqliteKind(p); {
		case kind == notYet:
			continue // being created: its first write is an event
		case kind == notSQLite:
			if !warned[p] {
				log.Warn("skipping a file that matches the pattern but is not a SQLite database", "path", p)
				warned[p] = true
			}
			continue
		}
		if f, ok := failed[p]; ok && f.ModTime().Equal(fi.ModTime()) && f.Size() == fi.Size() {
			continue // tried as it is: try again once it changes
		}
		if s.holds(p) {
			// Listed with path: (or registered), or matched by another
			// dir: entry first: that entry's settings and replicas
			// apply, and building a DB here would open clients for
			// nothing at every change of the file.
			if !warned[p] {
				log.Warn("skipping a database of the directory that another entry replicates already", "db", p)
				warned[p] = true
			}
			continue
		}
		db, err := d.New(ctx, p)
		if err == nil {
			db.inDir, db.scanDir = d.Path, d.poke
			if err = s.Add(ctx, db); err != nil {
				// Not the store's: its replica clients are this scan's.
				if cerr := db.closeClients(); cerr != nil {
					log.Warn("cannot close a replica client", "db", p, "error", cerr)
				}
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				log.Error("cannot replicate a database of the directory; the others go on", "db", p, "error", err)
				failed[p] = fi
			}
			continue
		}
		delete(warned, p)
		delete(failed, p)
		mine[p] = true
	}
	return seen
}

// removed returns the databases of mine that a walk (present, unreadable)
// found gone. One replaced by another file is not: it is the engine's to
// handle, as for a database of the config (a new copy is staged); nor is
// one under a path that could not be read: not seen, not known to be gone.
func removed(mine map[string]bool, present map[string]os.FileInfo, unreadable map[string]error) []string {
	var out []string
	for p := range mine {
		if _, ok := present[p]; !ok && !under(p, unreadable) {
			out = append(out, p)
		}
	}
	return out
}

// lastLook, as the store stops, says once which of the databases added
// were deleted since the last scan: they stop with the others, and this
// is the one line that says why they captured nothing more (their engine
// leaves it to the directory: goneFromDir).
func (d *Dir) lastLook(log *slog.Logger, mine map[string]bool) {
	_, present, unreadable, err := d.walk()
	if err != nil {
		return // said at the scan that failed: nothing is known gone
	}
	for _, p := range removed(mine, present, unreadable) {
		log.Info("database removed from the directory; stopping its replication", "db", p)
		delete(mine, p)
	}
}

// poke asks run for a scan now (after the least gap between two): a
// database's engine found its file gone.
func (d *Dir) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// goneFromDir reports whether db is a directory's database whose file
// was deleted. Its engine then reports nothing as a failure: the
// directory's scan takes the deletion for a removal and stops the
// database with one line, or, when the store stops first, says so in its
// last look (lastLook). A database listed by hand has no such owner: a
// deleted file is its failure.
func (db *DB) goneFromDir() bool {
	if db.inDir == "" || db.scanDir == nil {
		return false
	}
	_, err := os.Stat(db.path)
	return errors.Is(err, fs.ErrNotExist)
}

// walk returns the directories under the directory it read, the files
// there whose names match, as they are now, and what could not be read
// (a subdirectory, or a file's details) with why: EMFILE with many
// tenants, EACCES. The databases under those were not seen, which does
// not mean they are gone.
func (d *Dir) walk() (map[string]bool, map[string]os.FileInfo, map[string]error, error) {
	seen := map[string]bool{}
	present := map[string]os.FileInfo{}
	unreadable := map[string]error{}
	walk := d.walkDir
	if walk == nil {
		walk = filepath.WalkDir
	}
	err := walk(d.Path, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == d.Path {
				return err
			}
			if !errors.Is(err, fs.ErrNotExist) { // else vanished while walked
				unreadable[p] = err
			}
			return nil
		}
		if e.IsDir() {
			if p != d.Path && (!d.Recursive || strings.HasSuffix(e.Name(), "-walship")) {
				return fs.SkipDir // a staging directory holds no database
			}
			seen[p] = true
			return nil
		}
		if !d.matches(e.Name()) || !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		switch {
		case err == nil:
			present[p] = fi
		case !errors.Is(err, fs.ErrNotExist):
			unreadable[p] = err
		}
		return nil
	})
	return seen, present, unreadable, err
}

// Databases returns the paths of the SQLite databases in the directory
// now, sorted: for the commands that read replicas without running
// (status, verify). Files being created, and those that are not SQLite,
// are left out.
func (d *Dir) Databases() ([]string, error) {
	_, present, _, err := d.walk()
	if err != nil {
		return nil, err
	}
	var out []string
	for p := range present {
		if sqliteKind(p) == isSQLite {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}

// under reports whether p is one of dirs, or under one of them.
func under(p string, dirs map[string]error) bool {
	for dir := range dirs {
		if p == dir || strings.HasPrefix(p, dir+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// matches reports whether a file name is one of a database the directory
// replicates: its pattern, and none of SQLite's files beside a database.
func (d *Dir) matches(name string) bool {
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if strings.HasSuffix(name, suffix) {
			return false
		}
	}
	ok, _ := filepath.Match(d.Pattern, name)
	return ok
}

type fileKind int

const (
	isSQLite fileKind = iota
	notYet            // empty, or shorter than a header: being created
	notSQLite
)

// sqliteKind reads the start of the file at p.
func sqliteKind(p string) fileKind {
	f, err := os.Open(p)
	if err != nil {
		return notYet // vanished, or unreadable for now: the next scan sees
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	n, err := io.ReadFull(f, head)
	switch {
	case !bytes.HasPrefix(sqliteHeader, head[:n]):
		return notSQLite
	case err != nil:
		return notYet
	}
	return isSQLite
}
