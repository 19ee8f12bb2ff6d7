// Package ship uploads a database's staged LTX files to its replicas: one
// Replica per destination, each progressing on its own, so that a slow or
// failing destination holds back neither the others nor the database.
//
// A Replica never sees the database. It reads the staging directory through
// a narrow interface, learns how far the staged history is committed from a
// function, and asks for a snapshot through a callback when its destination
// needs one to continue from.
package ship

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/event"
	"github.com/walship/walship/internal/levels"
	"github.com/walship/walship/internal/owner"
	"github.com/walship/walship/storage"
)

// Staging is the staging directory as an uploader sees it.
type Staging interface {
	storage.Reader
	// Path returns the directory's path, for messages.
	Path() string
	// Merge writes the staged files inputs, which form one chain at one
	// page size, to w as one LTX file.
	Merge(ctx context.Context, inputs []*ltx.FileInfo, w io.Writer) error
	// CreateTemp creates a temporary file in the directory.
	CreateTemp() (*os.File, error)
}

// Source is where a Replica's files come from.
type Source struct {
	Staging Staging
	// Pos returns the newest staged position: every staged file up to it
	// is whole.
	Pos func() ltx.Pos
	// RequestSnapshot asks for a snapshot to be staged, because the
	// replica needs one to continue from; why says so, for the log.
	RequestSnapshot func(why string)
	// Uploaded is called after each upload pass that succeeded, so that
	// staged files every replica holds can go.
	Uploaded func(context.Context) error
	// Events receives the replica's uploads, failures and deletions, for
	// metrics; nil is none. Each event names the replica.
	Events event.Func
}

// Writer is who writes: the owner record a Replica claims its destination
// with, and whether it may take over a destination another database owns.
type Writer struct {
	Me       owner.Record
	Takeover bool
	// Recheck is how long a claim is trusted; zero means ownerRecheck.
	Recheck time.Duration
	// Lease, when set, is asked before every write to the destination;
	// see Lease.
	Lease Lease
}

// Lease is a database's lease on the primary role (internal/lease's
// Holder), as the replica's writes ask it.
type Lease interface {
	// Valid returns nil while the lease is held, at once and without a
	// request; an error (it expired, or was taken) stops the replica for
	// good, as a lost owner record does.
	Valid() error
	// Bound returns ctx cancelled once the lease is no longer held: each
	// write runs under it, so that none goes on past the moment a
	// standby may take the role over.
	Bound(ctx context.Context) (context.Context, context.CancelFunc)
}

// ownerRecheck is how long a claim is trusted before the next write reads
// the owner record again: the bound on how long a process that lost its
// replica (to a takeover, or to a copy of its server) goes on writing. It
// costs one small read per interval while the database changes, and none
// while it is idle.
const ownerRecheck = 10 * time.Second

// Replica ships staged files to one destination.
type Replica struct {
	name   string
	client storage.Client
	src    Source
	writer Writer
	log    *slog.Logger
	wakeC  chan struct{}
	after  func(time.Duration) <-chan time.Time // time.After; tests replace it
	// damagedThrough is the end of the newest staged file an upload
	// found damaged: the replica goes past it with a snapshot, never
	// uploads it. Only the uploading goroutine uses it.
	damagedThrough ltx.TXID
	// maint is held by retention and Audit: an audit must not take a file
	// retention deleted for a loss.
	maint sync.Mutex

	mu         sync.Mutex
	pos        ltx.Pos     // newest file the replica holds
	lastHeader *ltx.Header // header of that file
	err        error       // last upload error, nil once it recovers
	failures   uint64      // upload passes that failed, ever: a monitor compares two readings
	known      bool        // pos and index were read from the destination
	claimedAt  time.Time   // when the owner record last named this process; zero before the claim
	lost       error       // why the destination is not this process's to write (owner.ErrNotOwner), for good
	hold       *held       // writes wait for another run of this database to stop (waitHeld); nil without one
	compatible bool        // files go in the form Litestream 0.5 restores (SetLitestreamCompatible)
	wrote      bool        // a file was written since the last Audit
	repair     ltx.TXID    // a repair waits for a snapshot at or after this TXID (see Repair)
	repairGen  uint64      // counts Repair calls, so that one made during an upload is not lost
	repairWhy  string
	// index lists the replica's files by level, sorted by MinTXID. It is
	// read once at start and then kept up to date by the replica's own
	// writes and deletes, so retention needs no listing.
	index [storage.MaxLevel + 1][]*ltx.FileInfo
}

// New returns a replica named name that writes through client the files of
// src. SetWriter says who writes before the first write.
func New(name string, client storage.Client, src Source, log *slog.Logger) *Replica {
	if log == nil {
		log = slog.Default()
	}
	return &Replica{name: name, client: client, src: src, log: log, wakeC: make(chan struct{}, 1), after: time.After}
}

// SetWriter sets who writes, once the database's identity is known.
func (r *Replica) SetWriter(w Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writer = w
}

// SetLitestreamCompatible makes the replica receive every file in the form
// Litestream 0.5's restore accepts (storage.ToLitestream): without database
// checksums, which walship keeps in the header's NodeID field instead.
func (r *Replica) SetLitestreamCompatible(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.compatible = on
}

// Pos returns the newest position the replica holds.
func (r *Replica) Pos() ltx.Pos {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// Header returns the header of the replica's newest file, nil if unknown.
func (r *Replica) Header() *ltx.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastHeader
}

// Err returns the error of the last failed upload, or nil.
func (r *Replica) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Stopped returns why the replica writes nothing more to its destination
// (it is another database's, or holds a history this database did not
// write), or nil.
func (r *Replica) Stopped() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lost
}

// Failures returns how many upload passes failed since the replica was
// created: a monitor that reads it twice knows whether one failed between.
func (r *Replica) Failures() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failures
}

// emit sends e, from this replica, to the source's events.
func (r *Replica) emit(e event.Event) {
	e.Replica = r.name
	r.src.Events.Emit(e)
}

// Known reports whether the replica's position has been read.
func (r *Replica) Known() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.known
}

// Wake makes the replica look for new staged files.
func (r *Replica) Wake() {
	select {
	case r.wakeC <- struct{}{}:
	default:
	}
}

// LoadPos lists the replica and learns its newest file. On failure the
// error is kept as the replica's, so the staging cap treats it as failing.
func (r *Replica) LoadPos(ctx context.Context) error {
	index, err := listAll(ctx, r.client)
	var pos ltx.Pos
	var hdr *ltx.Header
	if err == nil {
		pos, hdr, err = newestPos(ctx, r.client, &index)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.err = fmt.Errorf("read the replica's position: %w", err)
		return err
	}
	r.pos, r.lastHeader, r.err, r.index, r.known = pos, hdr, nil, index, true
	return nil
}

// CheckRestorable checks, from the listing LoadPos read (no request), that
// the replica's files restore its newest state, and repairs it if not:
// files deleted while no replicator ran, or a chain broken before. The
// database calls it once the replica is its own.
func (r *Replica) CheckRestorable() {
	r.mu.Lock()
	err := checkRestorable(r.client.String(), &r.index, r.pos.TXID)
	txid := r.pos.TXID
	r.mu.Unlock()
	if err != nil {
		r.log.Error("the replica's files do not restore its newest state; walship uploads a new snapshot", "txid", txid.String(), "restore_error", err.Error())
		r.Repair("its files do not restore its newest state")
	}
}

// AwaitPos retries LoadPos while the destination is unreachable, until ctx
// ends.
func (r *Replica) AwaitPos(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := r.LoadPos(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := storage.LoopRetry.Delay(attempt)
		r.log.Error("cannot read the replica's position; retrying", "error", err, "retry_in", d.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

func listAll(ctx context.Context, c storage.Client) (index [storage.MaxLevel + 1][]*ltx.FileInfo, err error) {
	for level := range index {
		if index[level], err = c.LTXFiles(ctx, level); err != nil {
			return index, err // it names the replica
		}
	}
	return index, nil
}

// newestPos returns the position of the newest file of an index and that
// file's header; a zero Pos for an empty replica.
func newestPos(ctx context.Context, c storage.Client, index *[storage.MaxLevel + 1][]*ltx.FileInfo) (ltx.Pos, *ltx.Header, error) {
	var newest *ltx.FileInfo
	for _, files := range index {
		if n := len(files); n > 0 && (newest == nil || files[n-1].MaxTXID > newest.MaxTXID) {
			newest = files[n-1]
		}
	}
	if newest == nil {
		return ltx.Pos{}, nil, nil
	}
	hdr, trailer, err := readNewest(ctx, c, newest)
	if err != nil {
		return ltx.Pos{}, nil, err
	}
	return ltx.NewPos(newest.MaxTXID, storage.PostApplyChecksum(hdr, trailer)), &hdr, nil
}

// verifyNewestMax is the size up to which the replica's newest file is read
// whole and verified at start, rather than trusted from its header and
// trailer: the history goes on from its checksum, and a file cut short
// (whose trailer is then a page's bytes) must not set it.
const verifyNewestMax = 16 << 20

// readNewest returns the header and trailer of the replica's newest file,
// verifying the whole file if it is small enough. A file that does not
// verify is an error that says what to do.
func readNewest(ctx context.Context, c storage.Client, f *ltx.FileInfo) (ltx.Header, ltx.Trailer, error) {
	damaged := func(hdr ltx.Header, err error) error {
		return fmt.Errorf("replica %s: its newest file, %s, is damaged (%v), so walship cannot tell where the replica's history ends and writes nothing to it: run walship verify on the replica, then delete that file if verify says other files hold its TXIDs, or move the replica aside to start a new one with a full copy",
			c, storage.Describe(f.Level, f.MinTXID, f.MaxTXID), storage.HeaderError(hdr, err))
	}
	if f.Size > verifyNewestMax {
		hdr, trailer, err := storage.ReadHeaderTrailer(ctx, c, f)
		if err != nil {
			return hdr, trailer, err
		}
		if err = hdr.Validate(); err == nil {
			err = trailer.Validate(hdr)
		}
		if err != nil {
			return hdr, trailer, damaged(hdr, err)
		}
		return hdr, trailer, nil
	}
	rc, err := c.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, 0, 0)
	if err != nil {
		return ltx.Header{}, ltx.Trailer{}, err
	}
	defer rc.Close()
	src := &storage.SourceReader{R: rc}
	dec := ltx.NewDecoder(src)
	dec.SetRetainPageIndex(false)
	hdr := dec.Header()
	if err := dec.Verify(); err != nil {
		if src.Err != nil {
			return hdr, ltx.Trailer{}, fmt.Errorf("replica %s: read %s: %w", c, storage.Describe(f.Level, f.MinTXID, f.MaxTXID), src.Err)
		}
		return hdr, ltx.Trailer{}, damaged(dec.Header(), err)
	}
	hdr = dec.Header()
	if hdr.MinTXID != f.MinTXID || hdr.MaxTXID != f.MaxTXID {
		return hdr, dec.Trailer(), damaged(hdr, fmt.Errorf("its header holds TXIDs %s-%s", hdr.MinTXID, hdr.MaxTXID))
	}
	return hdr, dec.Trailer(), nil
}

// Holds reports whether the replica has the staged file f, or has moved
// past it (a replica's level-0 position can jump over files by a snapshot).
// A staged snapshot a pending repair may upload is not held, even if the
// replica has one of its TXID: the replica's may be the damaged one.
func (r *Replica) Holds(f *ltx.FileInfo) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case f.Level == 0:
		return r.pos.TXID >= f.MaxTXID
	case f.Level == storage.SnapshotLevel && r.repair != 0 && f.MaxTXID >= r.repair:
		return false // the repair's snapshot: it must be uploaded even if one of its TXID is there
	}
	fs := r.index[f.Level]
	return len(fs) > 0 && fs[len(fs)-1].MaxTXID >= f.MaxTXID
}

// LevelMax returns the newest TXID the replica holds at a level.
func (r *Replica) LevelMax(level int) ltx.TXID {
	r.mu.Lock()
	defer r.mu.Unlock()
	if fs := r.index[level]; len(fs) > 0 {
		return fs[len(fs)-1].MaxTXID
	}
	return 0
}

// Newest returns when the replica's newest file at a level was written,
// and false if the level holds none.
func (r *Replica) Newest(level int) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	files := r.index[level]
	if len(files) == 0 {
		return time.Time{}, false
	}
	return files[len(files)-1].CreatedAt, true
}

// addToIndex records a file the replica now holds. r.mu must be held.
func (r *Replica) addToIndex(f *ltx.FileInfo) {
	r.wrote = true
	r.index[f.Level] = upsert(r.index[f.Level], f)
}

// byTXIDs orders files of one level by MinTXID, then MaxTXID.
func byTXIDs(a, b *ltx.FileInfo) int {
	return cmp.Or(cmp.Compare(a.MinTXID, b.MinTXID), cmp.Compare(a.MaxTXID, b.MaxTXID))
}

// EnforceRetention deletes the replica's files that no restore point inside
// the policy needs. It decides from the index, so it lists nothing, and when
// nothing expired it sends no request at all.
func (r *Replica) EnforceRetention(ctx context.Context, policy levels.Policy, now time.Time) error {
	r.maint.Lock()
	defer r.maint.Unlock()
	r.mu.Lock()
	expired := policy.Expired(&r.index, now)
	r.mu.Unlock()
	if len(expired) == 0 {
		return nil
	}
	wctx, done, err := r.ensureOwner(ctx)
	if err != nil {
		return err
	}
	err = r.client.DeleteLTXFiles(wctx, expired)
	done()
	if err != nil {
		return fmt.Errorf("replica %s: retention: %w", r.name, err)
	}
	gone := make(map[*ltx.FileInfo]bool, len(expired))
	for _, f := range expired {
		gone[f] = true
	}
	r.mu.Lock()
	for level := range r.index {
		r.index[level] = slices.DeleteFunc(r.index[level], func(f *ltx.FileInfo) bool { return gone[f] })
	}
	r.mu.Unlock()
	r.emit(event.Event{Kind: event.Retention, Files: len(expired)})
	r.log.Debug("retention", "deleted", len(expired))
	return nil
}

// errSnapshotPending marks an upload that waits for the snapshot it asked
// the engine for.
var errSnapshotPending = errors.New("a snapshot is on its way")

// errForeignHistory marks a replica that holds a history this database did
// not write.
var errForeignHistory = errors.New("the replica's history is not this database's")

// Run uploads staged files until ctx ends, backing off while the
// destination fails.
func (r *Replica) Run(ctx context.Context) {
	attempt := 0
	for {
		err := r.Upload(ctx)
		if errors.Is(err, errForeignHistory) || errors.Is(err, owner.ErrNotOwner) {
			r.mu.Lock()
			r.lost = err
			r.mu.Unlock()
			r.log.Error("replica stopped", "error", err)
			return
		}
		if errors.Is(err, errSnapshotPending) {
			// Not the destination failing: the wake that says the
			// snapshot is staged is what to wait for.
			attempt = 0
			r.log.Debug("waiting for a snapshot", "error", err)
			err = nil
		}
		if err != nil && ctx.Err() == nil {
			// New files do not cut the wait short: a failing destination
			// gets a request per backoff step, not one per sync, and
			// retry_in says when the next one is.
			d := storage.LoopRetry.Delay(attempt)
			attempt++
			r.log.Error("replication to the replica failed; the database is unaffected and staged files are kept until it recovers", "error", err, "retry_in", d.String())
			select {
			case <-ctx.Done():
				return
			case <-r.after(d):
			}
			continue
		}
		attempt = 0
		select {
		case <-ctx.Done():
			return
		case <-r.wakeC:
		}
	}
}
