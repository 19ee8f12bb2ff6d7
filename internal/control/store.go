package control

import (
	"context"
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
	return nil
}
