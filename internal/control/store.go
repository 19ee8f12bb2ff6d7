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
	for _, db := range p.s.DBs {
		if db.Path() == path {
			return db
		}
	}
	// A database whose configured path is a symbolic link, asked for by
	// the file it points to.
	for _, db := range p.s.DBs {
		if real, err := filepath.EvalSymlinks(db.Path()); err == nil && real == path {
			return db
		}
	}
	return nil
}
