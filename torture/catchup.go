package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// verifyOutput is the part of `walship verify -json` the suite reads.
type verifyOutput struct {
	Whole    bool `json:"whole"`
	Replicas []struct {
		Error  string `json:"error"`
		Report *struct {
			Database *struct {
				Status  string `json:"status"`
				Message string `json:"message"`
			} `json:"database"`
			Problems []struct {
				Kind    string `json:"kind"`
				Message string `json:"message"`
			} `json:"problems"`
		} `json:"report"`
	} `json:"replicas"`
}

// verdict is what verify said of the session's replica.
type verdict struct {
	inSync   bool
	whole    bool
	summary  string // what it said, in one line
	problems []string
}

// verify runs `walship verify -json -config CFG DB`.
func (s *session) verify() (verdict, error) {
	r, err := s.run("verify", "verify", "-json", "-config", s.cfgPath, s.db)
	if err != nil {
		return verdict{}, err
	}
	var out verifyOutput
	if err := json.Unmarshal(r.stdout, &out); err != nil || len(out.Replicas) != 1 {
		return verdict{summary: fmt.Sprintf("exit %d: %s", r.code, r.errorText())}, nil
	}
	rep := out.Replicas[0]
	v := verdict{whole: out.Whole}
	switch {
	case rep.Error != "":
		v.summary = "could not check: " + rep.Error
	case rep.Report == nil || rep.Report.Database == nil:
		v.summary = fmt.Sprintf("exit %d, no comparison with the database", r.code)
	default:
		v.inSync = rep.Report.Database.Status == "in sync"
		v.summary = rep.Report.Database.Status + ": " + rep.Report.Database.Message
		for _, p := range rep.Report.Problems {
			v.problems = append(v.problems, p.Kind+": "+p.Message)
		}
	}
	return v, nil
}

// catchUp waits until the replica holds the database's state: the
// application must have stopped. The replicator is stopped with SIGTERM
// (it flushes for up to 10 s, and must exit 0); if verify then does not
// find the replica in sync (uploads that failed), `replicate -once` runs
// until it does.
func (s *session) catchUp() (verdict, error) {
	if s.rep != nil {
		if err := s.stopReplicator(); err != nil {
			return verdict{}, err
		}
	}
	deadline := time.Now().Add(catchUpTimeout)
	for attempt := 1; ; attempt++ {
		s.t.stepf("verify the replica is in sync (attempt %d)", attempt)
		v, err := s.verify()
		if err != nil {
			return v, err
		}
		if v.inSync {
			return v, nil
		}
		s.t.printf("verify: %s", v.summary)
		if time.Now().After(deadline) {
			return v, fmt.Errorf("the replica was not in sync with the stopped database within %s: verify says %s", catchUpTimeout, v.summary)
		}
		s.t.stepf("walship replicate -once")
		r, err := s.run("replicate-once", "replicate", "-once", "-config", s.cfgPath)
		if err != nil {
			return v, err
		}
		if r.code != 0 {
			s.t.printf("replicate -once exited %d: %s", r.code, r.errorText())
			s.t.note("catch-up: replicate -once failed")
			if err := s.t.sleep(200 * time.Millisecond); err != nil {
				return v, err
			}
		}
	}
}

// checkFinal stops the application, lets walship catch up, and requires
// the restore of the latest state to be the source exactly: the state of
// the application's last commit, byte for byte. With whole, verify must
// also find no problem in the replica.
func (s *session) checkFinal(whole bool) error {
	final, err := s.app.stop(s.t)
	if err != nil {
		return err
	}
	if _, err := s.h.check(s.t.ctx, s.db, true); err != nil {
		return fmt.Errorf("the source database itself: %w", err)
	}
	v, err := s.catchUp()
	if err != nil {
		return err
	}
	if whole && !v.whole {
		return fmt.Errorf("verify finds problems in the replica after catching up: %s", strings.Join(v.problems, "; "))
	}
	s.t.outs++
	out := s.t.path(fmt.Sprintf("restored-%03d-final.db", s.t.outs))
	s.t.stepf("restore the final state to %s", out)
	res, err := s.restore(out, "", "-integrity-check", "full")
	if err != nil {
		return fmt.Errorf("restore of the final state (verify said %s): %w", v.summary, err)
	}
	m, err := s.h.check(s.t.ctx, out, false)
	if err != nil {
		return err
	}
	s.t.stats.restores++
	if m.commit != final || m.branch != 0 {
		return mismatchf(out, "restored TXID %s holds commit %d (%s) after walship caught up; the application's last commit was %d", res.TXID, m.commit, m, final)
	}
	if err := sameBytes(s.t.ctx, s.db, out); err != nil {
		return err
	}
	s.t.stats.exact++
	s.t.printf("final restore TXID %s is the source exactly: commit %d", res.TXID, final)
	return nil
}
