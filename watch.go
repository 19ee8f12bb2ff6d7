package walship

import (
	"log/slog"

	"github.com/walship/walship/internal/watch"
)

// Watcher reports changes to databases and their WALs. One serves every
// database of a process: the kernel allows few inotify instances per user.
type Watcher = watch.Watcher

// NewWatcher returns a Watcher; it opens nothing until a database
// subscribes.
func NewWatcher(log *slog.Logger) *Watcher { return watch.New(log) }
