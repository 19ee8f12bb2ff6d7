package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/superfly/ltx"
)

// restoreResult is what `restore -json` prints.
type restoreResult struct {
	Path     string   `json:"path"`
	TXID     ltx.TXID `json:"txid"`
	PageSize int      `json:"page_size"`
	// Damaged lists the files the restore found damaged and went around.
	Damaged []struct {
		Level int `json:"level"`
	} `json:"damaged"`
}

// restoreError is a restore that exited with an error: not a mismatch,
// but what a trial must see an end to.
type restoreError struct {
	args []string
	msg  string
}

func (e *restoreError) Error() string {
	return fmt.Sprintf("walship %s failed: %s", strings.Join(e.args, " "), e.msg)
}

// restore runs `walship restore -json -o out [args] URL`; url "" is the
// session's replica. A restore that fails is tried again up to the
// trial's retries (through the fault proxy).
func (s *session) restore(out, url string, args ...string) (restoreResult, error) {
	return s.restoreWithin(commandTimeout, s.t.retries, out, url, args...)
}

// restoreWithin is restore with each attempt bounded by timeout, and up
// to attempts of them; an attempt that runs out of time is a failed one.
func (s *session) restoreWithin(timeout time.Duration, attempts int, out, url string, args ...string) (restoreResult, error) {
	if url == "" {
		url = s.cfg.replica.url
	}
	all := append(append([]string{"restore", "-json", "-o", out}, args...), url)
	for attempt := 1; ; attempt++ {
		r, err := s.runFor(timeout, "restore", all...)
		if err != nil && s.t.ctx.Err() == nil {
			r, err = commandResult{code: -1, timedOut: err.Error()}, nil
		}
		if err != nil {
			return restoreResult{}, err
		}
		if r.code == 0 {
			var res restoreResult
			if err := json.Unmarshal(r.stdout, &res); err != nil {
				return res, fmt.Errorf("walship restore -json printed %q: %w", r.stdout, err)
			}
			return res, nil
		}
		rerr := &restoreError{args: all, msg: r.errorText()}
		if attempt >= attempts {
			return restoreResult{}, rerr
		}
		s.t.note("restore failed through the faults and was tried again")
		s.t.printf("%v; trying again", rerr)
		if err := s.t.sleep(100 * time.Millisecond); err != nil {
			return restoreResult{}, err
		}
	}
}

// restoreAndCheck restores (the latest state, or with args an earlier
// one) into a new file and checks it is a state of the history.
func (s *session) restoreAndCheck(url string, args ...string) (restoreResult, mark, error) {
	return s.restoreAndCheckWithin(commandTimeout, s.t.retries, url, args...)
}

// restoreAndCheckWithin is restoreAndCheck with restoreWithin's bounds.
func (s *session) restoreAndCheckWithin(timeout time.Duration, attempts int, url string, args ...string) (restoreResult, mark, error) {
	s.t.outs++
	out := s.t.path(fmt.Sprintf("restored-%03d.db", s.t.outs))
	s.t.stepf("restore %s to %s", strings.Join(args, " "), out)
	res, err := s.restoreWithin(timeout, attempts, out, url, args...)
	if err != nil {
		return res, mark{}, err
	}
	m, err := s.h.check(s.t.ctx, out, false)
	if err != nil {
		return res, m, fmt.Errorf("walship restore %s reported TXID %s: %w", strings.Join(args, " "), res.TXID, err)
	}
	s.t.stats.restores++
	s.t.printf("restored TXID %s: commit %d", res.TXID, m.commit)
	if len(res.Damaged) > 0 {
		s.t.note("restores that went around a damaged file")
	}
	return res, m, nil
}

// hex is a TXID as -txid takes it.
func hex(txid ltx.TXID) string { return strconv.FormatUint(uint64(txid), 16) }

// checkEarlier restores a random restore point of the replica and checks
// it is a state of the history that agrees with the restore of latest
// (TXID, commit m): the later TXID no earlier in the history.
func (s *session) checkEarlier(url string, latest restoreResult, lm mark) error {
	listURL := url
	if s.t.listURL != "" {
		listURL = s.t.listURL
	}
	files, err := s.listing(listURL)
	if err != nil {
		return err
	}
	points := restorePoints(files)
	if len(points) == 0 {
		return fmt.Errorf("walship ltx lists no restore point, after a restore of TXID %s", latest.TXID)
	}
	txid := points[s.t.rng.IntN(len(points))]
	_, em, err := s.restoreAndCheck(url, "-txid", hex(txid))
	if err != nil {
		return err
	}
	if (txid < latest.TXID && em.commit > lm.commit) || (txid > latest.TXID && em.commit < lm.commit) {
		return mismatchf(s.db, "TXIDs and commits disagree: TXID %s restores commit %d, TXID %s commit %d", txid, em.commit, latest.TXID, lm.commit)
	}
	return nil
}
