// Package event describes what the replication engine did, as values, for
// whoever watches it (the Prometheus metrics of internal/metrics): a sync,
// a checkpoint, an upload and how long each took, an upload that failed and
// why, files retention deleted, a verification's outcome.
//
// The engine's packages emit events through a plain function, so they run
// and test without any monitor, and a monitor never holds a pointer into
// the engine.
package event

import "time"

// Kind says what an Event reports.
type Kind string

// The kinds of events.
const (
	Sync        Kind = "sync"         // a capture of committed transactions (with any checkpoint it ran)
	Checkpoint  Kind = "checkpoint"   // a checkpoint of the WAL
	Compaction  Kind = "compaction"   // a compaction that wrote a file
	Snapshot    Kind = "snapshot"     // a snapshot staged
	Upload      Kind = "upload"       // one file written to a replica: Bytes, Files
	UploadError Kind = "upload_error" // an upload pass that failed: ErrKind
	Retention   Kind = "retention"    // files retention deleted from a replica: Files
	Verify      Kind = "verify"       // a validation-interval verification: Result
)

// The kinds of upload errors: a small fixed set, so that a metric labelled
// by it stays small whatever the errors' texts.
const (
	ErrTimeout = "timeout" // the destination did not answer in time
	ErrNetwork = "network" // the destination could not be reached
	ErrStopped = "stopped" // the replica is another database's, or holds another history: walship writes no more to it
	ErrOther   = "other"   // anything else: the destination refused, a staged file could not be read, ...
)

// The results of a verification.
const (
	VerifyWhole   = "whole"   // every restore point restores
	VerifyDamaged = "damaged" // problems were found (and logged)
	VerifyFailed  = "failed"  // the check could not be made (the replica did not answer)
)

// Event is one thing the engine did.
type Event struct {
	Kind Kind
	// DB is the database's path; Replica the replica's name, empty for
	// the database's own work (sync, checkpoint, compaction, snapshot).
	DB, Replica string
	Duration    time.Duration // sync, checkpoint, compaction, snapshot, upload
	Bytes       int64         // upload: the bytes written
	Files       int           // upload: 1 per file; retention: the files deleted
	ErrKind     string        // upload_error: one of the Err constants
	Result      string        // verify: one of the Verify constants
}

// Func receives events. It must not block: the engine calls it inline.
type Func func(Event)

// Emit calls f with e, if f is set.
func (f Func) Emit(e Event) {
	if f != nil {
		f(e)
	}
}

// Since returns an event of kind k that took the time since begun.
func Since(k Kind, begun time.Time) Event {
	return Event{Kind: k, Duration: time.Since(begun)}
}
