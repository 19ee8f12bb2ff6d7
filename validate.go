package walship

import (
	"context"
	"fmt"
	"time"

	"github.com/walship/walship/internal/event"
	"github.com/walship/walship/verify"
)

// Validate verifies the whole of replica r (see package verify) and logs
// every problem it finds as an error, for validation-interval. The error
// is only for a check that could not be made. Retention does not run
// meanwhile, so that no file it deletes reads as missing.
func (db *DB) Validate(ctx context.Context, r *Replica) (*verify.Report, error) {
	db.retention.Lock()
	defer db.retention.Unlock()
	rep, err := verify.Replica(ctx, r.Client, verify.Options{})
	result := event.VerifyFailed
	switch {
	case err == nil && rep.Whole():
		result = event.VerifyWhole
	case err == nil:
		result = event.VerifyDamaged
	}
	db.emit(event.Event{Kind: event.Verify, Replica: r.Name, Result: result})
	if err != nil {
		return nil, fmt.Errorf("verify replica %s: %w", r.Name, err)
	}
	if err := db.staging.SetValidationDue(r.Name, time.Now().Add(r.ValidationInterval)); err != nil {
		db.log.Warn("cannot record when the replica is next due to be verified; a restart starts its schedule again", "replica", r.Name, "error", err)
	}
	for _, p := range rep.Problems {
		db.log.Error("replica verification found a problem", "replica", r.Name, "kind", string(p.Kind), "object", p.Object, "problem", p.Message, "fix", p.Fix)
	}
	if !rep.Whole() && !rep.LatestRestorable {
		// Whatever the damage, a snapshot of the newest state makes it
		// and every later state restorable again; the damage to older
		// restore points stays, as reported.
		cause := rep.Problems[0]
		for _, p := range rep.Problems {
			if p.Kind == verify.KindUnreachable {
				cause = p // the one that names what blocks the restore
				break
			}
		}
		r.up.Repair(fmt.Sprintf("verification found that the newest state does not restore: %s: %s", cause.Object, cause.Message))
	}
	if rep.Whole() {
		db.log.Info("replica verified: whole", "replica", r.Name, "files", rep.Files, "bytes", rep.Bytes, "restore_points", rep.RestorePoints)
	}
	return rep, nil
}

// lastValidated returns when replica r was last verified, for the schedule
// of validation-interval: the recorded due time less the interval. The
// first time, it records the schedule as starting now.
func (db *DB) lastValidated(r *Replica) time.Time {
	due := db.staging.ValidationDue(r.Name)
	if due.IsZero() {
		due = time.Now().Add(r.ValidationInterval)
		if err := db.staging.SetValidationDue(r.Name, due); err != nil {
			db.log.Warn("cannot record when the replica is next due to be verified; a restart starts its schedule again", "replica", r.Name, "error", err)
		}
	}
	return due.Add(-r.ValidationInterval)
}

// Audit lists replica r and compares it with what the replicator wrote
// there, for audit-interval (see Replica.AuditInterval): files deleted or
// changed behind walship's back are logged, and when what is left no
// longer restores the latest state, r is repaired with a new snapshot. It
// reports whether anything was wrong. It lists nothing, and reports
// false, when r was not written to since the last audit.
func (db *DB) Audit(ctx context.Context, r *Replica) (bool, error) {
	return r.up.Audit(ctx)
}
