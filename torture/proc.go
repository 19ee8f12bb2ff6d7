package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process of the suite: the application, a replicator, a
// restore. Each runs in a process group of its own, dies with the suite
// (Pdeathsig), and is registered with the suite so that an interrupted run
// kills it.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string // its stderr

	stdin io.WriteCloser // the application's command pipe; else nil
	lines chan string    // the application's stdout, line by line; else nil

	outMu sync.Mutex
	out   bytes.Buffer // stdout, when not read as lines

	done chan struct{} // closed once it has exited
}

// procSpec describes a child to start.
type procSpec struct {
	name  string // for messages; its log is <dir>/<name>.log
	bin   string
	args  []string
	env   []string // added to the suite's environment
	dir   string
	lines bool // stdin and stdout are the application's command pipes
}

// startProc starts a child and registers it with the suite.
func (s *suite) startProc(spec procSpec) (*proc, error) {
	logPath := filepath.Join(spec.dir, spec.name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(spec.bin, spec.args...)
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.Dir = spec.dir
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: spec.name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	var stdout io.ReadCloser
	if spec.lines {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			logf.Close()
			return nil, err
		}
		if stdout, err = cmd.StdoutPipe(); err != nil {
			logf.Close()
			return nil, err
		}
		p.lines = make(chan string, 64)
	} else {
		cmd.Stdout = writerFunc(func(b []byte) (int, error) {
			p.outMu.Lock()
			defer p.outMu.Unlock()
			return p.out.Write(b)
		})
	}
	if err := s.procs.add(p, cmd.Start); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", spec.name, err)
	}
	scanned := make(chan struct{})
	if stdout != nil {
		go func() {
			defer close(scanned)
			defer close(p.lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				p.lines <- sc.Text()
			}
		}()
	} else {
		close(scanned)
	}
	go func() {
		<-scanned // Wait closes the pipe: read it to its end first
		cmd.Wait()
		logf.Close()
		s.procs.remove(p)
		close(p.done)
	}()
	return p, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the process group and waits for the process.
func (p *proc) kill() {
	syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.done
}

// signal sends sig to the process and waits for it to exit, up to timeout;
// then it is killed and the error says so.
func (p *proc) signal(sig syscall.Signal, timeout time.Duration) error {
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("%s did not exit within %s of %s; killed it%s", p.name, timeout, sig, p.logTail())
	}
}

// wait waits for the process to exit by itself, or kills it when ctx ends.
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		p.kill()
		return fmt.Errorf("%s did not finish: %w", p.name, context.Cause(ctx))
	}
}

// status describes how the process exited.
func (p *proc) status() string { return p.cmd.ProcessState.String() }

// success reports whether the process exited 0.
func (p *proc) success() bool { return p.cmd.ProcessState.Success() }

// stdout returns what the process printed (not for the application).
func (p *proc) stdout() []byte {
	p.outMu.Lock()
	defer p.outMu.Unlock()
	return bytes.Clone(p.out.Bytes())
}

// log returns the process's stderr so far.
func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// logTail is the end of the process's stderr, for an error message.
func (p *proc) logTail() string {
	lines := strings.Split(strings.TrimSpace(p.log()), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return "; its last output (" + p.logPath + "):\n    " + strings.Join(lines, "\n    ")
}

// procSet is every child running, so that an interrupted run can kill
// them all.
type procSet struct {
	mu      sync.Mutex
	procs   map[*proc]struct{}
	stopped bool
}

// add starts a child (with start) unless the suite is stopping.
func (ps *procSet) add(p *proc, start func() error) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.stopped {
		return fmt.Errorf("the suite is stopping")
	}
	if err := start(); err != nil {
		return err
	}
	if ps.procs == nil {
		ps.procs = make(map[*proc]struct{})
	}
	ps.procs[p] = struct{}{}
	return nil
}

func (ps *procSet) remove(p *proc) {
	ps.mu.Lock()
	delete(ps.procs, p)
	ps.mu.Unlock()
}

// killAll kills every child and refuses new ones.
func (ps *procSet) killAll() {
	ps.mu.Lock()
	ps.stopped = true
	procs := make([]*proc, 0, len(ps.procs))
	for p := range ps.procs {
		procs = append(procs, p)
	}
	ps.mu.Unlock()
	for _, p := range procs {
		syscall.Kill(-p.pid(), syscall.SIGKILL)
	}
}
