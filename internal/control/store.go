package control

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
	"github.com/walship/walship/storage/backend"
)

// storeProcess is a Store as the control socket sees it.
type storeProcess struct{ s *walship.Store }

// FromStore returns the Process of a Store's databases.
func FromStore(s *walship.Store) Process { return storeProcess{s} }

func (p storeProcess) Status(ctx context.Context, now time.Time) []walship.DBStatus {
	return p.s.Status(ctx, now)
}

func (p storeProcess) DB(path string) Database {
	// Databases, not DBs: those added while the store runs (found in a
	// directory, say) and those resumed too.
	dbs := p.s.Databases()
	for _, db := range dbs {
		if db.Path() == path {
			return db
		}
	}
	// A database whose configured path is a symbolic link, asked for by
	// the file it points to.
	for _, db := range dbs {
		if real, err := filepath.EvalSymlinks(db.Path()); err == nil && real == path {
			return db
		}
	}
	return nil
}

// Register builds the database's DB with the store's Entry, as an entry
// of the config file with one replica, and adds it.
func (p storeProcess) Register(ctx context.Context, req RegisterRequest) error {
	if p.s.Entry == nil {
		return fmt.Errorf("this walship cannot register databases at run time")
	}
	entry := &config.DB{Path: req.Path, Replica: &config.Replica{
		URL:                   req.ReplicaURL,
		EncryptionKeyPath:     req.EncryptionKeyPath,
		EncryptionOldKeyPaths: req.EncryptionOldKeyPaths,
	}}
	db, err := p.s.Entry(ctx, entry)
	if err != nil {
		// The request names what cannot be replicated: a replica URL, a
		// key file the process cannot read.
		return badRequest(fmt.Sprintf("cannot replicate %s to %s: %v", req.Path, backend.Redact(req.ReplicaURL), err))
	}
	if err := p.s.Add(ctx, db); err != nil {
		// Not the store's: its clients are ours to release.
		for _, r := range db.Replicas() {
			if c, ok := r.Client.(io.Closer); ok {
				c.Close()
			}
		}
		return err
	}
	return nil
}

func (p storeProcess) Unregister(ctx context.Context, path string) error {
	return p.s.Remove(ctx, path)
}

func (p storeProcess) Stop(ctx context.Context, path string) error {
	return p.s.Pause(ctx, path)
}

func (p storeProcess) Start(ctx context.Context, path string) error {
	return p.s.Resume(ctx, path)
}
