package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// commandResult is how a walship command ended.
type commandResult struct {
	p        *proc
	stdout   []byte
	code     int    // exit status
	timedOut string // the command did not finish in time: why
}

// errorText is the command's error message, for a report: the last line
// of its stderr, which -json prints as {"error": "..."}.
func (r commandResult) errorText() string {
	if r.timedOut != "" {
		return r.timedOut
	}
	line := lastLine(r.p.log())
	var j struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(line), &j) == nil && j.Error != "" {
		return j.Error
	}
	return line
}

// run runs a walship command to its end, bounded by commandTimeout.
func (s *session) run(name string, args ...string) (commandResult, error) {
	return s.runFor(commandTimeout, name, args...)
}

// runFor runs a walship command to its end, bounded by timeout.
func (s *session) runFor(timeout time.Duration, name string, args ...string) (commandResult, error) {
	p, err := s.start(name, args...)
	if err != nil {
		return commandResult{}, err
	}
	ctx, cancel := context.WithTimeout(s.t.ctx, timeout)
	defer cancel()
	if err := p.wait(ctx); err != nil {
		if s.t.ctx.Err() != nil {
			return commandResult{}, s.t.timeout()
		}
		return commandResult{}, fmt.Errorf("walship %s: %w%s", strings.Join(args, " "), err, p.logTail())
	}
	code := p.cmd.ProcessState.ExitCode()
	if code == 0 && !s.t.s.verbose {
		os.Remove(p.logPath) // only a failure's log is worth keeping
	}
	return commandResult{p: p, stdout: p.stdout(), code: code}, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
