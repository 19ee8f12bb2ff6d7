// Package child runs the application that `walship replicate -exec`
// starts: one process, with walship's standard streams and environment,
// that receives the signals walship is sent and whose exit status
// becomes walship's. It knows nothing of replication; the caller decides
// when to start the child and what to do when it exits.
package child

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/mattn/go-shellwords"
)

// Split splits a command line into the program and its arguments as
// Litestream's exec does (go-shellwords with its defaults): words apart
// at blanks, quotes and backslashes as in a shell, and nothing expanded
// (no $VAR, no `...`, no glob). A shell is needed for pipes, redirections
// or "&&": exec "sh -c '...'".
func Split(line string) ([]string, error) {
	args, err := shellwords.Parse(line)
	if err != nil {
		return nil, fmt.Errorf("exec %q: %w (quote it as a shell would, e.g. myapp -name 'a b')", line, err)
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("exec %q names no command; give the application's command line, e.g. \"myapp serve\"", line)
	}
	return args, nil
}

// Process is a running child.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts args[0] with the arguments args[1:], the process's
// standard streams and its environment.
func Start(args []string) (*Process, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the application %q: %w", args[0], err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait() // the exit status is in cmd.ProcessState
		close(p.done)
	}()
	return p, nil
}

// PID returns the child's process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig to the child. A child that has exited already is not
// an error.
func (p *Process) Signal(sig os.Signal) error {
	err := p.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Stop asks the child to stop with SIGTERM and kills it if it has not
// exited after grace; it returns once the child has exited.
func (p *Process) Stop(grace time.Duration) {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Status returns the child's exit status, once Done is closed: its exit
// code, or 128+N when signal N killed it (the shell's convention, so that
// a supervisor sees what it would see of the application alone).
func (p *Process) Status() int { return Status(p.cmd.ProcessState) }

// Status returns the exit status of a process that exited: its exit code,
// or 128+N when signal N killed it.
func Status(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// Describe says how the child exited, for the log.
func (p *Process) Describe() string {
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
	}
	return fmt.Sprintf("exit status %d", p.cmd.ProcessState.ExitCode())
}
