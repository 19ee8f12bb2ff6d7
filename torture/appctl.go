package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// appProc is the running application, driven through its command pipe.
type appProc struct {
	p      *proc
	h      history
	commit int64 // the last commit count it reported
}

// appTimeout bounds every answer of the application; a command it does
// not answer in time is a failure that names it.
const appTimeout = 30 * time.Second

// startApp starts the application on the database at db, committing the
// history h at rate commits a second, and waits until it is ready.
func (t *trial) startApp(db string, h history, rate int) (*appProc, error) {
	t.stepf("start the application (%d commits/s)", rate)
	p, err := t.s.startProc(procSpec{
		name:  "app",
		bin:   t.s.self,
		args:  []string{"app", "-db", db, "-seed", strconv.FormatUint(h.seed, 10), "-rate", strconv.Itoa(rate)},
		dir:   t.dir,
		lines: true,
	})
	if err != nil {
		return nil, err
	}
	a := &appProc{p: p, h: h}
	t.cleanup(p.kill)
	line, err := a.readLine(t)
	if err != nil {
		return nil, err
	}
	if a.commit, err = parseAnswer(line, "ready"); err != nil {
		return nil, fmt.Errorf("application: %w%s", err, p.logTail())
	}
	return a, nil
}

// do sends a command and returns the commit count the application
// answered with.
func (a *appProc) do(t *trial, cmd string) (int64, error) {
	if _, err := fmt.Fprintln(a.p.stdin, cmd); err != nil {
		return 0, fmt.Errorf("application: send %q: %w%s", cmd, err, a.p.logTail())
	}
	line, err := a.readLine(t)
	if err != nil {
		return 0, fmt.Errorf("application, after %q: %w", cmd, err)
	}
	c, err := parseAnswer(line, "ok")
	if err != nil {
		return 0, fmt.Errorf("application, %q: %w", cmd, err)
	}
	a.commit = c
	return c, nil
}

// stop closes the application's database, waits for it to exit and
// returns its final commit count.
func (a *appProc) stop(t *trial) (int64, error) {
	t.stepf("stop the application")
	if _, err := fmt.Fprintln(a.p.stdin, "stop"); err != nil {
		return 0, fmt.Errorf("application: send stop: %w%s", err, a.p.logTail())
	}
	line, err := a.readLine(t)
	if err != nil {
		return 0, fmt.Errorf("application, after stop: %w", err)
	}
	c, err := parseAnswer(line, "stopped")
	if err != nil {
		return 0, fmt.Errorf("application: %w", err)
	}
	if err := a.p.wait(t.ctx); err != nil {
		return 0, err
	}
	if !a.p.success() {
		return 0, fmt.Errorf("application exited %s after stop%s", a.p.status(), a.p.logTail())
	}
	a.commit = c
	return c, nil
}

// readLine waits for the application's next line of output.
func (a *appProc) readLine(t *trial) (string, error) {
	select {
	case line, ok := <-a.p.lines:
		if !ok {
			<-a.p.done
			return "", fmt.Errorf("the application exited (%s)%s", a.p.status(), a.p.logTail())
		}
		return line, nil
	case <-time.After(appTimeout):
		return "", fmt.Errorf("the application did not answer within %s", appTimeout)
	case <-t.ctx.Done():
		return "", t.timeout()
	}
}

// parseAnswer reads "WORD C" and returns C.
func parseAnswer(line, word string) (int64, error) {
	w, n, _ := strings.Cut(line, " ")
	if w != word {
		return 0, fmt.Errorf("answered %q, want %q", line, word+" C")
	}
	c, err := strconv.ParseInt(n, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("answered %q, want %q", line, word+" C")
	}
	return c, nil
}
