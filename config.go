package walship

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/walship/walship/config"
	"github.com/walship/walship/internal/lease"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/backend"
	"github.com/walship/walship/storage/crypt"
)

// FromConfig returns the databases of a parsed config file, ready to Run:
// each one's Options from its settings and the file's top level, and its
// replicas' clients opened (which reads credentials but sends nothing).
// name is the file's name, for messages. The file's warnings
// (cfg.Warnings: settings that have no effect) are logged to log, once
// each, which the databases log to as well. Close the
// Store to release the clients.
func FromConfig(ctx context.Context, cfg *config.Config, name string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	for _, w := range cfg.Warnings {
		log.Warn(w.Key+": "+w.Msg, "config", cmp.Or(w.File, name), "line", w.Line)
	}
	op := backend.NewOpener(log)
	store := &Store{}
	for _, c := range cfg.DBs {
		db, err := dbFromConfig(ctx, op, cfg, c, name, log)
		if err != nil {
			store.Close()
			return nil, err
		}
		store.DBs = append(store.DBs, db)
	}
	for _, c := range cfg.Dirs {
		store.Dirs = append(store.Dirs, &Dir{
			Path: c.Dir, Pattern: c.Pattern, Recursive: c.Recursive, Log: log,
			New: func(ctx context.Context, path string) (*DB, error) {
				one, err := c.ForDatabase(path)
				if err != nil {
					return nil, err
				}
				return dbFromConfig(ctx, op, cfg, one, name, log)
			},
		})
	}
	store.Entry = func(ctx context.Context, c *config.DB) (*DB, error) {
		return dbFromConfig(ctx, op, cfg, c, name, log)
	}
	return store, nil
}

// EntryFunc returns what a Store's Entry is: a function that builds the
// DB of a database entry with cfg's top-level settings (an empty Config:
// walship's defaults), as FromConfig builds those of cfg. name names the
// entries' origin in messages.
func EntryFunc(cfg *config.Config, name string, log *slog.Logger) func(ctx context.Context, c *config.DB) (*DB, error) {
	if log == nil {
		log = slog.Default()
	}
	op := backend.NewOpener(log)
	return func(ctx context.Context, c *config.DB) (*DB, error) {
		return dbFromConfig(ctx, op, cfg, c, name, log)
	}
}

// at names where an entry was written: its file and line, or only the
// origin of an entry that has no line (a register request's).
func at(name string, line int) string {
	if line == 0 {
		return name
	}
	return fmt.Sprintf("%s:%d", name, line)
}

// Close releases the connections of every replica client that holds some,
// those of the databases the store runs or ran.
func (s *Store) Close() error {
	var errs []error
	for _, db := range s.Databases() {
		errs = append(errs, db.closeClients())
	}
	return errors.Join(errs...)
}

// closeClients releases the connections of the database's replica clients.
func (db *DB) closeClients() error {
	var errs []error
	for _, r := range db.replicas {
		if c, ok := r.Client.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// dbFromConfig builds the DB of one database of the config file.
func dbFromConfig(ctx context.Context, op *backend.Opener, cfg *config.Config, c *config.DB, name string, log *slog.Logger) (*DB, error) {
	replicas := c.AllReplicas()
	if len(replicas) == 0 {
		return nil, fmt.Errorf("%s: database %s has no replica; add a replica: entry with a url (e.g. url: file:///backups/app)", at(name, c.Line), c.Path)
	}
	opts := Options{Logger: log, MetaPath: c.MetaPath}
	if c.SyncInterval != nil {
		opts.SyncInterval, opts.SyncIntervalSet = *c.SyncInterval, true
	} else if r := replicas[0]; r.SyncInterval != nil {
		opts.SyncInterval, opts.SyncIntervalSet = *r.SyncInterval, true
	}
	setIf(&opts.CheckpointInterval, c.CheckpointInterval)
	setIf(&opts.MinCheckpointPageN, c.MinCheckpointPageN)
	setIf(&opts.MaxCheckpointPageN, c.MaxCheckpointPageN)
	setIf(&opts.TruncatePageN, c.TruncatePageN)
	setIf(&opts.BusyTimeout, c.BusyTimeout)
	if c.LeaseTTL != nil {
		if *c.LeaseTTL < lease.MinTTL {
			return nil, fmt.Errorf("%s:%d: database %s: lease-ttl: %s is shorter than %s; renewals a third of it apart must reach the replica well within it (the default is %s)", name, c.Line, c.Path, *c.LeaseTTL, lease.MinTTL, lease.DefaultTTL)
		}
		if len(replicas) != 1 {
			return nil, fmt.Errorf("%s:%d: database %s: lease-ttl needs exactly one replica, where the lease is kept and the standby follows; it has %d", name, c.Line, c.Path, len(replicas))
		}
		opts.LeaseTTL = *c.LeaseTTL
	}
	if cfg.Levels != nil {
		opts.Levels = []time.Duration{}
		for _, l := range cfg.Levels {
			opts.Levels = append(opts.Levels, l.Interval)
		}
	}
	setIf(&opts.SnapshotInterval, cfg.Snapshot.Interval)
	setIf(&opts.SnapshotRetention, cfg.Snapshot.Retention)
	setIf(&opts.L0Retention, cfg.L0Retention)
	setIf(&opts.L0RetentionCheckInterval, cfg.L0RetentionCheckInterval)
	if v := cfg.Retention.Enabled; v != nil {
		opts.RetentionDisabled = !*v
	}
	setIf(&opts.MaxLocalBytes, cfg.MaxLocalBytes)
	setIf(&opts.MaxLocalBytes, c.MaxLocalBytes)

	abs, err := filepath.Abs(c.Path)
	if err != nil {
		return nil, fmt.Errorf("%s: database path %q: %w", at(name, c.Line), c.Path, err)
	}
	var reps []*Replica
	names := c.ReplicaNames()
	for i, r := range replicas {
		// What the client logs names the database and the replica, as
		// what the engine logs of them does (NewDB).
		rlog := log.With("db", abs, "replica", names[i])
		client, err := ReplicaClient(ctx, op.With(rlog), cfg, r)
		if err != nil {
			for _, rep := range reps {
				if c, ok := rep.Client.(io.Closer); ok {
					c.Close()
				}
			}
			return nil, fmt.Errorf("%s: database %s, replica %s: %w", at(name, r.Line), c.Path, names[i], err)
		}
		rep := NewReplica(names[i], client)
		setIf(&rep.ValidationInterval, r.ValidationInterval)
		setIf(&rep.AuditInterval, r.AuditInterval)
		setIf(&rep.LitestreamCompatible, r.LitestreamCompatible)
		reps = append(reps, rep)
	}
	return NewDB(c.Path, opts, reps...)
}

// setIf sets *v to *p when the config set p.
func setIf[T any](v *T, p *T) {
	if p != nil {
		*v = *p
	}
}

// ReplicaClient opens the client of a replica of the config file, through
// op. A replica written with type: and keys (bucket:, path:, host:, ...)
// instead of url: is turned into the equivalent URL. The file's top-level
// credentials (access-key-id, secret-access-key) apply to every replica
// whose backend reads them and that sets none of its own. A replica with an
// encryption key gets a client that encrypts what it writes and decrypts
// what it reads (package storage/crypt).
func ReplicaClient(ctx context.Context, op *backend.Opener, cfg *config.Config, r *config.Replica) (storage.Client, error) {
	typ := r.Backend()
	b, known := backend.Lookup(typ)
	keys := maps.Clone(r.Extra)
	if known && cfg != nil {
		for k, v := range map[string]string{"access-key-id": cfg.AccessKeyID, "secret-access-key": cfg.SecretAccessKey} {
			if v != "" && keys[k] == "" && slices.Contains(b.Keys, k) {
				keys = storage.WithKey(keys, k, v)
			}
		}
	}
	ks, err := crypt.LoadKeys(r.EncryptionKey, r.EncryptionKeyPath, r.EncryptionOldKeyPaths)
	if err != nil {
		return nil, err
	}
	c, err := openReplica(ctx, op, r, typ, b, known, keys)
	if err != nil {
		return nil, err
	}
	return crypt.With(c, ks), nil
}

func openReplica(ctx context.Context, op *backend.Opener, r *config.Replica, typ string, b storage.Backend, known bool, keys map[string]string) (storage.Client, error) {
	if r.URL == "" {
		return op.OpenKeys(ctx, typ, r.Path, keys)
	}
	if r.Path != "" {
		return nil, errors.New("replica has both url and path; set only one")
	}
	if r.Type != "" {
		scheme := backend.Scheme(r.URL)
		if scheme == "" && typ != "file" {
			form := b.Form
			if !known {
				form = typ + "://..."
			}
			return nil, fmt.Errorf("replica type %s needs a URL like %s, not %q", r.Type, form, r.URL)
		}
		// The type names a scheme, or the backend: type: webdav serves
		// both webdav:// and webdavs://, type: webdavs only the latter.
		if scheme != "" && scheme != typ && !(known && typ == b.Type() && slices.Contains(b.Schemes, scheme)) {
			return nil, fmt.Errorf("replica type %s does not match its url %s; remove type: or make them agree", r.Type, backend.Redact(r.URL))
		}
	}
	return op.OpenURL(ctx, r.URL, keys)
}
