// Package lease keeps the primary role of a replicated database with one
// node at a time: a small record at the replica's path, beside the owner
// record, that the primary writes with the backend's conditional write and
// renews before it expires, and that a standby takes over only once it has
// seen it unchanged for a whole TTL.
//
// Clocks. No node compares its clock with another's: the record's times
// are for people. The holder measures its own deadline on its monotonic
// clock from the moment it sent the write that acquired or renewed the
// lease (Holder: sent + TTL - margin); it stops writing at that deadline
// unless a later renewal succeeded. A standby (Observer) measures on its
// own monotonic clock how long it has seen the same version of the record;
// it may take the lease over only after a whole TTL of seeing it unchanged.
// The standby's first reading of a version comes after the holder sent the
// write that made it, so the holder's deadline comes, by its clock, a
// margin before the standby's, by its own: skew between the machines'
// wall clocks plays no part, and a drift of the clocks' rates smaller than
// margin/TTL (a quarter: far more than any real clock drifts) cannot make
// both believe they hold it.
package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/walship/walship/storage"
)

// RecordName is the lease record's name at the replica's path.
const RecordName = "walship-lease.json"

// DefaultTTL is the lease's time to live when the configuration does not
// say: a primary that stops renewing is replaced about this long after.
const DefaultTTL = 15 * time.Second

// MinTTL is the shortest TTL accepted: renewals a third of it apart must
// reach the store well within it.
const MinTTL = time.Second

// ErrHeld is returned (wrapped) when another node holds the lease.
var ErrHeld = errors.New("the lease is held by another node")

// ErrLost is returned (wrapped) once a holder lost the lease: it could
// not renew it before its deadline, or another node took it over.
var ErrLost = errors.New("this node lost the lease")

// Record is the lease record's content.
type Record struct {
	Node  string    `json:"node"` // the holder's identity, new at every start
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Path  string    `json:"path"`  // the holder's database file
	Since time.Time `json:"since"` // when the holder acquired the lease (its clock)
	// Renewed is when the holder last renewed it, by its clock: for
	// people only, no node compares it with its own clock.
	Renewed time.Time `json:"renewed"`
	// TTLMillis is the lease's time to live: a standby that saw this
	// record unchanged for that long on its own clock may take it over.
	TTLMillis int64 `json:"ttl_ms"`
	// TXID is the newest TXID the holder's replica held at the renewal.
	TXID uint64 `json:"txid"`
	// Captured is the newest TXID the holder had captured from its
	// database at the renewal: committed there, and in the replica only
	// up to TXID. A standby that takes the lease over knows that the
	// commits after the replica's newest, up to Captured, are lost.
	Captured uint64 `json:"captured_txid,omitempty"`
	// Application is set when the holder's application runs under
	// walship (replicate -exec), which stops it once the holder loses or
	// hands over the lease; without it, a switchover cannot stop the
	// application from writing its own copy.
	Application bool `json:"application,omitempty"`
	// SyncIntervalMillis is the holder's sync interval: the commits it
	// makes after its last renewal reach the replica within about that
	// long, which bounds what a crash loses beyond Captured.
	SyncIntervalMillis int64 `json:"sync_interval_ms,omitempty"`
	// Seq counts the writes of the record, so that each has a new
	// version even on a store whose version is the content's hash.
	Seq uint64 `json:"seq"`
	// TakenOverFrom names the previous holder when this one took over an
	// expired lease; HandedOver is set when that lease was released (a
	// switchover with every commit in the replica), not left to expire.
	TakenOverFrom string `json:"taken_over_from,omitempty"`
	HandedOver    bool   `json:"handed_over,omitempty"`
	// Released is set by a holder that stopped on purpose after its last
	// commits reached the replica (Holder.Release): it writes nothing
	// more, so a standby takes the lease at once.
	Released bool `json:"released,omitempty"`
}

// Position is what a holder writes into the record at each renewal.
type Position struct {
	TXID     uint64 // the newest TXID the replica holds
	Captured uint64 // the newest TXID captured from the database, at least TXID
}

// SyncInterval returns the holder's sync interval, zero when the record
// does not say.
func (r *Record) SyncInterval() time.Duration {
	return time.Duration(r.SyncIntervalMillis) * time.Millisecond
}

// Unshipped returns how many TXIDs the holder had captured, at its last
// renewal, past replicaTXID: commits a takeover at replicaTXID loses for
// certain.
func (r *Record) Unshipped(replicaTXID uint64) uint64 {
	if r.Released || r.Captured <= replicaTXID {
		return 0
	}
	return r.Captured - replicaTXID
}

// Of reports whether the record names the database at path on host: a
// holder of that file on that machine, this process's or a previous one's.
func (r *Record) Of(host, path string) bool { return r.Host == host && r.Path == path }

// TTL returns the record's time to live.
func (r *Record) TTL() time.Duration { return time.Duration(r.TTLMillis) * time.Millisecond }

// String describes the holder for messages.
func (r *Record) String() string {
	return fmt.Sprintf("node %s: database %s on host %s (walship process %d), holder since %s, last renewed at TXID %d",
		r.Node, r.Path, r.Host, r.PID, r.Since.UTC().Format(time.RFC3339), r.TXID)
}

// Check returns an error unless c can hold a lease: its records must be
// written with an atomic conditional write.
func Check(c storage.Client) error {
	if err := storage.RecordsAtomic(c); err != nil {
		return fmt.Errorf("replica %s cannot hold a lease (lease-ttl, standby): %w", c, err)
	}
	return nil
}

// Read returns the lease record and its version; an error wrapping
// storage.ErrNotFound when there is none.
func Read(ctx context.Context, c storage.Client) (*Record, string, error) {
	data, version, err := c.ReadRecord(ctx, RecordName)
	if err != nil {
		return nil, "", err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil || rec.Node == "" || rec.TTLMillis <= 0 {
		return nil, "", &UnreadableError{Replica: c.String()}
	}
	return &rec, version, nil
}

// UnreadableError is Read's error for a lease record that is not one
// walship wrote.
type UnreadableError struct{ Replica string }

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("replica %s: its lease record %s is not one walship wrote; no node can tell who holds the lease: stop every walship of this database and delete that object", e.Replica, RecordName)
}

// write writes rec conditionally on version and returns the new version.
func write(ctx context.Context, c storage.Client, rec *Record, version string) (string, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	return c.WriteRecord(ctx, RecordName, data, version)
}

// margin is how long before the standby's earliest takeover the holder
// stops: the allowance for the drift of the two clocks' rates and for a
// write in flight at the deadline.
func margin(ttl time.Duration) time.Duration { return ttl / 4 }

// StopGrace is how long an application that must stop because its node
// lost the lease of ttl may take to exit before it is killed: half the
// margin, so that it is gone before a standby, which takes over a margin
// after the holder's deadline, starts its own.
func StopGrace(ttl time.Duration) time.Duration { return margin(ttl) / 2 }

// RenewEvery is how often a holder renews a lease of ttl: a third of it, so
// that a failed renewal is tried again before the deadline.
func RenewEvery(ttl time.Duration) time.Duration { return ttl / 3 }

// HandoverName is the record a manual switchover writes (walship
// promote): it asks the lease's current holder, by its node, to stop
// cleanly and release the lease once the replica holds its last commit.
const HandoverName = "walship-handover.json"

// Handover is the handover record's content.
type Handover struct {
	// Holder is the node asked to hand over: a request names one
	// holder, so a request left behind never moves a later holder.
	Holder string    `json:"holder"`
	By     string    `json:"by"` // who asked, for people
	At     time.Time `json:"at"`
}

// RequestHandover asks the lease's current holder to hand over, and
// returns the lease record it asked. A replica without a held lease is an
// error.
func RequestHandover(ctx context.Context, c storage.Client, by string, now time.Time) (*Record, error) {
	rec, _, err := Read(ctx, c)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("replica %s has no lease: there is no primary to hand over", c)
	}
	if err != nil {
		return nil, err
	}
	if rec.Released {
		return rec, nil
	}
	data, err := json.Marshal(Handover{Holder: rec.Node, By: by, At: now.UTC()})
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		_, version, err := c.ReadRecord(ctx, HandoverName)
		if errors.Is(err, storage.ErrNotFound) {
			version, err = "", nil
		}
		if err != nil {
			return nil, fmt.Errorf("read the handover record of replica %s: %w", c, err)
		}
		_, err = c.WriteRecord(ctx, HandoverName, data, version)
		if errors.Is(err, storage.ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("write the handover request to replica %s: %w", c, err)
		}
		return rec, nil
	}
}

// HandoverRequested reports whether a handover record asks node to hand
// over.
func HandoverRequested(ctx context.Context, c storage.Client, node string) (bool, error) {
	data, _, err := c.ReadRecord(ctx, HandoverName)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var h Handover
	if err := json.Unmarshal(data, &h); err != nil {
		return false, fmt.Errorf("replica %s: its handover record %s is not one walship wrote", c, HandoverName)
	}
	return h.Holder == node, nil
}
