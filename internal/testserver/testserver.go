// Package testserver starts the real servers that the backend tests run
// against (MinIO, versitygw, fake-gcs-server, Azurite, sshd, rclone,
// nats-server), each on a free port of 127.0.0.1 with its own temporary
// directory, and stops it by PID when the test ends.
//
// scripts/install-test-servers installs them. A server that is missing or
// cannot start fails the test: it never skips.
//
// The bench and torture suites, which are programs rather than tests,
// start MinIO (PrepareMinIO) and the fault proxy (StartFaultProxy) the
// same way, with errors returned instead of a failed test.
package testserver

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Dir is where scripts/install-test-servers puts the servers it builds.
func Dir() string {
	if d := os.Getenv("WALSHIP_TEST_SERVERS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "walship-test-servers")
	}
	return filepath.Join(home, ".cache", "walship-test-servers")
}

// Bin returns the path of a server's executable: in Dir()/bin, then on PATH,
// then in /usr/sbin (sshd). It fails the test when there is none.
func Bin(t testing.TB, name string) string {
	t.Helper()
	candidates := []string{filepath.Join(Dir(), "bin", name)}
	if p, err := exec.LookPath(name); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, filepath.Join("/usr/sbin", name), filepath.Join("/usr/bin", name))
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("test server %s is not installed; run scripts/install-test-servers (make test does)", name)
	return ""
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// Process is a running server.
type Process struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string // the server's combined stdout and stderr

	mu     sync.Mutex
	exited bool
	done   chan struct{}
}

// Config describes a server to start.
type Config struct {
	Name  string   // for messages
	Path  string   // executable
	Args  []string // arguments
	Env   []string // added to the test's environment
	Dir   string   // working directory; empty is a new temporary one
	Ready func() error
	// ReadyTimeout bounds the wait for Ready; zero is 60 s.
	ReadyTimeout time.Duration
}

// Start starts a server and waits until cfg.Ready returns nil. The server
// runs in its own process group, which is killed when the test ends. If the
// server exits or is not ready in time, the test fails and shows its log.
func Start(t testing.TB, cfg Config) *Process {
	t.Helper()
	logDir := t.TempDir()
	logPath := filepath.Join(logDir, cfg.Name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cfg.Path, cfg.Args...)
	cmd.Env = append(os.Environ(), cfg.Env...)
	cmd.Dir = cfg.Dir
	if cmd.Dir == "" {
		cmd.Dir = t.TempDir()
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s (%s): %v", cfg.Name, cfg.Path, err)
	}
	p := &Process{Name: cfg.Name, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.exited = true
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(p.Stop)

	timeout := cfg.ReadyTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready (%v); its output:\n%s", cfg.Name, cmd.ProcessState, p.Log())
		default:
		}
		err := cfg.Ready()
		if err == nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not ready within %s: %v; its output:\n%s", cfg.Name, timeout, err, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log returns what the server has printed so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Stop kills the server's process group and waits for it to exit.
func (p *Process) Stop() {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if !exited {
		syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// TCPReady returns a readiness check that succeeds once addr accepts TCP
// connections.
func TCPReady(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// Addr formats 127.0.0.1:port.
func Addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
