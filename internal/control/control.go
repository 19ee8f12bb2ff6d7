// Package control serves the control socket of a running `walship
// replicate`, and is the client the CLI's sync, list and info verbs use.
//
// The socket is a Unix socket (mode 0600 by default: only walship's user,
// and root, may connect) speaking HTTP with JSON bodies, with Litestream
// 0.5's endpoints and shapes, so that Litestream's own client works too:
//
//   - POST /sync {"path", "wait", "timeout"}: capture the database now; with
//     wait, answer only once every replica holds it (DB.SyncWait);
//   - GET /list: the databases and their state;
//   - GET /info: the process (version, PID, uptime, number of databases);
//   - GET /status[?path=DB]: walship's full state of every database (or
//     one), the document /status of the metrics listener serves.
//
// An error is {"error": "...", "details": ...} with a 4xx or 5xx status.
//
// The server sees the process through the narrow Process interface: the
// engine does the work, the socket only translates. A new verb (register,
// start, stop) is a new method there and a new handler here.
package control

import (
	"context"
	"errors"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
)

// Process is what the control socket can ask of the running process.
type Process interface {
	// Status returns the state of every database of the process.
	Status(ctx context.Context, now time.Time) []walship.DBStatus
	// DB returns the database at path, an absolute and clean path, or
	// nil if the process replicates none there.
	DB(path string) Database
}

// Database is one database of the process, as the socket uses it;
// *walship.DB is one.
type Database interface {
	Path() string
	Pos() ltx.Pos
	Phase() walship.Phase
	Replicas() []*walship.Replica
	Status(ctx context.Context, now time.Time) walship.DBStatus
	// Sync captures what was committed; SyncWait also waits until every
	// replica holds it.
	Sync(ctx context.Context) (ltx.Pos, error)
	SyncWait(ctx context.Context) (ltx.Pos, error)
}

// DefaultSyncWaitTimeout bounds a POST /sync with wait and no timeout, as
// in Litestream.
const DefaultSyncWaitTimeout = 30 * time.Second

// SyncRequest is the body of POST /sync.
type SyncRequest struct {
	Path string `json:"path"`
	Wait bool   `json:"wait,omitempty"`
	// Timeout is in seconds, as Litestream's (which sends whole ones);
	// zero is DefaultSyncWaitTimeout with Wait, no bound without.
	Timeout float64 `json:"timeout,omitempty"`
}

// SyncResponse is the body of POST /sync's answer.
type SyncResponse struct {
	// Status is "synced" (captured, and with wait every replica holds
	// it), "synced_local" (captured; the replicas receive it in the
	// background) or "no_change" (nothing was committed since the last
	// capture; with wait every replica holds the newest TXID).
	Status string `json:"status"`
	Path   string `json:"path"`
	// TXID is the newest TXID captured; ReplicatedTXID the newest every
	// replica holds.
	TXID           uint64       `json:"txid"`
	ReplicatedTXID uint64       `json:"replicated_txid"`
	Replicas       []ReplicaPos `json:"replicas"`
}

// ReplicaPos is a replica's newest TXID.
type ReplicaPos struct {
	Name string `json:"name"`
	TXID uint64 `json:"txid"`
}

// ListResponse is the body of GET /list.
type ListResponse struct {
	Databases []DatabaseSummary `json:"databases"`
}

// DatabaseSummary is one database in GET /list.
type DatabaseSummary struct {
	Path string `json:"path"`
	// Status is the database's phase: starting, waiting, replicating or
	// stopped.
	Status string `json:"status"`
	// TXID is the newest TXID captured; ReplicatedTXID the newest every
	// replica holds.
	TXID           uint64 `json:"txid"`
	ReplicatedTXID uint64 `json:"replicated_txid"`
	// Error is why the database cannot be opened or synced.
	Error string `json:"error,omitempty"`
	// Failing counts the replicas whose last upload failed or that are
	// written no more.
	Failing int `json:"failing_replicas,omitempty"`
}

// InfoResponse is the body of GET /info.
type InfoResponse struct {
	Version       string    `json:"version"`
	PID           int       `json:"pid"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	StartedAt     time.Time `json:"started_at"`
	DatabaseCount int       `json:"database_count"`
	Socket        string    `json:"socket"`
}

// ErrorResponse is the body of an error.
type ErrorResponse struct {
	Error   string `json:"error"`
	Details any    `json:"details,omitempty"`
}

// ErrNotFound is returned (wrapped) for a database the process does not
// replicate.
var ErrNotFound = errors.New("the running walship does not replicate this database")

// summarize returns a database's line of GET /list.
func summarize(st walship.DBStatus) DatabaseSummary {
	s := DatabaseSummary{Path: st.Path, Status: st.Phase, TXID: uint64(st.TXID), Error: st.Error}
	s.ReplicatedTXID = s.TXID
	for _, r := range st.Replicas {
		s.ReplicatedTXID = min(s.ReplicatedTXID, uint64(r.TXID))
		if r.Error != "" || r.Stopped != "" {
			s.Failing++
		}
	}
	return s
}
