package control

import (
	"context"
	"path/filepath"
	"time"

	"github.com/walship/walship"
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
