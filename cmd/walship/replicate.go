package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
	"github.com/walship/walship/internal/child"
	"github.com/walship/walship/internal/lease"
	"github.com/walship/walship/internal/sqlitemem"
	"github.com/walship/walship/storage/backend"
)

// flushTimeout is how long replicate waits, after a signal, for the replicas
// to receive what was captured, unless the config file sets
// shutdown-sync-timeout.
const flushTimeout = 10 * time.Second

const replicateDescription = `
Replicates SQLite databases until interrupted (SIGINT or SIGTERM): every
committed transaction is captured from the write-ahead log and shipped to the
replicas as LTX files.

With DB_PATH and REPLICA_URL, replicates that one database. REPLICA_URL is
{urls} or a directory path; the settings and credentials these need beyond
the URL come from the environment (see the README) or a config file. Without
arguments, replicates every database of the config file.

On a signal, walship captures what was committed, gives the replicas up to 10s
(shutdown-sync-timeout in the config file) to receive it and exits 0.

A replica holds the history of one database: the first walship to write it
becomes its owner, and walship refuses to start a database whose replica
another database owns. -takeover makes this database the owner of such a
replica (it moved to this server on purpose): its history starts apart from
the old one, with a snapshot, and the old owner, if it still runs, stops
writing to the replica. -takeover=DB_PATH (repeatable) takes over only the
replicas of that database of the config. One walship process replicates a
database: a second one on the same database refuses to start.

With socket: enabled: true in the config file (or -socket PATH), walship
listens on a Unix socket (mode 0600 unless socket.permissions says
otherwise) for walship sync, list, info, register, unregister, start and
stop; a socket another walship serves makes it refuse to start, one left by
a killed process is replaced. It then runs even with no database, waiting
for walship register.

-exec "CMD ARGS" (or exec: in the config file) runs your application under
walship: it starts once every database replicates (or waits for the
application to create it), receives the SIGINT and SIGTERM walship is sent,
and when it exits walship captures its last commits, gives the replicas up
to shutdown-sync-timeout to receive them and exits with its status (128+N
if signal N killed it). If replication stops while it runs, walship stops
it and exits non-zero, saying why.

-restore-if-db-not-exists (or restore-if-db-not-exists: on a database of
the config file) first restores each database whose file does not exist
from its first replica that holds a backup; with none, the application
creates a fresh database. The restored database goes on with the replica's
history, as the database the replica belongs to.

With lease-ttl: on the database's entry, the primary role is a lease at
the replica, renewed every third of the TTL; a primary that cannot renew
it stops writing (and stops -exec's application). -standby (with a config
of one database) keeps the database's path as a follower's copy of the
replica and, once the primary's lease has not changed for a whole TTL,
takes it over, promotes the copy and replicates it from the next TXID
(then starts -exec's application, or runs -promote-hook). A database at
the path that is not such a copy is kept aside, never merged.
-standby=auto is the primary unless another node holds the lease, and a
standby if one does: the same command on every node. A primary refused
because another node holds the lease exits with status 77.`

func runReplicate(ctx context.Context, e *env, args []string) (err error) {
	flags := newFlagSet(e, "replicate", "[flags] [DB_PATH REPLICA_URL]", replicateDescription)
	cf := addConfigFlags(flags)
	keys := addKeyFlags(flags)
	once := flags.Bool("once", false, "sync once (a full snapshot if the replica is empty), upload, and exit")
	syncInterval := flags.Duration("sync-interval", walship.DefaultSyncInterval, "how often to capture changes (command-line mode only; the config file has sync-interval)")
	logLevel := flags.String("log-level", "", "log level: debug, info, warn or error (default: $LOG_LEVEL, else the config's logging.level, else info)")
	addr := flags.String("addr", "", "serve Prometheus metrics, /healthz and /status on this `HOST:PORT` (\":9090\" is loopback only; default: the config's addr, else nothing listens)")
	socket := flags.String("socket", "", "serve the control socket (walship sync, list, info) at this `PATH` (default: the config's socket: section, else none)")
	var takeover takeoverFlags
	flags.Var(takeoverFlag{&takeover}, "takeover", "take over replicas that another database owns (this database replaces it on purpose); the new history starts with a snapshot. -takeover=DB_PATH (repeatable): only that database's replicas")
	execLine := flags.String("exec", "", "run this `command` line (split as a shell does, nothing expanded) once every database replicates; forward SIGINT and SIGTERM to it, and when it exits, flush and exit with its status (default: the config's exec)")
	var sb standbyFlags
	flags.Var(standbyFlag{&sb}, "standby", "stand by for the primary of the config's one database (it needs lease-ttl): keep its path as a follower's copy of the replica, and when the primary's lease expires take it over, promote the copy and replicate it (then start -exec, or run -promote-hook). -standby=auto: be the primary unless another node holds the lease, and stand by if it does (the same command on every node)")
	demoteHook := flags.String("demote-hook", "", "with lease-ttl, run this `command` line once this node stops being the primary (its lease lost, or handed over), within an eighth of the TTL: e.g. to stop an application walship does not run, or to give up a floating IP; it gets WALSHIP_REASON")
	flags.StringVar(&sb.hook, "promote-hook", "", "with -standby, run this `command` line once the promoted database replicates (e.g. to move a floating IP); it gets WALSHIP_PROMOTED_DB, WALSHIP_PROMOTED_TXID and WALSHIP_PREVIOUS_HOLDER")
	restoreMissing := flags.Bool("restore-if-db-not-exists", false, "before replicating, restore each database whose file does not exist from its first replica that holds a backup (the config's restore-if-db-not-exists, for every database)")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	// Before the first connection opens. A failure costs memory only.
	lookasideErr := sqlitemem.NoLookaside()

	store := &walship.Store{}
	defer func() { store.Close() }()
	watch := watchFromConfig(nil, *addr)
	flush := flushTimeout
	var sock config.Socket
	var log *slog.Logger
	restoring := map[string]bool{} // the databases restored if missing, by path
	var dirEntries []*config.DB    // the config's dir: entries
	switch len(pos) {
	case 2:
		if cf.explicit() {
			return usagef("-config cannot be combined with DB_PATH REPLICA_URL; use one or the other")
		}
		if *syncInterval < 0 {
			return usagef("-sync-interval must not be negative")
		}
		level, note := pickLevel("", *logLevel, os.Getenv(logLevelEnv))
		if log, err = newLogger(e, logSettings{level: level, format: "text"}); err != nil {
			return err
		}
		if note != "" {
			log.Warn(note)
		}
		opts := walship.Options{Logger: log}
		if isSet(flags, "sync-interval") {
			opts.SyncInterval, opts.SyncIntervalSet = *syncInterval, true
		}
		// What the client logs names the database and the replica, as
		// what the engine logs of them does.
		_, b, err := backend.Parse(pos[1])
		if err != nil {
			return err
		}
		dbPath, err := filepath.Abs(pos[0])
		if err != nil {
			return fmt.Errorf("database path %q: %w", pos[0], err)
		}
		client, err := backend.NewOpener(log.With("db", dbPath, "replica", b.Type())).OpenURL(ctx, pos[1], nil)
		if err != nil {
			return err
		}
		if client, err = keys.wrap(client); err != nil {
			return err
		}
		db, err := walship.NewDB(pos[0], opts, walship.NewReplica("", client))
		if err != nil {
			return err
		}
		store.DBs = append(store.DBs, db)
		// walship register: a database registered later gets walship's
		// defaults, as a config file without settings gives.
		store.Entry = walship.EntryFunc(&config.Config{}, "walship register", log)
	case 0:
		if isSet(flags, "sync-interval") {
			return usagef("-sync-interval applies only with DB_PATH REPLICA_URL; set sync-interval: in the config file instead")
		}
		if keys.given() {
			return usagef("-encryption-key-path applies only with DB_PATH REPLICA_URL; set encryption-key-path: on the replica in the config file instead")
		}
		cfg, err := cf.load(true)
		if err != nil {
			return err
		}
		name := *cf.path
		if cfg == nil && *socket != "" {
			// Only the databases walship register adds, with walship's
			// defaults.
			cfg, name = &config.Config{}, "walship register"
		}
		if cfg == nil {
			return fmt.Errorf("nothing to replicate: no config file at %s; pass DB_PATH REPLICA_URL, write a config file there, or point -config (or $%s) at one%s",
				*cf.path, config.PathEnv, config.LitestreamHint(*cf.path))
		}
		settings, note := configLogSettings(cfg.Logging, *logLevel, os.Getenv(logLevelEnv))
		if log, err = newLogger(e, settings); err != nil {
			return err
		}
		if note != "" {
			log.Warn(note)
		}
		if cfg.ShutdownSyncTimeout != nil {
			flush = *cfg.ShutdownSyncTimeout
		}
		if len(cfg.DBs) == 0 && len(cfg.Dirs) == 0 && (*once || !cfg.Socket.Enabled && *socket == "") {
			return fmt.Errorf("config %s lists no database; add one under dbs: (e.g. \"- path: /var/lib/app.db\" with a replica:), or enable the control socket (socket: enabled: true) to add them with walship register", *cf.path)
		}
		if *once && len(cfg.Dirs) > 0 {
			return usagef("-once does not replicate directories (dir: in %s); run replicate without -once, or list each database with path:", *cf.path)
		}
		fromConfig, err := walship.FromConfig(ctx, cfg, name, log)
		if err != nil {
			return err
		}
		store = fromConfig
		watch = watchFromConfig(cfg, *addr)
		sock = cfg.Socket
		if *execLine == "" {
			*execLine = cfg.Exec
		}
		for _, c := range cfg.DBs {
			restoring[c.Path] = c.RestoreIfDBNotExists
		}
		if *restoreMissing && len(cfg.Dirs) > 0 {
			// As in Litestream: which databases of a directory are
			// missing, no file says.
			log.Warn("-restore-if-db-not-exists does not apply to the databases of a directory (dir: entries): walship learns of them from their files; restore a missing one with walship restore")
		}
		dirEntries = cfg.Dirs
	default:
		return usagef("replicate takes DB_PATH and REPLICA_URL, or no argument to use the config file (got %d arguments)", len(pos))
	}
	if bad := takeover.unknown(func(path string) bool {
		return slices.ContainsFunc(store.DBs, func(db *walship.DB) bool { return db.Path() == path }) ||
			slices.ContainsFunc(dirEntries, func(d *config.DB) bool { return d.Matches(path) })
	}); len(bad) > 0 {
		return usagef("-takeover=%s names no database this command replicates; give the path of one of them (as in the config's path:), or -takeover alone for every one", strings.Join(bad, ", "))
	}

	var execArgs []string
	if *execLine != "" {
		if *once {
			return usagef("-once cannot be combined with -exec (or the config's exec): -once exits after one sync, -exec when the application does")
		}
		if execArgs, err = child.Split(*execLine); err != nil {
			return err
		}
	}
	// What every database gets, those found in a directory later too.
	// roleChanged wakes watchRole when a database loses its lease or is
	// asked to hand it over, so that nothing polls the databases.
	roleChanged := make(chan struct{}, 1)
	store.Prepare = func(db *walship.DB) {
		db.SetRoleChanged(func() {
			select {
			case roleChanged <- struct{}{}:
			default:
			}
		})
		db.SetTakeover(takeover.of(db.Path()))
		db.SetProgress(copyProgress(e, db.Path()))
		db.SetStopsApplication(execArgs != nil)
	}
	for _, db := range store.DBs {
		// Before a standby takes the lease over, which Prepare follows.
		db.SetStopsApplication(execArgs != nil)
	}
	if lookasideErr != nil {
		log.Debug("cannot trim SQLite's per-connection memory", "error", lookasideErr)
	}
	prepare := store.Prepare
	store.Prepare = func(db *walship.DB) {
		prepare(db)
		for _, r := range db.Replicas() {
			log.Info("replicating", "db", db.Path(), "replica", r.Name, "destination", r.Client.String())
		}
	}
	if sb.hook != "" && !sb.on && !sb.auto {
		return usagef("-promote-hook applies only with -standby")
	}
	if *demoteHook != "" {
		leased := false
		for _, db := range store.DBs {
			leased = leased || db.LeaseTTL() > 0
		}
		if !leased {
			return usagef("-demote-hook applies only to a database with lease-ttl")
		}
	}
	if sb.auto {
		if len(pos) != 0 || len(store.DBs) != 1 || len(dirEntries) > 0 {
			return usagef("-standby=auto needs the config file (-config) with exactly one database, with lease-ttl")
		}
		holder, err := heldElsewhere(ctx, store)
		if err != nil {
			return fmt.Errorf("-standby=auto: read the lease to choose between primary and standby: %w", err)
		}
		if holder != "" {
			log.Warn("another node holds the primary role: standing by", "holder", holder)
			sb.on = true
			*restoreMissing = false // a standby starts from the replica anyway
		} else {
			// A node that loses the race to the lease with another
			// starting at once exits as a failure (not exitLeaseHeld),
			// so that its service manager starts it again: it then
			// finds the lease held, and stands by.
			defer func() {
				if errors.Is(err, lease.ErrHeld) {
					err = fmt.Errorf("%v; -standby=auto: start again, and this node stands by", err)
				}
			}()
		}
	}
	if sb.on {
		switch {
		case len(pos) != 0:
			return usagef("-standby needs the config file (-config) with lease-ttl on the database, not DB_PATH REPLICA_URL")
		case *once:
			return usagef("-standby cannot be combined with -once")
		case takeover.given():
			return usagef("-standby cannot be combined with -takeover: a promoted standby continues the replica's history as its owner")
		case *restoreMissing:
			return usagef("-standby cannot be combined with -restore-if-db-not-exists: a standby always starts from the replica")
		}
		if watch.addr != "" {
			// Served from now, through the promotion, until replicate
			// returns: a standby's lag and the lease's holder are
			// watched like a primary's replication. The heartbeat
			// starts only once promoted: a standby's must not stand
			// for the primary's.
			mctx, stopMonitor := context.WithCancel(ctx)
			defer stopMonitor()
			if err := serveMonitor(mctx, log, store, watch); err != nil {
				return err
			}
			watch.addr = ""
		}
		promoted, p, err := runStandby(ctx, log, store, len(dirEntries))
		if err != nil || !promoted {
			return err
		}
		if sb.hook != "" {
			if err := runPromotionHook(ctx, log, store, sb.hook, p); err != nil {
				return err
			}
		}
	}
	for _, db := range store.DBs {
		if !sb.on && (*restoreMissing || restoring[db.Path()]) {
			if _, err := db.RestoreIfMissing(ctx); err != nil {
				return err
			}
		}
	}
	if *once {
		for _, db := range store.DBs {
			store.Prepare(db)
		}
		return replicateOnce(ctx, log, store.DBs)
	}
	if *socket != "" {
		abs, err := filepath.Abs(*socket)
		if err != nil {
			return fmt.Errorf("-socket %q: %w", *socket, err)
		}
		sock.Enabled, sock.Path = true, abs
	}
	// With a socket, databases may be registered later: replicate runs
	// with none, and when the last is unregistered.
	store.KeepRunning = sock.Enabled
	srv, err := serveControl(log, store, sock)
	if err != nil {
		return err
	}
	if srv != nil {
		// After the databases' last flush: a sync -wait in flight may
		// still see its TXID reach the replicas.
		defer srv.Close()
	}
	demote := &demotion{log: log, line: *demoteHook}
	// The goroutines below end before replicate returns: none may log
	// after it.
	var watchers sync.WaitGroup
	defer watchers.Wait()
	if execArgs != nil {
		// The application is stopped on a lost lease by
		// replicateWithChild; the hook runs beside.
		dctx, stopWatching := context.WithCancel(ctx)
		watchers.Go(func() { watchRole(dctx, store, roleChanged, demote, nil, false, make(chan error, 1)) })
		err := replicateWithChild(ctx, log, store, watch, flush, execArgs)
		stopWatching()
		if handedOver(store) {
			demote.run(store, "handed over")
		}
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	finished := make(chan struct{})
	defer close(finished) // before watchers.Wait, deferred earlier
	// A primary asked to hand over stops cleanly; one that lost its
	// lease stops (after the demotion hook), and says so in its exit
	// status: a service manager then starts it again, as the standby
	// with -standby=auto.
	lost := make(chan error, 1)
	wctx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	watchers.Go(func() { watchRole(wctx, store, roleChanged, demote, stop, true, lost) })
	watchers.Go(func() {
		select {
		case <-ctx.Done():
			// A second signal kills the process the default way.
			stop()
			select {
			case <-finished: // the run ended first: nothing to say
			default:
				log.Info("stopping: capturing the last changes and flushing the replicas", "timeout", flush.String())
			}
		case <-finished:
		}
	})
	if err := startWatching(ctx, log, store, watch); err != nil {
		return err
	}
	go superviseSystemd(ctx, log, store.Databases)
	runErr := store.Run(ctx, flush)
	select {
	case err := <-lost:
		return fmt.Errorf("this node lost the primary role, and stopped; start it as the standby (replicate -standby, or -standby=auto, which decides by itself): %w", err)
	default:
	}
	if runErr != nil {
		return fmt.Errorf("replication failed: %w", runErr)
	}
	if handedOver(store) {
		demote.run(store, "handed over")
	}
	log.Info("stopped")
	return nil
}

// replicateOnce syncs and uploads every database once.
func replicateOnce(ctx context.Context, log *slog.Logger, dbs []*walship.DB) error {
	var errs []error
	for _, db := range dbs {
		if err := syncOnce(ctx, db); err != nil {
			log.Error("sync failed", "db", db.Path(), "error", err)
			errs = append(errs, err)
			continue
		}
		log.Info("synced", "db", db.Path(), "txid", db.Pos().TXID.String())
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

func syncOnce(ctx context.Context, db *walship.DB) error {
	fi, err := os.Stat(db.Path())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("database %s does not exist; check the path (replicate without -once waits for it to be created)", db.Path())
	case err != nil:
		return fmt.Errorf("database %s: %w", db.Path(), err)
	case fi.IsDir():
		return fmt.Errorf("%s is a directory, not a SQLite database", db.Path())
	}
	if err := db.RunOnce(ctx); err != nil {
		return fmt.Errorf("sync %s: %w", db.Path(), err)
	}
	return nil
}
