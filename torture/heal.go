package main

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// healPoll is the pause between two restores of a replica that is not
// restorable yet.
const healPoll = 50 * time.Millisecond

// pauseAfter is how long the application goes on writing while a replica
// is awaited; then it pauses, so that the database stays small.
const pauseAfter = 2 * time.Second

// awaitLatest restores the latest state again and again until a restore
// holds at least commit atLeast of the main history, and returns how long
// after since that restore started. Every restore that succeeds must be a
// state of the history (a mismatch otherwise), and the replicator, if
// one was started, must keep running. After bound, the error is an
// *unhealedError naming the last attempt.
func (s *session) awaitLatest(url string, since time.Time, atLeast int64, bound time.Duration) (time.Duration, restoreResult, mark, error) {
	for {
		if s.rep != nil {
			if err := s.ensureReplicating(); err != nil {
				return 0, restoreResult{}, mark{}, err
			}
		}
		began := time.Now()
		// One attempt at a time, within what is left of the bound: the
		// loop is the retry.
		res, m, err := s.restoreAndCheckWithin(min(max(bound-time.Since(since), 5*time.Second), commandTimeout), 1, url)
		var rerr *restoreError
		switch {
		case err == nil && m.branch == 0 && m.commit >= atLeast:
			return began.Sub(since), res, m, nil
		case err == nil:
			os.Remove(res.Path)
			err = fmt.Errorf("restore of the latest state gave TXID %s, commit %d (%s): older than commit %d, the application's when it began", res.TXID, m.commit, m, atLeast)
		case !errors.As(err, &rerr):
			return 0, res, m, err // a mismatch, or the trial's time ran out
		}
		if time.Since(since) > bound {
			return 0, res, m, &unhealedError{after: time.Since(since), last: err.Error()}
		}
		if time.Since(since) > pauseAfter && s.app != nil && !s.appPaused {
			// Enough load to prove the point; more would only grow the
			// database while walship catches up.
			if _, err := s.app.do(s.t, "pause"); err != nil {
				return 0, res, m, err
			}
			s.appPaused = true
			s.t.printf("paused the application")
		}
		s.t.printf("not yet: %v", err)
		if err := s.t.sleep(healPoll); err != nil {
			return 0, res, m, err
		}
	}
}
