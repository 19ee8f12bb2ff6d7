package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walship/walship/storage"
)

// Observer watches the lease for a standby: it tells when the record has
// stayed unchanged (same version, or still missing) for a whole TTL on the
// observer's own monotonic clock, whatever the times written in it say.
type Observer struct {
	c   storage.Client
	ttl time.Duration    // the standby's own TTL: the least it waits
	now func() time.Time // time.Now; tests replace it

	seen    bool
	version string // "" while the record is missing
	since   time.Time
}

// NewObserver returns an observer of the lease at c's path that waits at
// least ttl (or the record's TTL, if longer) of an unchanged record.
func NewObserver(c storage.Client, ttl time.Duration) *Observer {
	return &Observer{c: c, ttl: ttl, now: time.Now}
}

// Seen is one observation of the lease.
type Seen struct {
	Record  *Record // nil when there is no lease record
	Version string  // "" when there is none
	// For is how long the observer has seen this version (or no record)
	// unchanged, by its own clock.
	For time.Duration
	TTL time.Duration // how long it must see it unchanged
	// Expired is set once For reached TTL: the holder, by its own clock,
	// stopped writing a margin before; or at once when the holder
	// released the lease.
	Expired bool
}

// Observe reads the lease record. A failed read is an error and does not
// restart the count: the next reading of the same version shows that it
// did not change between (every write has a new version).
func (o *Observer) Observe(ctx context.Context) (Seen, error) {
	rec, version, err := Read(ctx, o.c)
	at := o.now()
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return Seen{}, fmt.Errorf("read the lease of replica %s: %w", o.c, err)
	}
	if !o.seen || version != o.version {
		// The clock starts when the answer came: the holder sent the
		// write that made this version before then, and its deadline
		// runs from that sending. (Starting when the read was sent
		// would be early by as long as the answer took.)
		o.seen, o.version, o.since = true, version, at
	}
	ttl := o.ttl
	if rec != nil {
		ttl = max(ttl, rec.TTL())
	}
	s := Seen{Record: rec, Version: version, For: at.Sub(o.since), TTL: ttl}
	// A released lease's holder stopped writing before it released it.
	s.Expired = s.For >= ttl || (rec != nil && rec.Released)
	return s, nil
}
