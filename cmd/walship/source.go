package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/backend"
	"github.com/walship/walship/storage/file"
)

// source is what restore and ltx read from.
type source struct {
	client storage.Client
	db     *config.DB // the configured database, when the argument named one
}

// close releases the client's connections, for backends that hold them.
func (s *source) close() {
	if c, ok := s.client.(io.Closer); ok {
		c.Close()
	}
}

// resolveSource interprets the DB_PATH|REPLICA_URL argument of restore and
// ltx: a URL, an existing directory (a replica), or the path of a database
// listed in the config file (then its replica named replicaName, or its first
// replica).
func resolveSource(ctx context.Context, arg string, cf *configFlags, replicaName string) (*source, error) {
	op := backend.NewOpener(slog.New(slog.DiscardHandler))
	if backend.IsURL(arg) {
		if replicaName != "" {
			return nil, usagef("-replica selects a replica of a configured database; it cannot be used with a replica URL")
		}
		c, err := op.OpenURL(ctx, arg, nil)
		if err != nil {
			return nil, err
		}
		if c, err = cf.keys.wrap(c); err != nil {
			return nil, err
		}
		return &source{client: c}, nil
	}
	fi, statErr := os.Stat(arg)
	if statErr == nil && fi.IsDir() {
		if replicaName != "" {
			return nil, usagef("-replica selects a replica of a configured database; %s is a replica directory", arg)
		}
		c, err := cf.keys.wrap(file.New(arg))
		if err != nil {
			return nil, err
		}
		return &source{client: c}, nil
	}

	cfg, err := cf.load(true)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		for _, db := range cfg.DBs {
			if db.Path != abs && !sameExistingFile(db.Path, abs) {
				continue
			}
			return sourceFromDB(ctx, op, cfg, db, *cf.path, replicaName, cf.keys)
		}
		// A database of a directory entry (dir:) need not exist: it is
		// found by its path, under the directory, matching the pattern.
		if db := cfg.Database(abs); db != nil {
			return sourceFromDB(ctx, op, cfg, db, *cf.path, replicaName, cf.keys)
		}
	}

	var where string
	if cfg == nil {
		where = fmt.Sprintf("there is no config file at %s to look it up in (use -config PATH or set $%s%s)", *cf.path, config.PathEnv, config.LitestreamHint(*cf.path))
	} else {
		where = fmt.Sprintf("config %s lists no database at that path", *cf.path)
	}
	switch {
	case statErr == nil:
		return nil, fmt.Errorf("%s is a file, not a replica directory, and %s; pass the replica instead (file:///path/to/replica)", abs, where)
	case errors.Is(statErr, fs.ErrNotExist):
		return nil, fmt.Errorf("no replica directory at %s, and %s; pass a replica URL like file:///path/to/replica or a configured database path", abs, where)
	default:
		return nil, fmt.Errorf("%s: %v", arg, statErr)
	}
}

// sourceFromDB opens the replica named name of the configured database db,
// with the keys of the flags, if given; when name is empty, the replica
// with the newest state (the first of the config among equals): restoring
// an older one's, the database would go on from the newest replica's TXID
// without the commits between.
func sourceFromDB(ctx context.Context, op *backend.Opener, cfg *config.Config, db *config.DB, cfgPath, name string, keys *keyFlags) (*source, error) {
	replicas := db.AllReplicas()
	if len(replicas) == 0 {
		return nil, fmt.Errorf("%s:%d: database %s has no replica; add a replica: entry", cfgPath, db.Line, db.Path)
	}
	if name == "" && len(replicas) > 1 {
		return newestSource(ctx, op, cfg, db, cfgPath, replicas, keys)
	}
	names := db.ReplicaNames()
	i := 0
	if name != "" {
		if i = slices.Index(names, name); i < 0 {
			return nil, fmt.Errorf("database %s has no replica named %q (its replicas: %s)", db.Path, name, strings.Join(names, ", "))
		}
	}
	r := replicas[i]
	c, err := walship.ReplicaClient(ctx, op, cfg, keys.override(r))
	if err != nil {
		return nil, fmt.Errorf("%s:%d: database %s, replica %s: %w", cfgPath, r.Line, db.Path, names[i], err)
	}
	return &source{client: c, db: db}, nil
}

// newestSource opens every replica of db and returns the one holding the
// newest TXID (restore.ByNewest). A replica it cannot read is an error: it
// may be the newest.
func newestSource(ctx context.Context, op *backend.Opener, cfg *config.Config, db *config.DB, cfgPath string, replicas []*config.Replica, keys *keyFlags) (*source, error) {
	var opened []*source
	closeAll := func(keep int) {
		for i, s := range opened {
			if i != keep {
				s.close()
			}
		}
	}
	listers := make([]restore.Lister, 0, len(replicas))
	names := db.ReplicaNames()
	for i, r := range replicas {
		c, err := walship.ReplicaClient(ctx, op, cfg, keys.override(r))
		if err != nil {
			closeAll(-1)
			return nil, fmt.Errorf("%s:%d: database %s, replica %s: %w", cfgPath, r.Line, db.Path, names[i], err)
		}
		opened = append(opened, &source{client: c, db: db})
		listers = append(listers, c)
	}
	order, err := restore.ByNewest(ctx, listers)
	if err != nil {
		closeAll(-1)
		var le *restore.ListError
		errors.As(err, &le)
		return nil, fmt.Errorf("database %s has %d replicas and walship reads the one with the newest state, but cannot read replica %s: %w; fix its access, or name the replica to read with -replica",
			db.Path, len(replicas), names[le.Index], err)
	}
	closeAll(order[0])
	return opened[order[0]], nil
}

func sameExistingFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(fa, fb)
}
