// Package control serves the control socket of a running `walship
// replicate`, and is the client the CLI's sync, list, info, register,
// unregister, start and stop verbs use.
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
//     one), the document /status of the metrics listener serves;
//   - POST /register {"path", "replica_url"}: replicate one more database,
//     as one of the config file (Store.Add);
//   - POST /unregister {"path", "timeout"}: capture its last commits,
//     flush them and replicate it no more (Store.Remove);
//   - POST /stop and /start {"path", "timeout"}: pause the replication of
//     a database and resume it, nothing skipped (Store.Pause, Resume).
//
// An error is {"error": "...", "details": ...} with a 4xx or 5xx status.
//
// The server sees the process through the narrow Process interface: the
// engine does the work, the socket only translates. A new verb is a new
// method there and a new handler here.
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
	// Register starts replicating the database at req.Path (absolute and
	// clean) to req.ReplicaURL, as a database of the config file would
	// be; walship.ErrDuplicate if it replicates one there already.
	Register(ctx context.Context, req RegisterRequest) error
	// Unregister, Stop and Start remove, pause and resume the database
	// at path, as DB names it (walship.Store's Remove, Pause, Resume).
	Unregister(ctx context.Context, path string) error
	Stop(ctx context.Context, path string) error
	Start(ctx context.Context, path string) error
}

// Database is one database of the process, as the socket uses it;
// *walship.DB is one.
type Database interface {
	Path() string
	Pos() ltx.Pos
	Phase() walship.Phase
	// Ready reports whether the database replicates, or waits for its
	// file to be created.
	Ready() bool
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

// RegisterRequest is the body of POST /register: Litestream's, and
// walship's encryption keys.
type RegisterRequest struct {
	Path string `json:"path"`
	// ReplicaURL is where the database is replicated: a URL, as walship
	// replicate DB_PATH REPLICA_URL takes, or a directory's absolute path.
	ReplicaURL string `json:"replica_url"`
	// EncryptionKeyPath and EncryptionOldKeyPaths are walship's: the
	// files (absolute paths) the process reads the replica's keys from,
	// as the replica keys of the config file; a key never crosses the
	// socket.
	EncryptionKeyPath     string   `json:"encryption_key_path,omitempty"`
	EncryptionOldKeyPaths []string `json:"encryption_old_key_paths,omitempty"`
}

// RegisterResponse is the body of POST /register's answer.
type RegisterResponse struct {
	Status string `json:"status"` // "registered"
	Path   string `json:"path"`
	// Phase (walship's) is the database's phase when the answer was sent:
	// it waits up to DefaultStopTimeout for the database to replicate (or
	// to wait for its file), so that a sync -wait can follow at once.
	Phase string `json:"phase,omitempty"`
}

// PathRequest is the body of POST /unregister, /start and /stop.
type PathRequest struct {
	Path string `json:"path"`
	// Timeout is in seconds; zero is DefaultStopTimeout. It bounds the
	// wait for the last commits to reach the replicas: the database stops
	// anyway.
	Timeout float64 `json:"timeout,omitempty"`
}

// DefaultStopTimeout bounds a POST /unregister or /stop with no timeout,
// as in Litestream.
const DefaultStopTimeout = 30 * time.Second

// StateResponse is the answer of POST /unregister, /start and /stop.
type StateResponse struct {
	// Status is "unregistered", "started", "already_running", "stopped"
	// or "already_stopped".
	Status string `json:"status"`
	Path   string `json:"path"`
	// Phase (walship's) is the database's phase when the answer was sent;
	// start waits as register does.
	Phase string `json:"phase,omitempty"`
	// TXID is the newest TXID captured; ReplicatedTXID (walship's) the
	// newest every replica holds: after unregister or stop, less than TXID
	// if the replicas did not receive the last commits in time.
	TXID           uint64 `json:"txid"`
	ReplicatedTXID uint64 `json:"replicated_txid"`
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
