package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
	"github.com/walship/walship/internal/sqlitemem"
	"github.com/walship/walship/storage/backend"
)

// flushTimeout is how long replicate waits, after a signal, for the replicas
// to receive what was captured.
const flushTimeout = 10 * time.Second

const replicateDescription = `
Replicates SQLite databases until interrupted (SIGINT or SIGTERM): every
committed transaction is captured from the write-ahead log and shipped to the
replicas as LTX files.

With DB_PATH and REPLICA_URL, replicates that one database. REPLICA_URL is
s3://bucket/path, gs://bucket/path, abs://account@container/path,
sftp://user@host/path, webdav[s]://host/path, nats://host:4222/bucket,
file:///path or a directory path; the settings and credentials these need
beyond the URL come from the environment (see the README) or a config file. Without arguments, replicates
every database of the config file.

On a signal, walship captures what was committed, gives the replicas up to 10s
to receive it and exits 0.`

// dbSpec is one database to replicate, with its replicas described for logs.
type dbSpec struct {
	db    *walship.DB
	dests []string
}

func runReplicate(ctx context.Context, e *env, args []string) error {
	flags := newFlagSet(e, "replicate", "[flags] [DB_PATH REPLICA_URL]", replicateDescription)
	cf := addConfigFlags(flags)
	once := flags.Bool("once", false, "sync once (a full snapshot if the replica is empty), upload, and exit")
	syncInterval := flags.Duration("sync-interval", walship.DefaultSyncInterval, "how often to capture changes (command-line mode only; the config file has sync-interval)")
	logLevel := flags.String("log-level", "", "log level: debug, info, warn or error (default: the config's logging.level, else info)")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	// Before the first connection opens. A failure costs memory only.
	lookasideErr := sqlitemem.NoLookaside()

	var specs []dbSpec
	var log *slog.Logger
	switch len(pos) {
	case 2:
		if cf.explicit() {
			return usagef("-config cannot be combined with DB_PATH REPLICA_URL; use one or the other")
		}
		if *syncInterval < 0 {
			return usagef("-sync-interval must not be negative")
		}
		if log, err = newLogger(e.stderr, *logLevel, "text"); err != nil {
			return err
		}
		opts := walship.Options{Logger: log}
		if isSet(flags, "sync-interval") {
			opts.SyncInterval, opts.SyncIntervalSet = *syncInterval, true
		}
		client, err := newClients(log).fromURL(ctx, pos[1], nil)
		if err != nil {
			return err
		}
		db, err := walship.NewDB(pos[0], opts, walship.NewReplica("", client))
		if err != nil {
			return err
		}
		specs = append(specs, dbSpec{db: db, dests: []string{client.String()}})
	case 0:
		if isSet(flags, "sync-interval") {
			return usagef("-sync-interval applies only with DB_PATH REPLICA_URL; set sync-interval: in the config file instead")
		}
		cfg, err := cf.load(true)
		if err != nil {
			return err
		}
		if cfg == nil {
			return fmt.Errorf("nothing to replicate: no config file at %s; pass DB_PATH REPLICA_URL, write a config file there, or point -config (or $%s) at one",
				*cf.path, config.PathEnv)
		}
		level := cfg.Logging.Level
		if *logLevel != "" {
			level = *logLevel
		}
		if log, err = newLogger(e.stderr, level, cfg.Logging.Type); err != nil {
			return err
		}
		for _, k := range cfg.Unused {
			log.Warn(fmt.Sprintf("key %s on line %d is not supported yet and is ignored", k.Name, k.Line), "config", *cf.path)
		}
		if len(cfg.DBs) == 0 {
			return fmt.Errorf("config %s lists no database; add one under dbs: (e.g. \"- path: /var/lib/app.db\" with a replica:)", *cf.path)
		}
		cl := newClients(log)
		for _, c := range cfg.DBs {
			spec, err := dbFromConfig(ctx, cl, cfg, c, *cf.path, log)
			if err != nil {
				return err
			}
			specs = append(specs, spec)
		}
	default:
		return usagef("replicate takes DB_PATH and REPLICA_URL, or no argument to use the config file (got %d arguments)", len(pos))
	}

	if lookasideErr != nil {
		log.Debug("cannot trim SQLite's per-connection memory", "error", lookasideErr)
	}
	for _, s := range specs {
		for i, r := range s.db.Replicas() {
			log.Info("replicating", "db", s.db.Path(), "replica", r.Name, "destination", s.dests[i])
			defer closeClient(r.Client)
		}
	}
	if *once {
		return replicateOnce(ctx, log, specs)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// A second signal kills the process the default way.
		stop()
		log.Info("stopping: capturing the last changes and flushing the replicas", "timeout", flushTimeout.String())
	}()
	store := &walship.Store{}
	for _, s := range specs {
		store.DBs = append(store.DBs, s.db)
	}
	if err := store.Run(ctx, flushTimeout); err != nil {
		return fmt.Errorf("replication failed: %w", err)
	}
	log.Info("stopped")
	return nil
}

// replicateOnce syncs and uploads every database once.
func replicateOnce(ctx context.Context, log *slog.Logger, specs []dbSpec) error {
	var errs []error
	for _, s := range specs {
		if err := syncOnce(ctx, s.db); err != nil {
			log.Error("sync failed", "db", s.db.Path(), "error", err)
			errs = append(errs, err)
			continue
		}
		log.Info("synced", "db", s.db.Path(), "txid", s.db.Pos().TXID.String())
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

// applyTopLevel sets the options that the config file's top level holds:
// compaction levels, snapshots, retention and the staging cap.
func applyTopLevel(opts *walship.Options, cfg *config.Config, c *config.DB) {
	if cfg.Levels != nil {
		opts.Levels = []time.Duration{}
		for _, l := range cfg.Levels {
			opts.Levels = append(opts.Levels, l.Interval)
		}
	}
	if v := cfg.Snapshot.Interval; v != nil {
		opts.SnapshotInterval = *v
	}
	if v := cfg.Snapshot.Retention; v != nil {
		opts.SnapshotRetention = *v
	}
	if v := cfg.L0Retention; v != nil {
		opts.L0Retention = *v
	}
	if v := cfg.L0RetentionCheckInterval; v != nil {
		opts.L0RetentionCheckInterval = *v
	}
	if v := cfg.Retention.Enabled; v != nil {
		opts.RetentionDisabled = !*v
	}
	if v := cfg.MaxLocalBytes; v != nil {
		opts.MaxLocalBytes = *v
	}
	if v := c.MaxLocalBytes; v != nil {
		opts.MaxLocalBytes = *v
	}
}

// dbFromConfig builds the engine's DB for one database of the config file.
func dbFromConfig(ctx context.Context, cl *clients, cfg *config.Config, c *config.DB, cfgPath string, log *slog.Logger) (dbSpec, error) {
	replicas := c.AllReplicas()
	if len(replicas) == 0 {
		return dbSpec{}, fmt.Errorf("%s:%d: database %s has no replica; add a replica: entry with a url (e.g. url: file:///backups/app)", cfgPath, c.Line, c.Path)
	}
	opts := walship.Options{Logger: log, MetaPath: c.MetaPath}
	if c.SyncInterval != nil {
		opts.SyncInterval, opts.SyncIntervalSet = *c.SyncInterval, true
	} else if r := replicas[0]; r.SyncInterval != nil {
		opts.SyncInterval, opts.SyncIntervalSet = *r.SyncInterval, true
	}
	if c.CheckpointInterval != nil {
		opts.CheckpointInterval = *c.CheckpointInterval
	}
	if c.MinCheckpointPageN != nil {
		opts.MinCheckpointPageN = *c.MinCheckpointPageN
	}
	if c.MaxCheckpointPageN != nil {
		opts.MaxCheckpointPageN = *c.MaxCheckpointPageN
	}
	if c.TruncatePageN != nil {
		opts.TruncatePageN = *c.TruncatePageN
	}
	if c.BusyTimeout != nil {
		opts.BusyTimeout = *c.BusyTimeout
	}
	applyTopLevel(&opts, cfg, c)
	if c.MonitorInterval != nil {
		log.Warn(fmt.Sprintf("key monitor-interval of database %s (line %d) is not supported yet and is ignored: walship watches the WAL for changes", c.Path, c.Line), "config", cfgPath)
	}

	var spec dbSpec
	var reps []*walship.Replica
	for i, r := range replicas {
		client, err := cl.fromConfig(ctx, cfg, r)
		if err != nil {
			return dbSpec{}, fmt.Errorf("%s:%d: database %s, replica %s: %w", cfgPath, r.Line, c.Path, replicaName(r), err)
		}
		if i > 0 && r.SyncInterval != nil {
			log.Warn(fmt.Sprintf("key sync-interval of replica %s (line %d) is ignored: a database has one sync interval; set it on the database", replicaName(r), r.Line), "config", cfgPath)
		}
		for _, k := range backend.UnusedKeys(replicaType(r), r.Extra) {
			log.Warn(fmt.Sprintf("key %s of replica %s (line %d) does not apply to %s replicas and is ignored", k, replicaName(r), r.Line, replicaType(r)), "config", cfgPath)
		}
		reps = append(reps, walship.NewReplica(r.Name, client))
		spec.dests = append(spec.dests, client.String())
	}
	db, err := walship.NewDB(c.Path, opts, reps...)
	if err != nil {
		return dbSpec{}, err
	}
	spec.db = db
	return spec, nil
}
