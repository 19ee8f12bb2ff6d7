package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/walship/walship"
)

// session is one trial's database replicated by walship: the application,
// the replicator, its config, and the walship commands run against them.
type session struct {
	t       *trial
	h       history
	db      string
	cfg     walshipConfig
	cfgPath string
	app     *appProc
	rep     *proc // the running replicator, or nil
	runs    int   // walship processes started, for their logs' names

	stagingRemoved bool // the trial removed the staging directory
	takenOver      bool // the running replicator was started with -takeover
	appPaused      bool // the application was told to pause
}

// Bounds on walship's commands: none of them may hang the suite.
const (
	commandTimeout = 60 * time.Second // restore, ltx, verify, replicate -once
	stopTimeout    = 30 * time.Second // replicate after SIGTERM (it flushes for up to 10 s)
	catchUpTimeout = 90 * time.Second // until verify finds the replica in sync
)

// newSession writes the trial's walship config for the database at
// cfg.db, whose application commits the history h.
func (t *trial) newSession(cfg walshipConfig, h history) (*session, error) {
	s := &session{t: t, h: h, db: cfg.db, cfg: cfg, cfgPath: t.path("walship.yml")}
	if err := os.WriteFile(s.cfgPath, []byte(cfg.render()), 0o644); err != nil {
		return nil, err
	}
	t.printf("config:\n%s", cfg.render())
	return s, nil
}

// startApp starts the application on the session's database.
func (s *session) startApp(rate int) error {
	a, err := s.t.startApp(s.db, s.h, rate)
	s.app = a
	return err
}

// startReplicator starts `walship replicate -config`.
func (s *session) startReplicator(extra ...string) error {
	s.t.stepf("start walship replicate %s", strings.Join(extra, " "))
	p, err := s.start("replicate", append([]string{"replicate", "-config", s.cfgPath}, extra...)...)
	if err != nil {
		return err
	}
	s.rep, s.takenOver = p, slices.Contains(extra, "-takeover")
	return nil
}

// start starts a walship command; its stderr goes to a log of its own.
func (s *session) start(name string, args ...string) (*proc, error) {
	s.runs++
	p, err := s.t.s.startProc(procSpec{
		name: fmt.Sprintf("walship-%02d-%s", s.runs, name),
		bin:  s.t.s.walship,
		args: args,
		env:  s.cfg.replica.env,
		dir:  s.t.dir,
	})
	if err != nil {
		return nil, err
	}
	s.t.cleanup(p.kill)
	return p, nil
}

// replicatorRunning returns an error if the replicator has exited.
func (s *session) replicatorRunning() error {
	if s.rep == nil {
		return fmt.Errorf("no replicator was started")
	}
	if s.rep.exited() {
		return fmt.Errorf("walship replicate exited by itself (%s)%s", s.rep.status(), s.rep.logTail())
	}
	return nil
}

// killReplicator SIGKILLs the replicator, which must still be running.
func (s *session) killReplicator() error {
	s.t.stepf("SIGKILL walship replicate")
	if err := s.replicatorRunning(); err != nil {
		return err
	}
	s.rep.kill()
	s.rep = nil
	return nil
}

// stopReplicator sends SIGTERM: the replicator must flush and exit 0.
func (s *session) stopReplicator() error {
	s.t.stepf("SIGTERM walship replicate")
	if err := s.replicatorRunning(); err != nil {
		return err
	}
	p := s.rep
	s.rep = nil
	if err := p.signal(syscall.SIGTERM, stopTimeout); err != nil {
		return err
	}
	if !p.success() {
		return fmt.Errorf("walship replicate exited %s on SIGTERM, want 0%s", p.status(), p.logTail())
	}
	return nil
}

// appCommit asks the application where it stands.
func (s *session) appCommit() (int64, error) { return s.app.do(s.t, "status") }

// stagingDir is the replicator's staging directory.
func (s *session) stagingDir() string {
	if s.cfg.metaPath != "" {
		return s.cfg.metaPath
	}
	return walship.MetaPath(s.db)
}

// awaitUpload waits until the replicator logs an upload, or exits (which
// the caller's next step reports), for up to upTimeout.
func (s *session) awaitUpload() error {
	s.t.stepf("wait for walship's first upload")
	return s.awaitLog(upTimeout, "msg=uploaded")
}

// awaitClaim waits, after a restart without the staging directory,
// until the replicator claimed the replica again, uploaded, or refused.
func (s *session) awaitClaim() error {
	s.t.stepf("wait for walship to claim the replica again or refuse it")
	return s.awaitLog(upTimeout, "claimed the replica again", "msg=uploaded", ownerRefusal)
}

// awaitLog waits until the replicator's log holds one of texts, or it has
// exited, for up to timeout; running out of time is no error (the next
// step finds out what is wrong).
func (s *session) awaitLog(timeout time.Duration, texts ...string) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && s.rep != nil && !s.rep.exited() {
		log := s.rep.log()
		for _, text := range texts {
			if strings.Contains(log, text) {
				return nil
			}
		}
		if err := s.t.sleep(10 * time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// ownerRefusal is in walship's error when a replica belongs to another
// database (or to this one under an identity it lost).
const ownerRefusal = "this database does not own the replica"

// upTimeout bounds the wait for a replicator to upload or claim.
const upTimeout = 30 * time.Second

// ensureReplicating returns nil if the replicator runs and replicates.
// One that refused to start because its staging directory (with the
// database's identity) was removed and the database is no longer the
// replica's newest state is what README documents ("a database that does
// not match is refused"): it is restarted with -takeover, as README says
// to, and counted. A refusal that is not that (the -takeover replicator
// refusing too, or a replicator that stopped its replica and runs on) is
// an error.
func (s *session) ensureReplicating() error {
	if s.rep == nil || !strings.Contains(s.rep.log(), ownerRefusal) {
		return s.replicatorRunning()
	}
	// A refusal at start-up ends the process within moments.
	ctx, cancel := context.WithTimeout(s.t.ctx, refusalExit)
	defer cancel()
	select {
	case <-s.rep.done:
	case <-ctx.Done():
		if s.t.ctx.Err() != nil {
			return s.t.timeout()
		}
		return fmt.Errorf("walship replicate (%s) stopped replicating to its replica but runs on: %s",
			strings.Join(s.rep.cmd.Args[1:], " "), logLine(s.rep.log(), ownerRefusal))
	}
	if !s.stagingRemoved || s.takenOver {
		return fmt.Errorf("walship replicate (%s) refused the replica: %s", strings.Join(s.rep.cmd.Args[1:], " "), logLine(s.rep.log(), ownerRefusal))
	}
	s.t.note("refused after the staging directory was removed; restarted with -takeover")
	s.t.printf("walship refused the replica after the staging directory was removed: %s", lastLine(s.rep.log()))
	if files, err := s.listing(""); err == nil && len(files) == 0 {
		// Nothing in the replica to prove the database against: walship
		// refuses a replica whose owner record alone it wrote.
		s.t.note("refused a replica holding no LTX file yet (only its owner record)")
	}
	return s.startReplicator("-takeover")
}

// refusalExit is how long a replicator that logged a refusal has to exit.
const refusalExit = 15 * time.Second

// logLine returns the last line of log that holds text.
func logLine(log, text string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], text) {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}
